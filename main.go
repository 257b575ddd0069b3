// Command sluice is a job server that speaks the Redis protocol: push jobs,
// reserve them under a lease with per-key concurrency caps and rate limits,
// acknowledge them. See README.md and docs/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"sluice/config"
	"sluice/hugepages"
	"sluice/persistence"
	"sluice/server"
)

// version is the server's version (INFO, HELLO, --version).
const version = "0.1.0"

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP) // SIGHUP: reload TLS certificates
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sig, nil))
}

// run is the whole program; ready, if not nil, receives the listening
// addresses once the server accepts connections (tests use it).
func run(args, environ []string, stdout, stderr io.Writer, stop <-chan os.Signal, ready chan<- []string) int {
	if len(args) > 0 && args[0] == "check-aof" {
		return checkAOF(args[1:], stdout, stderr)
	}
	cfg, warnings, err := config.Load(args, environ)
	switch {
	case errors.Is(err, config.ErrHelp):
		usage(stdout)
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintln(stdout, "sluice", version)
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	for _, w := range warnings {
		log.Warn().Msg(w)
	}
	if cfg.HugePages {
		adviseHugePages(&log)
	}
	if lim, ok := memoryLimit(cfg, os.Getenv("GOMEMLIMIT")); ok {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(lim))
		log.Info().Int64("bytes", lim).Msg("the garbage collector keeps the heap within maxmemory + maxmemory-clients + 64mb")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		log.Error().Err(err).Str("dir", cfg.Dir).Msg("cannot create the data directory")
		return 1
	}
	node, err := server.New(cfg, server.Options{Log: log, Version: version})
	if err != nil {
		return 1 // New has logged why
	}
	if err := node.Start(); err != nil {
		return 1 // Start has logged why
	}
	logReady(log, cfg, node)
	if ready != nil {
		ready <- node.Addrs()
	}
	waitForStop(log, cfg, node, stop)
	return shutdown(log, cfg, node, stop)
}

// logReady says the server is up, where, and with which options changed.
func logReady(log zerolog.Logger, cfg config.Config, node *server.Server) {
	ev := log.Info().Strs("addr", node.Addrs()).Str("version", version).Int("pid", os.Getpid())
	if u := node.MetricsURL(); u != "" {
		ev = ev.Str("metrics", u)
	}
	if u := node.DashboardURL(); u != "" {
		ev = ev.Str("dashboard", u)
	}
	if a := node.TLSAddrs(); a != nil {
		ev = ev.Strs("tls_addr", a)
	}
	for k, v := range cfg.Changed() {
		ev = ev.Str(k, v)
	}
	ev.Msg("sluice ready")
}

// waitForStop returns when the server is asked to stop (a signal other
// than SIGHUP, or SHUTDOWN) or a listener fails; SIGHUP reloads the TLS
// certificates.
func waitForStop(log zerolog.Logger, cfg config.Config, node *server.Server, stop <-chan os.Signal) {
	deadline := time.Duration(cfg.ShutdownTimeout) * time.Second
	for {
		select {
		case s := <-stop:
			if s == syscall.SIGHUP {
				node.Reload()
				continue
			}
			log.Info().Str("signal", fmt.Sprint(s)).Dur("deadline", deadline).Msg("shutting down")
		case <-node.ShutdownRequested():
			log.Info().Str("command", "SHUTDOWN").Dur("deadline", deadline).Msg("shutting down")
		case f := <-node.Failed():
			msg := "listener failed, shutting down"
			if f.Metrics {
				msg = "HTTP server (metrics or dashboard) failed, shutting down"
			}
			log.Error().Err(f.Err).Msg(msg)
		}
		return
	}
}

// shutdown drains the server (server.Shutdown) and returns the exit
// status. A second signal cuts the connections' wait short. The log is not
// given up so easily: while it cannot be written (a full disk), the server
// waits, retrying every second, since exiting would lose changes it has
// acknowledged; only a third signal exits without them (status 1, with
// their number logged).
func shutdown(log zerolog.Logger, cfg config.Config, node *server.Server, stop <-chan os.Signal) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout)*time.Second)
	defer cancel()
	done := make(chan struct{})
	defer close(done) // ends the signal watcher
	go func() {
		for n := 2; ; n++ {
			var s os.Signal
			select {
			case s = <-stop:
				if s == syscall.SIGHUP { // a reload, not a request to hurry
					n--
					continue
				}
			case <-done:
				return
			}
			if n == 2 {
				log.Warn().Str("signal", fmt.Sprint(s)).Msg("second signal: closing connections now")
				cancel()
				continue
			}
			log.Warn().Str("signal", fmt.Sprint(s)).Msg("third signal: exiting without waiting for the append-only log")
			node.Abandon() // commands waiting for their fsync give up; their clients are gone
			return
		}
	}()
	code := 0
	if err := node.Shutdown(ctx); err != nil {
		code = 1
	}
	log.Info().Msg("bye")
	return code
}

