package commands_test

import (
	"bufio"
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// infoField reads one field of INFO's text; -1 if it is missing.
func infoInt(text, name string) int64 {
	for _, line := range strings.Split(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// INFO reports the client buffers under Redis's names, and a client closed
// for --maxmemory-clients counts in evicted_clients.
func TestInfoClientBuffers(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.MaxMemoryClients = 1 << 20 })
	c := ts.client(t, resp2)
	all := infoText(t, c, "clients", "memory", "stats")
	for _, f := range []string{"client_recent_max_input_buffer", "client_recent_max_output_buffer", "mem_clients_normal", "evicted_clients"} {
		if infoInt(all, f) < 0 {
			t.Errorf("INFO lacks %s", f)
		}
	}
	if got := infoInt(all, "maxmemory_clients"); got != 1<<20 {
		t.Errorf("maxmemory_clients:%d", got)
	}
	if infoInt(all, "mem_clients_normal") <= 0 || infoInt(all, "evicted_clients") != 0 {
		t.Errorf("with one client:\n%s", all)
	}

	// A partial push of 900 KB takes the total past 1 MiB.
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte("*4\r\n$7\r\nJOBPUSH\r\n$1\r\nq\r\n$1\r\nh\r\n$1000000\r\n" + strings.Repeat("x", 900_000))); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := nc.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client holding a partial push of 900 KB was not closed")
	}
	stats := infoText(t, c, "stats")
	if got := infoInt(stats, "evicted_clients"); got != 1 {
		t.Fatalf("evicted_clients:%d", got)
	}
}

// CLIENT NO-EVICT ON keeps a client out of evictions, as in Redis: its
// buffers still count, and the next biggest client goes instead.
func TestClientNoEvict(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.MaxMemoryClients = 2 << 20 })
	c := ts.client(t, resp2)
	kept, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	r := bufio.NewReader(kept)
	kept.Write([]byte("CLIENT NO-EVICT ON\r\n"))
	if line, err := r.ReadString('\n'); err != nil || line != "+OK\r\n" {
		t.Fatalf("CLIENT NO-EVICT ON: %q %v", line, err)
	}
	push := "*4\r\n$7\r\nJOBPUSH\r\n$1\r\nq\r\n$1\r\nh\r\n$1000000\r\n"
	kept.Write([]byte(push + strings.Repeat("x", 900_000)))
	for infoInt(infoText(t, c, "memory"), "mem_clients_normal") < 900_000 {
		time.Sleep(time.Millisecond)
	}
	other, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.Write([]byte(push + strings.Repeat("x", 700_000)))
	_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := other.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the client without NO-EVICT was not closed")
	}
	kept.Write([]byte(strings.Repeat("x", 100_000) + "\r\n"))
	_ = kept.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "$") {
		t.Fatalf("the NO-EVICT client's push: %q %v", line, err)
	}
}
