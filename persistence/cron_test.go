package persistence

import (
	"fmt"
	"slices"
	"testing"

	"sluice/store"
)

// @every 1s over ten minutes of a test clock, with three restarts (one
// after a rewrite): exactly one job for each second during which the
// server was up (a tick is fired by maintenance within store.CronGrace
// after it), none doubled, and every restart finds the entry as it was.
// TestCronSoak (in the root package) runs the same check against the
// binary, killed with SIGKILL, on the real clock.
func TestCronEverySecondAcrossRestarts(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	const base = int64(1_800_000_000_000)
	// Downtimes: one within a second whose tick fired (which must not fire
	// again), and two across ticks: a tick missed by less than the grace
	// fires late at the restart; ticks missed by more are skipped.
	downs := [][2]int64{{150_300, 150_900}, {300_300, 302_600}, {450_900, 455_900}}
	st, l := open(t, cfg)
	if _, err := st.CronSet(base+250, store.CronOptions{Name: "beat", Spec: "@every 1s", Queue: "q", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	var ticked []int64 // every instant maintenance ran at
	now := base + 250
	step := func(to int64) {
		for ; now < to; now += 50 {
			st.Tick(now)
			ticked = append(ticked, now)
		}
	}
	for i, d := range downs {
		step(base + d[0])
		want := dump(t, st, now)
		ticked = append(ticked, now)
		if i == 1 {
			if err := l.Rewrite(); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		st, l = open(t, cfg)
		sameState(t, fmt.Sprintf("restart %d", i+1), dump(t, st, now), want)
		now = base + d[1]
	}
	step(base + 600_000)
	defer l.Close()
	st.Tick(now) // the reads below maintain at now too
	ticked = append(ticked, now)

	var want []int64
	for tick := base + 1000; tick <= now; tick += 1000 {
		// Fired iff maintenance ran within the grace after the tick.
		i, _ := slices.BinarySearch(ticked, tick)
		if i < len(ticked) && ticked[i] < tick+store.CronGrace {
			want = append(want, tick)
		}
	}
	js, err := st.Peek(now, "q", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, j := range js {
		got = append(got, j.CreatedAt)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%d jobs, want %d: got %v\nwant %v", len(got), len(want), got, want)
	}
	// 600 ticks in ten minutes. Down 0.6 s: none skipped, 150000 not
	// again. Down 2.3 s: 301000 skipped, 302000 late. Down 5 s: 451000 to
	// 454000 skipped, 455000 late. Two misfires, five ticks skipped.
	e, _ := st.CronGet(now, "beat")
	if len(want) != 595 || e.Fired != int64(len(want)) || e.Missed != 2 {
		t.Fatalf("%d jobs (want 595), entry %+v", len(want), e)
	}
	if err := st.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
