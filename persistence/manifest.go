package persistence

import (
	"bufio"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The manifest's errors. Open refuses to start with them rather than start
// empty, or from part of the log, and later write over files it never read.
var (
	// ErrNoManifest: the directory holds log files but no manifest.
	ErrNoManifest = errors.New("append-only log files without a manifest")
	// ErrMissingFile: the manifest names a file that is not there.
	ErrMissingFile = errors.New("append-only log manifest names a missing file")
	// ErrRebuild: RebuildManifest cannot tell which files make the log.
	ErrRebuild = errors.New("cannot rebuild the manifest")
)

const manifestName = "sluice.manifest"

// manifest lists the log's files in replay order.
type manifest struct {
	base  string
	incrs []string
}

func (m manifest) empty() bool { return m.base == "" && len(m.incrs) == 0 }

func (m manifest) files() []string {
	var out []string
	if m.base != "" {
		out = append(out, m.base)
	}
	return append(out, m.incrs...)
}

func (m manifest) last() string { return m.incrs[len(m.incrs)-1] }

func (m manifest) maxNumber() int {
	top := 0
	for _, f := range m.files() {
		if n, _, ok := parseLogName(f); ok && n > top {
			top = n
		}
	}
	return top
}

// logFileName is the name of log file number n of a kind ("incr", "base").
func logFileName(n int, kind string) string { return fmt.Sprintf("sluice.%d.%s", n, kind) }

// maxFileNumber bounds the numbers of log files: a name with a larger one
// is not the log's, so numbering above it cannot overflow.
const maxFileNumber = 1 << 48

// parseLogName reads a name of the form sluice.<N>.<kind>, kind being
// anything (incr, base, base.tmp). Every such file takes up its number:
// a new file is numbered above all of them.
func parseLogName(name string) (n int, kind string, ok bool) {
	rest, ok := strings.CutPrefix(name, "sluice.")
	if !ok {
		return 0, "", false
	}
	num, kind, ok := strings.Cut(rest, ".")
	if !ok || kind == "" || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, "", false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > maxFileNumber {
		return 0, "", false
	}
	return n, kind, true
}

// logFile is a file of the log's naming scheme found in the directory.
type logFile struct {
	name string
	num  int
	kind string
	size int64
}

// scanDir lists the directory's log files, by number, then name.
func scanDir(fsys FS, dir string) ([]logFile, error) {
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	var out []logFile
	for _, e := range entries {
		n, kind, ok := parseLogName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("listing %s: %w", dir, err)
		}
		out = append(out, logFile{name: e.Name(), num: n, kind: kind, size: info.Size()})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].num != out[j].num {
			return out[i].num < out[j].num
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

func names(files []logFile) []string {
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.name
	}
	return out
}

// readManifest reads dir's manifest; found is false when there is none.
func readManifest(fsys FS, dir string) (m manifest, found bool, err error) {
	path := filepath.Join(dir, manifestName)
	data, err := fsys.ReadFile(path)
	if err != nil {
		if errors.Is(err, errNotExist) {
			return manifest{}, false, nil
		}
		return manifest{}, false, fmt.Errorf("reading %s: %w", path, err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		kind := ""
		if len(fields) == 2 {
			_, kind, _ = parseLogName(fields[1])
		}
		switch {
		case len(fields) == 0:
		case line == 1 && len(fields) == 2 && fields[0] == "sluice-log" && fields[1] == "1":
		case line > 1 && len(fields) == 2 && fields[0] == "base" && kind == "base" && m.base == "" && len(m.incrs) == 0:
			m.base = fields[1]
		case line > 1 && len(fields) == 2 && fields[0] == "incr" && kind == "incr":
			m.incrs = append(m.incrs, fields[1])
		default:
			return manifest{}, true, fmt.Errorf("%s line %d: cannot read %q; run `sluice check-aof --rebuild-manifest %s` to rebuild it from the files present",
				path, line, sc.Text(), dir)
		}
	}
	if len(m.incrs) == 0 {
		return manifest{}, true, fmt.Errorf("%s names no incr file; run `sluice check-aof --rebuild-manifest %s` to rebuild it from the files present", path, dir)
	}
	return m, true, nil
}

// writeManifest replaces dir's manifest atomically.
func writeManifest(fsys FS, dir string, m manifest) error {
	var b strings.Builder
	b.WriteString("sluice-log 1\n")
	if m.base != "" {
		b.WriteString("base " + m.base + "\n")
	}
	for _, f := range m.incrs {
		b.WriteString("incr " + f + "\n")
	}
	tmp := filepath.Join(dir, manifestName+".tmp")
	f, err := fsys.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte(b.String())); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, filepath.Join(dir, manifestName)); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

func (l *Log) writeManifest(m manifest) error { return writeManifest(l.cfg.FS, l.cfg.Dir, m) }

// startPlan is what Open found in the directory: the manifest to load (nil
// for a new log), the number of the next new file, and the files that are
// not part of the log.
type startPlan struct {
	man    manifest
	found  bool
	next   int
	stray  []string // log files the manifest does not name
	unused []string // for a new log: empty files left by a start that crashed
}

// planStart reads the manifest and checks it against the directory: log
// files with no manifest, or a manifest naming a missing file, stop the
// start. Files the manifest does not name (a rewrite that died leaves
// some) are left alone, and new files are numbered above them.
func planStart(fsys FS, dir string) (startPlan, error) {
	files, err := scanDir(fsys, dir)
	if err != nil {
		return startPlan{}, err
	}
	man, found, err := readManifest(fsys, dir)
	if err != nil {
		return startPlan{}, err
	}
	p := startPlan{man: man, found: found, next: 1}
	if len(files) > 0 {
		p.next = files[len(files)-1].num + 1
	}
	if !found {
		var data []string
		for _, f := range files {
			if f.size > 0 {
				data = append(data, f.name)
			}
		}
		if len(data) > 0 {
			return startPlan{}, fmt.Errorf("%w: %s holds %s but no %s, so which of them make the log is unknown; refusing to start empty. With the server stopped, run `sluice check-aof --rebuild-manifest %s` to rebuild the manifest from them, or move them away to start with an empty log",
				ErrNoManifest, dir, strings.Join(names(files), ", "), manifestName, dir)
		}
		// Only empty files, as a start that crashed before its manifest
		// leaves: nothing to lose, but their numbers stay taken.
		p.unused = names(files)
		return p, nil
	}
	present := make(map[string]bool, len(files))
	for _, f := range files {
		present[f.name] = true
	}
	named := make(map[string]bool)
	var missing []string
	for _, name := range man.files() {
		named[name] = true
		if !present[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		have := "no log files"
		if len(files) > 0 {
			have = strings.Join(names(files), ", ")
		}
		return startPlan{}, fmt.Errorf("%w: %s names %s, not in %s (which holds %s); refusing to start from part of the log. Put the file back, or with the server stopped run `sluice check-aof --rebuild-manifest %s` to rebuild the manifest from the files present",
			ErrMissingFile, filepath.Join(dir, manifestName), strings.Join(missing, ", "), dir, have, dir)
	}
	for _, f := range files {
		if !named[f.name] {
			p.stray = append(p.stray, f.name)
		}
	}
	p.next = max(p.next, man.maxNumber()+1)
	return p, nil
}

// Rebuilt is what RebuildManifest wrote.
type Rebuilt struct {
	Path     string   // the manifest
	Files    []string // in replay order: the base, if any, then the incr files
	Records  []int64  // records in each of Files
	Left     []string // log files left out (older than the base, unfinished)
	Replaced bool     // a manifest was there (damaged, or naming a missing file)
}

// RebuildManifest writes dir's manifest from the log files present: the
// newest base (snapshot) and the incr files from the one written beside it
// on, in number order, or every incr file when there is no base. A rewrite
// numbers its new incr file N and its base N+1, so base N+1 is followed by
// incr N. It refuses (ErrRebuild) when that order is in doubt (two files
// of one number, a base without its incr file, incr files not starting at
// 1 with no base), when a chosen file has a bad record, and when a
// manifest is there naming files that are all present. It must not run
// beside a server using dir.
func RebuildManifest(fsys FS, dir string) (Rebuilt, error) {
	res := Rebuilt{Path: filepath.Join(dir, manifestName)}
	files, err := scanDir(fsys, dir)
	if err != nil {
		return res, err
	}
	old, found, err := readManifest(fsys, dir)
	if found && err == nil {
		present := make(map[string]bool, len(files))
		for _, f := range files {
			present[f.name] = true
		}
		intact := true
		for _, name := range old.files() {
			intact = intact && present[name]
		}
		if intact {
			return res, fmt.Errorf("%w: %s is sound (every file it names is there); remove it first to rebuild it anyway", ErrRebuild, res.Path)
		}
	}
	res.Replaced = found

	var base *logFile
	var incrs []logFile
	seen := make(map[int]string)
	for i, f := range files {
		if f.kind != "base" && f.kind != "incr" {
			continue // an unfinished snapshot (base.tmp)
		}
		if other, ok := seen[f.num]; ok {
			return res, fmt.Errorf("%w: %s and %s have the same number, which a log never gives two files", ErrRebuild, other, f.name)
		}
		seen[f.num] = f.name
		if f.kind == "base" {
			base = &files[i] // files are in number order: the last is the newest
		} else {
			incrs = append(incrs, f)
		}
	}
	if base == nil && len(incrs) == 0 {
		return res, fmt.Errorf("%w: %s holds no log files (sluice.N.base, sluice.N.incr); a server starts with an empty log there once %s is removed", ErrRebuild, dir, manifestName)
	}
	var chain []logFile
	if base != nil {
		chain = append(chain, *base)
		first := base.num - 1
		if seen[first] != logFileName(first, "incr") {
			return res, fmt.Errorf("%w: %s has no %s, the incr file a rewrite writes beside it, so the changes after that snapshot are missing", ErrRebuild, base.name, logFileName(first, "incr"))
		}
		for _, f := range incrs {
			if f.num >= first {
				chain = append(chain, f)
			}
		}
	} else {
		if incrs[0].num != 1 {
			return res, fmt.Errorf("%w: there is no base file and the incr files begin at %s, not sluice.1.incr: the snapshot they follow may be missing", ErrRebuild, incrs[0].name)
		}
		chain = incrs
	}
	inChain := make(map[string]bool, len(chain))
	for _, f := range chain {
		inChain[f.name] = true
		path := filepath.Join(dir, f.name)
		c, err := Check(fsys, path, false)
		if err != nil {
			return res, fmt.Errorf("%w: reading %s: %v", ErrRebuild, path, err)
		}
		if c.Problem != "" {
			return res, fmt.Errorf("%w: %s has a bad record at offset %d (%s); `sluice check-aof --fix %s` truncates it there, losing what follows",
				ErrRebuild, path, c.Good, c.Problem, path)
		}
		res.Files = append(res.Files, f.name)
		res.Records = append(res.Records, c.Records)
	}
	for _, f := range files {
		if !inChain[f.name] {
			res.Left = append(res.Left, f.name)
		}
	}
	m := manifest{}
	for _, f := range chain {
		if f.kind == "base" {
			m.base = f.name
		} else {
			m.incrs = append(m.incrs, f.name)
		}
	}
	if err := writeManifest(fsys, dir, m); err != nil {
		return res, fmt.Errorf("writing %s: %w", res.Path, err)
	}
	return res, nil
}
