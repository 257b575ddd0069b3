package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCronSoak runs @every 1s against the binary on the real clock for
// SLUICE_CRON_SOAK (e.g. 10m), killing it with SIGKILL three times (after
// downtimes of 0.3 s, 2.3 s and 5 s) and starting it again on the same log.
// At the end every tick of a second during which the server was up has
// exactly one job, no tick has two, and no tick of a second during which it
// was down has any. (The regular suite checks the same on a test clock:
// persistence.TestCronEverySecondAcrossRestarts.)
func TestCronSoak(t *testing.T) {
	v := os.Getenv("SLUICE_CRON_SOAK")
	if v == "" {
		t.Skip("set SLUICE_CRON_SOAK to a duration (10m) to run")
	}
	total, err := time.ParseDuration(v)
	if err != nil || total < 20*time.Second {
		t.Fatalf("SLUICE_CRON_SOAK=%q: want a duration of 20s or more", v)
	}
	ctx := context.Background()
	dir := t.TempDir()
	type run struct{ launch, ready, kill int64 } // Unix ms, as the test saw them
	var runs []run
	var p *proc
	var c *redis.Client
	start := func() {
		launch := time.Now().UnixMilli()
		p = startBinary(t, "--dir", dir, "--appendonly", "yes")
		runs = append(runs, run{launch: launch, ready: time.Now().UnixMilli()})
		c = redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + p.port, Protocol: 2})
	}
	// kill stops the process with SIGKILL at the middle of a second, away
	// from any tick, so that a tick's record is written (everysec writes
	// within a millisecond) before the kill.
	kill := func() {
		for time.Now().UnixMilli()%1000 < 500 || time.Now().UnixMilli()%1000 > 600 {
			time.Sleep(10 * time.Millisecond)
		}
		c.Close()
		runs[len(runs)-1].kill = time.Now().UnixMilli()
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		err := <-p.done
		p.done <- err // for startBinary's cleanup
	}

	begin := time.Now()
	start()
	if err := c.Do(ctx, "CRONSET", "beat", "@every 1s", "soak", "h", "x").Err(); err != nil {
		t.Fatal(err)
	}
	for i, down := range []time.Duration{300 * time.Millisecond, 2300 * time.Millisecond, 5 * time.Second} {
		time.Sleep(time.Until(begin.Add(total * time.Duration(i+1) / 4)))
		kill()
		time.Sleep(down)
		start()
	}
	time.Sleep(time.Until(begin.Add(total)))
	end := time.Now().UnixMilli() // the reads below end the last run
	var got []int64
	for cursor := "0"; ; {
		res, err := c.Do(ctx, "QUEUEPEEK", "soak", "COUNT", 1000, "CURSOR", cursor).Slice()
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range res[1].([]any) {
			m := j.([]any)
			for k := 0; k+1 < len(m); k += 2 {
				if m[k] == "created_at" {
					got = append(got, m[k+1].(int64))
				}
			}
		}
		if cursor = fmt.Sprint(res[0]); cursor == "0" {
			break
		}
	}
	e, err := c.Do(ctx, "CRONGET", "beat").Slice()
	if err != nil {
		t.Fatal(err)
	}
	kill()
	runs[len(runs)-1].kill = end

	slices.Sort(got)
	for i, tick := range got {
		if tick%1000 != 0 {
			t.Errorf("job created at %d, not on a tick", tick)
		}
		if i > 0 && got[i-1] == tick {
			t.Errorf("tick %d has two jobs", tick)
		}
	}
	// Must have fired: the process was serving at the tick and lived 200 ms
	// past it. Must not: no process was alive within the grace after it.
	// Between (a tick just before a start): either.
	const grace = 1000
	var must, mustNot, either, upSecs int
	first := (runs[0].ready/1000 + 1) * 1000
	last := runs[len(runs)-1].kill - 200
	for tick := first; tick <= last; tick += 1000 {
		up, alive := false, false
		for _, r := range runs {
			up = up || (r.ready <= tick && tick+200 <= r.kill)
			alive = alive || (r.launch < tick+grace && tick <= r.kill)
		}
		_, fired := slices.BinarySearch(got, tick)
		switch {
		case up:
			must++
			if !fired {
				t.Errorf("tick %d: the server was up, no job", tick)
			}
		case !alive:
			mustNot++
			if fired {
				t.Errorf("tick %d: the server was down, a job", tick)
			}
		default:
			either++
		}
		if alive {
			upSecs++
		}
	}
	t.Logf("%s, %d runs: %d jobs for %d ticks with a process alive within the grace; %d ticks the server was up at (all fired), %d it was down for (none fired), %d at a start (either); CRONGET %v",
		total, len(runs), len(got), upSecs, must, mustNot, either, e)
	var runsText []string
	for _, r := range runs {
		runsText = append(runsText, strconv.FormatInt(r.launch, 10)+"-"+strconv.FormatInt(r.kill, 10))
	}
	t.Logf("runs (launch-kill, Unix ms): %v", runsText)
}
