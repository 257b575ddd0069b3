package persistence

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sluice/store"
)

// dirState is every file of dir with its contents.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func sameDir(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: the directory changed: files %v, were %v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// rewrittenLog leaves in dir a log that a rewrite compacted, with changes
// after it: a base and an incr file, both holding jobs. It returns the
// state the log holds.
func rewrittenLog(t *testing.T, dir string, seed uint64) (want []store.Record, now int64) {
	t.Helper()
	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	now = 1000
	rng := rand.New(rand.NewPCG(seed, 5))
	workload(st, rng, &now, 300)
	if err := l.Rewrite(); err != nil {
		t.Fatal(err)
	}
	workload(st, rng, &now, 300)
	if _, err := st.Push(now, store.PushOptions{Queue: "a", Handler: "h", Payload: []byte("after the rewrite")}); err != nil {
		t.Fatal(err)
	}
	want = dump(t, st, now)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return want, now
}

func openErr(t *testing.T, cfg Config) error {
	t.Helper()
	st, err := store.New(cfg.Store, store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(cfg, st)
	if err == nil {
		l.Close()
		t.Fatalf("Open started with %d jobs; want a refusal", st.Len())
	}
	return err
}

// A manifest deleted after a rewrite: the start stops, names the files and
// the way to recover, and leaves every file as it was.
func TestMissingManifestRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	rewrittenLog(t, dir, 1)
	if err := os.Remove(filepath.Join(dir, manifestName)); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, dir)
	if len(before) != 2 {
		t.Fatalf("files after a rewrite: %v", slices.Sorted(maps.Keys(before)))
	}
	err := openErr(t, testConfig(t, dir))
	if !errors.Is(err, ErrNoManifest) {
		t.Fatalf("Open: %v, want ErrNoManifest", err)
	}
	for name := range before {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
	if !strings.Contains(err.Error(), "check-aof --rebuild-manifest "+dir) {
		t.Errorf("the error does not say how to recover: %v", err)
	}
	sameDir(t, "after the refused start", dirState(t, dir), before)
}

// A manifest naming a file that is not there, base or incr (the last incr
// included, which was once taken for an empty file): the start stops and
// names it.
func TestManifestNamingAMissingFileRefuses(t *testing.T) {
	for _, gone := range []string{"sluice.2.incr", "sluice.3.base"} {
		t.Run(gone, func(t *testing.T) {
			dir := t.TempDir()
			rewrittenLog(t, dir, 2)
			if m, _ := os.ReadFile(filepath.Join(dir, manifestName)); string(m) != "sluice-log 1\nbase sluice.3.base\nincr sluice.2.incr\n" {
				t.Fatalf("manifest after a rewrite:\n%s", m)
			}
			if err := os.Remove(filepath.Join(dir, gone)); err != nil {
				t.Fatal(err)
			}
			before := dirState(t, dir)
			err := openErr(t, testConfig(t, dir))
			if !errors.Is(err, ErrMissingFile) || !strings.Contains(err.Error(), gone) {
				t.Fatalf("Open: %v, want ErrMissingFile naming %s", err, gone)
			}
			sameDir(t, "after the refused start", dirState(t, dir), before)
		})
	}
}

