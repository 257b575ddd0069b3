package benchmarks

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole harness, every workload against every server,
// on tiny workloads, and checks that it produced every figure and the
// report. It asserts nothing about speed. Without redis-server,
// redis-benchmark or beanstalkd it is skipped, except in CI (CI set),
// where a missing tool is a failure.
func TestSmoke(t *testing.T) {
	for _, tool := range []string{"redis-server", "redis-benchmark", "beanstalkd"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed (apt-get install redis-server redis-tools beanstalkd)", tool)
			}
			t.Skipf("%s not installed (apt-get install redis-server redis-tools beanstalkd)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin := func(name, pkg string) string {
		out := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		return out
	}
	sluice := bin("sluice", "sluice")
	loadgen := bin("loadgen", "sluice/benchmarks/cmd/loadgen")
	benchrun := bin("benchrun", "sluice/benchmarks/cmd/benchrun")

	out := filepath.Join(dir, "out")
	cmd := exec.CommandContext(ctx, benchrun, "-smoke", "-sluice", sluice, "-loadgen", loadgen, "-out", out)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("benchrun -smoke: %v\n%s", err, log.String())
	}
	t.Logf("benchrun -smoke took %v", time.Since(start).Round(time.Millisecond))

	var rep struct {
		Mode  string   `json:"mode"`
		Order []string `json:"order"`
		Rows  []struct {
			ID     string `json:"id"`
			Target string `json:"target"`
			Res    struct {
				Ops       uint64             `json:"ops"`
				OpsPerSec float64            `json:"ops_per_sec"`
				P50       float64            `json:"p50_us"`
				Extra     map[string]float64 `json:"extra"`
			} `json:"result"`
		} `json:"rows"`
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if rep.Mode != "smoke" {
		t.Errorf("mode %q, want smoke", rep.Mode)
	}
	// Every server took part, and every figure counts work actually done.
	targets := map[string]int{}
	ids := map[string]bool{}
	for _, r := range rep.Rows {
		targets[r.Target]++
		ids[r.ID] = true
		if r.Res.Ops == 0 {
			t.Errorf("%s / %s: no operations", r.ID, r.Target)
		}
		if r.ID != "memory" && (r.Res.OpsPerSec <= 0 || r.Res.P50 <= 0) {
			t.Errorf("%s / %s: rate %v, p50 %v", r.ID, r.Target, r.Res.OpsPerSec, r.Res.P50)
		}
		if r.ID == "memory" && r.Res.Extra["rss_bytes_per_job"] <= 0 {
			t.Errorf("memory / %s: %v bytes per job", r.Target, r.Res.Extra["rss_bytes_per_job"])
		}
		if r.ID == "rate-limited key" && r.Res.Extra["max_in_window"] == 0 {
			t.Errorf("rate-limited key: no window measured")
		}
	}
	for _, tg := range []string{"sluice", "sluice-aof", "redis", "redis-list", "redis-stream", "beanstalkd"} {
		if targets[tg] == 0 {
			t.Errorf("no figures for %s", tg)
		}
	}
	for _, id := range rep.Order {
		if !ids[id] && !ids[id+" push"] {
			t.Errorf("measure %q produced no figure", id)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "RESULTS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Machine", "## DESIGN.md's bars", "reserve+ack, 50 workers", "bytes per queued 100-byte job",
		"## Memory per queued 100-byte job", "throughput.svg", "## Exact command lines", "redis-benchmark -h 127.0.0.1"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("RESULTS.md lacks %q", want)
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "throughput.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(svg), "<svg") || strings.Count(string(svg), "<polyline") != 4 {
		t.Errorf("throughput.svg: want an SVG with 4 lines, got %d", strings.Count(string(svg), "<polyline"))
	}
}
