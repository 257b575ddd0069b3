// This file is not part of sluice. benchmarks/run.sh adds it to the root
// package at build time with `go build -overlay`, without touching the
// source tree, to get a sluice binary that serves net/http/pprof on the
// address in SLUICE_BENCH_PPROF. It lives under testdata so the go tool
// ignores it everywhere else.

package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("SLUICE_BENCH_PPROF"); addr != "" {
		go http.ListenAndServe(addr, nil)
	}
}