// checkAOF is `sluice check-aof [--fix] FILE`: report the first bad record
// of a log file and, with --fix, truncate the file there; and `sluice
// check-aof --rebuild-manifest DIR`.
func checkAOF(args []string, stdout, stderr io.Writer) int {
	const use = "usage: sluice check-aof [--fix] FILE\n       sluice check-aof --rebuild-manifest DIR"
	fix, rebuild := false, false
	var path string
	for _, a := range args {
		switch {
		case a == "--fix":
			fix = true
		case a == "--rebuild-manifest":
			rebuild = true
		case path == "" && !strings.HasPrefix(a, "-"):
			path = a
		default:
			fmt.Fprintln(stderr, use)
			return 2
		}
	}
	if path == "" || (fix && rebuild) {
		fmt.Fprintln(stderr, use)
		return 2
	}
	if rebuild {
		return rebuildManifest(path, stdout, stderr)
	}
	res, err := persistence.Check(persistence.OSFS{}, path, fix)
	if err != nil {
		fmt.Fprintln(stderr, "sluice check-aof:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d records, %d of %d bytes valid\n", path, res.Records, res.Good, res.Size)
	switch {
	case res.Problem == "":
		fmt.Fprintln(stdout, "OK")
		return 0
	case res.Fixed:
		fmt.Fprintf(stdout, "bad record at offset %d (%s): truncated the file there\n", res.Good, res.Problem)
		return 0
	}
	fmt.Fprintf(stdout, "bad record at offset %d (%s); run with --fix to truncate the file there\n", res.Good, res.Problem)
	return 1
}

// rebuildManifest is `sluice check-aof --rebuild-manifest DIR`: write the
// manifest of the log in DIR from the files there, and say what it holds.
func rebuildManifest(dir string, stdout, stderr io.Writer) int {
	res, err := persistence.RebuildManifest(persistence.OSFS{}, dir)
	if err != nil {
		fmt.Fprintln(stderr, "sluice check-aof:", err)
		return 1
	}
	verb := "wrote"
	if res.Replaced {
		verb = "replaced"
	}
	fmt.Fprintf(stdout, "%s %s, the log in replay order:\n", verb, res.Path)
	for i, f := range res.Files {
		fmt.Fprintf(stdout, "  %s (%d records)\n", f, res.Records[i])
	}
	if len(res.Left) > 0 {
		fmt.Fprintf(stdout, "left out (older than the base, or unfinished): %s\n", strings.Join(res.Left, ", "))
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "console"
			}
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "sluice %s — a job server that speaks the Redis protocol\n\n", version)
	fmt.Fprintln(w, "Usage: sluice [config-file] [--option value ...]")
	fmt.Fprintln(w, "       sluice check-aof [--fix] FILE   check a log file; --fix truncates it at its last good record")
	fmt.Fprintln(w, "       sluice check-aof --rebuild-manifest DIR   write DIR's log manifest from the log files there")
	fmt.Fprintln(w, "\nEvery option may also be set in the config file (\"name value\" lines)")
	fmt.Fprintln(w, "or in the environment as SLUICE_<NAME> (upper case, '-' becomes '_').")
	fmt.Fprintln(w, "Flags override the environment, which overrides the file.")
	fmt.Fprintln(w)
	def := config.DefaultConfig()
	for _, o := range config.Options {
		v, _ := def.Get(o.Name)
		if v == "" {
			v = "(none)"
		}
		fmt.Fprintf(w, "  --%-24s %s (default: %s)\n", o.Name, o.Usage, v)
	}
}

// adviseOnce: the heap is the process's, and run may be called again (tests).
var adviseOnce sync.Once

// adviseHugePages lets the heap grow into transparent huge pages (package
// hugepages), once per process, before the store takes any memory.
func adviseHugePages(log *zerolog.Logger) {
	adviseOnce.Do(func() {
		mode := hugepages.Mode()
		start, n, err := hugepages.Advise(hugepages.DefaultSize())
		switch {
		case err != nil:
			log.Debug().Err(err).Str("thp", mode).Msg("heap keeps ordinary pages")
		case n > 0:
			log.Debug().Str("thp", mode).Int("bytes", n).Str("at", fmt.Sprintf("%#x", start)).Msg("heap advised for huge pages")
		case mode == "always":
			log.Debug().Str("thp", mode).Msg("heap gets huge pages without advice")
		default:
			log.Debug().Str("thp", mode).Msg("heap keeps ordinary pages: no region to advise")
		}
	})
}

// memoryLimit is the soft limit given to the garbage collector when
// --maxmemory is set: what the limits let the server hold (the data
// --maxmemory counts, the client buffers --maxmemory-clients counts) and
// 64 MB for the rest. Without it the collector lets the heap grow to twice
// what is live before it runs, so a server at its limits would take twice
// the memory its options promise. A limit from GOMEMLIMIT wins.
func memoryLimit(cfg config.Config, env string) (int64, bool) {
	if cfg.MaxMemory == 0 || cfg.MaxMemoryClients == 0 || env != "" {
		return 0, false
	}
	return cfg.MaxMemory + cfg.MaxMemoryClients + 64<<20, true
}
