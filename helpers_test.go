package main

import (
	"io"
	"net"
	"sync"
)

func netDial(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }

// syncWriter lets the test read logs written by another goroutine.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
