package commands_test

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"sluice/internal/check"
)

// scanAll runs a whole SCAN with go-redis and returns how often each id
// came back.
func scanAll(t *testing.T, c *redis.Client, args ...any) map[string]int {
	t.Helper()
	seen := map[string]int{}
	cursor := "0"
	for calls := 0; ; calls++ {
		v := do(t, c, append([]any{"SCAN", cursor}, args...)...).([]any)
		for _, id := range v[1].([]any) {
			seen[id.(string)]++
		}
		if cursor = v[0].(string); cursor == "0" {
			return seen
		}
		if calls > 1_000_000 {
			t.Fatal("SCAN never ends")
		}
	}
}

func TestScan(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	var all, apples []string
	for i := range 300 {
		q := "q" + strconv.Itoa(i%4)
		all = append(all, do(t, c, "JOBPUSH", q, "h", "p").(string))
		if i%3 == 0 {
			id := do(t, c, "JOBPUSH", q, "h", "p", "ID", "apple:"+strconv.Itoa(i)).(string)
			apples = append(apples, id)
			all = append(all, id)
		}
	}
	// Jobs in every state: reserved, running, succeeded, failed, cancelled,
	// scheduled.
	for i, r := range reserve(t, c, "w", 60000, "COUNT", 40, "QUEUES", "q0", "q1") {
		switch i % 4 {
		case 1:
			do(t, c, "JOBSTART", r["token"])
		case 2:
			do(t, c, "JOBACK", r["token"])
		case 3:
			do(t, c, "JOBFAIL", r["token"], "ERROR", "x", "NORETRY")
		}
	}
	do(t, c, "JOBCANCEL", all[len(all)-1])
	all = append(all, do(t, c, "JOBPUSH", "later", "h", "p", "DELAY", 60000).(string))

	for _, count := range []int{1, 7, 1000} {
		seen := scanAll(t, c, "COUNT", count)
		for _, id := range all {
			if seen[id] != 1 {
				t.Fatalf("COUNT %d: %s returned %d times", count, id, seen[id])
			}
		}
		if len(seen) != len(all) {
			t.Fatalf("COUNT %d: %d ids returned, %d held", count, len(seen), len(all))
		}
	}
	seen := scanAll(t, c, "MATCH", "apple:*", "COUNT", 20)
	got := slices.Sorted(func(yield func(string) bool) {
		for id := range seen {
			if !yield(id) {
				return
			}
		}
	})
	slices.Sort(apples)
	if !slices.Equal(got, apples) {
		t.Fatalf("MATCH apple:* gave %d ids, want %d: %v", len(got), len(apples), got)
	}
	if seen := scanAll(t, c, "MATCH", "apple:[12]?", "TYPE", "JOB"); len(seen) != 6 { // 12 15 18 21 24 27
		t.Fatalf("MATCH apple:[12]? %v", seen)
	}
	if seen := scanAll(t, c, "TYPE", "job", "COUNT", 50); len(seen) != len(all) {
		t.Fatalf("TYPE job gave %d ids", len(seen))
	}
	if v := do(t, c, "SCAN", "0", "TYPE", "string").([]any); v[0] != "0" || len(v[1].([]any)) != 0 {
		t.Fatalf("TYPE string %v", v)
	}
	// go-redis's iterator.
	it := c.Scan(ctx, 0, "apple:1*", 5).Iterator()
	n := 0
	for it.Next(ctx) {
		if !strings.HasPrefix(it.Val(), "apple:1") {
			t.Fatalf("iterator gave %q", it.Val())
		}
		n++
	}
	if err := it.Err(); err != nil || n != 36 { // apple:12, 15, 18, 102, 105, …, 198
		t.Fatalf("iterator: %d ids, %v", n, err)
	}

	for _, bad := range []struct {
		args []any
		want string
	}{
		{[]any{"SCAN", "x"}, "ERR invalid cursor"},
		{[]any{"SCAN", "-1"}, "ERR invalid cursor"},
		{[]any{"SCAN", "18446744073709551616"}, "ERR invalid cursor"},
		{[]any{"SCAN", "0", "COUNT", "0"}, "ERR syntax error"},
		{[]any{"SCAN", "0", "COUNT", "x"}, "ERR value is not an integer or out of range"},
		{[]any{"SCAN", "0", "MATCH"}, "ERR syntax error"},
		{[]any{"SCAN", "0", "LIMIT", "5"}, "ERR syntax error"},
		{[]any{"SCAN"}, "ERR wrong number of arguments for 'scan' command"},
	} {
		if got := doErr(t, c, bad.args...); got != bad.want {
			t.Errorf("%v: %s, want %s", bad.args, got, bad.want)
		}
	}
	// Any cursor is answered.
	for _, cur := range []string{"1", "255", "256", "18446744073709551615", "123456789"} {
		do(t, c, "SCAN", cur, "COUNT", 3)
	}
	if got := do(t, c, "DBSIZE"); got != int64(len(all)) {
		t.Fatalf("DBSIZE %v after SCANs, want %d", got, len(all))
	}
}

// A scan returns every job held throughout while other clients push,
// reserve and acknowledge jobs, and ended jobs past the retention bound
// leave the store.
func TestScanWhileJobsComeAndGo(t *testing.T) {
	ts := start(t, func(s *setup) { s.scfg.MaxRetained = 50 })
	c := ts.client(t, resp2)
	keep := map[string]bool{}
	for i := range 2000 {
		keep[do(t, c, "JOBPUSH", "keep"+strconv.Itoa(i%3), "h", "p").(string)] = true
	}
	var mu sync.Mutex
	churned := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cw := ts.client(t, resp2)
			q := "churn" + strconv.Itoa(w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				id, err := cw.Do(ctx, "JOBPUSH", q, "h", "p").Text()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				churned[id] = true
				mu.Unlock()
				v, err := cw.Do(ctx, "JOBRESERVE", "w", 60000, "COUNT", 1, "QUEUES", q).Slice()
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range v {
					tok := check.MapField(r, "token")
					if err := cw.Do(ctx, "JOBACK", tok).Err(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	var seen []map[string]int
	for range 3 {
		seen = append(seen, scanAll(t, c, "COUNT", 5))
	}
	close(stop)
	wg.Wait()
	for i, s := range seen {
		for id := range keep {
			if s[id] == 0 {
				t.Fatalf("scan %d: %s, held throughout, not returned", i, id)
			}
		}
		for id := range s {
			if !keep[id] && !churned[id] {
				t.Fatalf("scan %d: %q was never pushed", i, id)
			}
		}
	}
	if n := ts.store.Len(); n > int64(len(keep))+50+10 {
		t.Fatalf("%d jobs held: ended jobs were not dropped, the test removes nothing", n)
	}
}
