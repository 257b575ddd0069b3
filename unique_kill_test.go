package main

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// 32 clients push the same 1,000 unique keys at once, each in its own
// order: exactly 1,000 jobs remain, every client was answered the same
// holder for a key, and after a SIGKILL and a restart on the same log the
// server holds the same 1,000 jobs and answers the same holders.
func TestUniqueKeysAcrossKill(t *testing.T) {
	const clients, keys = 32, 1000
	ctx := context.Background()
	dir := t.TempDir()
	args := []string{"--dir", dir, "--appendonly", "yes", "--appendfsync", "always"}
	p := startBinary(t, args...)
	addr := "127.0.0.1:" + p.port
	holders := make([][]string, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2, PoolSize: 1})
			defer cl.Close()
			holders[c] = make([]string, keys)
			for i := range keys {
				k := (i*7 + c*31) % keys // every client its own order
				id, err := cl.Do(ctx, "JOBPUSH", "q"+strconv.Itoa(k%8), "h", "from "+strconv.Itoa(c),
					"UNIQUE", "key-"+strconv.Itoa(k)).Text()
				if err != nil {
					t.Error(err)
					return
				}
				holders[c][k] = id
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for c := 1; c < clients; c++ {
		for k := range keys {
			if holders[c][k] != holders[0][k] {
				t.Fatalf("key-%d: client %d was answered %s, client 0 %s", k, c, holders[c][k], holders[0][k])
			}
		}
	}
	check := func(when string, cl *redis.Client) {
		t.Helper()
		if n, err := cl.Do(ctx, "DBSIZE").Int64(); err != nil || n != keys {
			t.Fatalf("%s: DBSIZE %d (%v), want %d", when, n, err, keys)
		}
		info, err := cl.Info(ctx, "stats").Result()
		if err != nil || !strings.Contains(info, "unique_keys:"+strconv.Itoa(keys)+"\r\n") {
			t.Fatalf("%s: INFO stats lacks unique_keys:%d (%v)", when, keys, err)
		}
		for k := range keys {
			id, err := cl.Do(ctx, "JOBPUSH", "q"+strconv.Itoa(k%8), "h", "again",
				"UNIQUE", "key-"+strconv.Itoa(k), "ON-DUPLICATE", "reject").Text()
			if want := "DUPKEY key key-" + strconv.Itoa(k) + " is held by job " + holders[0][k]; err == nil || err.Error() != want {
				t.Fatalf("%s: key-%d: %q %v, want %s", when, k, id, err, want)
			}
		}
	}
	cl := redis.NewClient(&redis.Options{Addr: addr, Protocol: 2})
	check("before the kill", cl)
	cl.Close()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for startBinary's cleanup

	p = startBinary(t, args...)
	cl = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + p.port, Protocol: 2})
	defer cl.Close()
	check("after the restart", cl)
}