// Files the manifest does not name, with contents, where the next new
// files would have gone: they are never appended to nor replaced, new
// files are numbered above them, and none of their jobs reappear.
func TestStaleFilesAreNeverWrittenTo(t *testing.T) {
	// Stale files: the log of another store, named as this log's next
	// incr and base (and the base's temporary file) would be.
	other := t.TempDir()
	st0, l0 := open(t, testConfig(t, other))
	for i := 0; i < 5; i++ {
		if _, err := st0.Push(500, store.PushOptions{Queue: "stale", Handler: "h", Payload: []byte("never held")}); err != nil {
			t.Fatal(err)
		}
	}
	l0.Close()
	staleData, err := os.ReadFile(filepath.Join(other, "sluice.1.incr"))
	if err != nil || len(staleData) == 0 {
		t.Fatal(err)
	}
	dir := t.TempDir()
	plant := func(names ...string) {
		t.Helper()
		for _, name := range names {
			if err := os.WriteFile(filepath.Join(dir, name), staleData, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	untouched := func(when string, names ...string) {
		t.Helper()
		for _, name := range names {
			if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != string(staleData) {
				t.Errorf("%s: %s was written to (%d bytes, was %d)", when, name, len(b), len(staleData))
			}
		}
	}

	cfg := testConfig(t, dir)
	st, l := open(t, cfg)
	now := int64(1000)
	rng := rand.New(rand.NewPCG(3, 5))
	workload(st, rng, &now, 200)
	l.Close()

	// There at the start: a rewrite takes numbers above them.
	plant("sluice.2.incr", "sluice.3.base", "sluice.3.base.tmp")
	st, l = open(t, cfg)
	workload(st, rng, &now, 100)
	if err := l.Rewrite(); err != nil {
		t.Fatal(err)
	}
	workload(st, rng, &now, 100)
	want := dump(t, st, now)
	l.Close()
	untouched("a rewrite after the start", "sluice.2.incr", "sluice.3.base", "sluice.3.base.tmp")
	st, l = open(t, cfg)
	sameState(t, "reopened", dump(t, st, now), want)

	// Put there while the server runs, named as its next files: the
	// rewrite that would have used them fails and leaves them be; the next
	// one numbers past them.
	plant("sluice.6.incr", "sluice.7.base.tmp")
	if err := l.Rewrite(); !errors.Is(err, os.ErrExist) {
		t.Fatalf("a rewrite onto an existing file: %v, want ErrExist", err)
	}
	workload(st, rng, &now, 100)
	plant("sluice.9.base.tmp")
	if err := l.Rewrite(); !errors.Is(err, os.ErrExist) {
		t.Fatalf("a rewrite onto an existing snapshot file: %v, want ErrExist", err)
	}
	workload(st, rng, &now, 100)
	if err := l.Rewrite(); err != nil {
		t.Fatal(err)
	}
	workload(st, rng, &now, 100)
	want = dump(t, st, now)
	l.Close()
	untouched("rewrites while running", "sluice.2.incr", "sluice.3.base", "sluice.3.base.tmp", "sluice.6.incr", "sluice.7.base.tmp", "sluice.9.base.tmp")
	st, l = open(t, cfg)
	defer l.Close()
	sameState(t, "reopened after the rewrites", dump(t, st, now), want)
}

// A new file is created exclusively: a file of that name is an error, and
// is left as it was.
func TestCreateNewRefusesAnExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.7.incr")
	if err := os.WriteFile(path, []byte("held"), 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := (OSFS{}).CreateNew(path); !errors.Is(err, os.ErrExist) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("CreateNew of an existing file: %v, want ErrExist", err)
	}
	if f, err := (OSFS{}).OpenAppend(path + ".missing"); err == nil {
		f.Close()
		t.Fatal("OpenAppend created a missing file")
	}
	if b, _ := os.ReadFile(path); string(b) != "held" {
		t.Fatalf("the file now holds %q", b)
	}
}

// Empty files with no manifest (a first start that crashed before writing
// it) hold nothing to lose: the log starts anew, numbered above them.
func TestEmptyFilesWithoutManifestStartANewLog(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sluice.1.incr"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	st, l := open(t, testConfig(t, dir))
	if _, err := st.Push(1, store.PushOptions{Queue: "a", Handler: "h"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if b, _ := os.ReadFile(filepath.Join(dir, "sluice.1.incr")); len(b) != 0 {
		t.Fatal("the leftover file was written to")
	}
	if m, _ := os.ReadFile(filepath.Join(dir, manifestName)); string(m) != "sluice-log 1\nincr sluice.2.incr\n" {
		t.Fatalf("manifest:\n%s", m)
	}
}

// The manifest, rebuilt from the files present, loads exactly the state the
// log held: after a finished rewrite, and in the middle of one (a base and
// two incr files).
func TestRebuildManifestRestoresTheLog(t *testing.T) {
	t.Run("after a rewrite", func(t *testing.T) {
		dir := t.TempDir()
		want, now := rewrittenLog(t, dir, 4)
		os.Remove(filepath.Join(dir, manifestName))
		res, err := RebuildManifest(OSFS{}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"sluice.3.base", "sluice.2.incr"}; !slices.Equal(res.Files, want) {
			t.Fatalf("rebuilt from files %q, want %q", res.Files, want)
		}
		if res.Replaced {
			t.Fatalf("rebuild says it replaced the manifest")
		}
		if len(res.Left) != 0 {
			t.Fatalf("rebuild left %q", res.Left)
		}
		st, l := open(t, testConfig(t, dir))
		defer l.Close()
		sameState(t, "rebuilt", dump(t, st, now), want)
	})
	t.Run("during a rewrite", func(t *testing.T) {
		dir := t.TempDir()
		rewrittenLog(t, dir, 5)
		cfg := testConfig(t, dir)
		ffs := &failCreateFS{}
		cfg.FS = ffs
		st, l := open(t, cfg)
		now := int64(100_000)
		rng := rand.New(rand.NewPCG(5, 6))
		workload(st, rng, &now, 100)
		ffs.fail.Store(true) // the rewrite switches files, then fails
		if err := l.Rewrite(); err == nil {
			t.Fatal("the rewrite did not fail")
		}
		workload(st, rng, &now, 100)
		want := dump(t, st, now)
		l.Close()
		// A stray older incr file, left by a removal that failed.
		os.WriteFile(filepath.Join(dir, "sluice.1.incr"), []byte("old"), 0o644)
		os.Remove(filepath.Join(dir, manifestName))
		res, err := RebuildManifest(OSFS{}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"sluice.3.base", "sluice.2.incr", "sluice.4.incr"}; !slices.Equal(res.Files, want) {
			t.Fatalf("rebuilt from files %q, want %q", res.Files, want)
		}
		if want := []string{"sluice.1.incr"}; !slices.Equal(res.Left, want) {
			t.Fatalf("rebuild left %q, want %q", res.Left, want)
		}
		st2, l2 := open(t, testConfig(t, dir))
		defer l2.Close()
		sameState(t, "rebuilt", dump(t, st2, now), want)
	})
	t.Run("a manifest naming a missing file", func(t *testing.T) {
		dir := t.TempDir()
		want, now := rewrittenLog(t, dir, 6)
		os.WriteFile(filepath.Join(dir, manifestName), []byte("sluice-log 1\nincr sluice.1.incr\n"), 0o644)
		res, err := RebuildManifest(OSFS{}, dir)
		if err != nil || !res.Replaced {
			t.Fatalf("rebuilt %+v, %v", res, err)
		}
		st, l := open(t, testConfig(t, dir))
		defer l.Close()
		sameState(t, "rebuilt", dump(t, st, now), want)
	})
}

// RebuildManifest refuses, and changes nothing, where the order of the
// files is in doubt or one of them is damaged.
func TestRebuildManifestRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string // in the error
	}{
		{"a sound manifest", func(t *testing.T, dir string) {}, "is sound"},
		{"no log files", func(t *testing.T, dir string) {
			for _, n := range []string{manifestName, "sluice.2.incr", "sluice.3.base"} {
				os.Remove(filepath.Join(dir, n))
			}
		}, "no log files"},
		{"a base without its incr file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, manifestName))
			os.Rename(filepath.Join(dir, "sluice.2.incr"), filepath.Join(dir, "sluice.4.incr"))
		}, "no sluice.2.incr"},
		{"incr files after a missing base", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, manifestName))
			os.Remove(filepath.Join(dir, "sluice.3.base"))
		}, "begin at sluice.2.incr"},
		{"two files of one number", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, manifestName))
			os.WriteFile(filepath.Join(dir, "sluice.2.base"), nil, 0o644)
		}, "same number"},
		{"a damaged file", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, manifestName))
			path := filepath.Join(dir, "sluice.3.base")
			b, _ := os.ReadFile(path)
			b[len(b)/2] ^= 0x40
			os.WriteFile(path, b, 0o644)
		}, "check-aof --fix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rewrittenLog(t, dir, 7)
			tc.change(t, dir)
			before := dirState(t, dir)
			_, err := RebuildManifest(OSFS{}, dir)
			if !errors.Is(err, ErrRebuild) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RebuildManifest: %v, want ErrRebuild saying %q", err, tc.want)
			}
			sameDir(t, "after the refusal", dirState(t, dir), before)
		})
	}
}

// A rewrite stopped at each of its file operations in turn, then the
// manifest lost: the rebuilt manifest loads the state as it was, and the
// log rewrites again around whatever the stopped rewrite left.
func TestRebuildAfterARewriteStoppedAtEveryStep(t *testing.T) {
	for step := 0; ; step++ {
		dir := t.TempDir()
		rewrittenLog(t, dir, 8) // a base to replace, and an incr file
		cfg := testConfig(t, dir)
		st, l := open(t, cfg)
		now := int64(100_000)
		workload(st, rand.New(rand.NewPCG(8, uint64(step))), &now, 200)
		want := dump(t, st, now)
		l.cfg.FS = &crashFS{failAt: step}
		err := l.Rewrite()
		l.cfg.FS = OSFS{}
		l.Close()
		if err := os.Remove(filepath.Join(dir, manifestName)); err != nil {
			t.Fatal(err)
		}
		res, rerr := RebuildManifest(OSFS{}, dir)
		if rerr != nil {
			t.Fatalf("stopped at step %d: %v", step, rerr)
		}
		st2, l2 := open(t, cfg)
		sameState(t, fmt.Sprintf("stopped at step %d, rebuilt as %v", step, res.Files), dump(t, st2, now), want)
		if err := l2.Rewrite(); err != nil {
			t.Fatalf("stopped at step %d: the next rewrite: %v", step, err)
		}
		l2.Close()
		st3, l3 := open(t, cfg)
		sameState(t, fmt.Sprintf("stopped at step %d, rewritten again", step), dump(t, st3, now), want)
		l3.Close()
		if err == nil { // no step left to fail
			if step < 8 {
				t.Fatalf("only %d steps seen", step)
			}
			return
		}
	}
}

// Names of the log's scheme, and names that are not.
func TestParseLogName(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		kind string
		ok   bool
	}{
		{"sluice.1.incr", 1, "incr", true},
		{"sluice.12.base", 12, "base", true},
		{"sluice.5.base.tmp", 5, "base.tmp", true},
		{"sluice.manifest", 0, "", false},
		{"sluice.manifest.tmp", 0, "", false},
		{"sluice.-1.incr", 0, "", false},
		{"sluice.+1.incr", 0, "", false},
		{"sluice.1.", 0, "", false},
		{"sluice..incr", 0, "", false},
		{"sluice.9223372036854775807.incr", 0, "", false}, // numbering above it would overflow
		{"other.1.incr", 0, "", false},
	} {
		n, kind, ok := parseLogName(tc.name)
		if n != tc.n || kind != tc.kind || ok != tc.ok {
			t.Errorf("parseLogName(%q) = %d, %q, %v; want %d, %q, %v", tc.name, n, kind, ok, tc.n, tc.kind, tc.ok)
		}
	}
}
