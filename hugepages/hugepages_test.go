//go:build linux

package hugepages

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestParseMode(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never\n": "madvise",
		"[always] madvise never\n": "always",
		"always madvise [never]\n": "never",
		"always madvise never\n":   "",
		"[]\n":                     "",
		"":                         "",
	} {
		if got := parseMode(in); got != want {
			t.Errorf("parseMode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestModeOfAMissingFile(t *testing.T) {
	defer func(f string) { modeFile = f }(modeFile)
	modeFile = filepath.Join(t.TempDir(), "none")
	if m := Mode(); m != "" {
		t.Fatalf("Mode() = %q without the file", m)
	}
	if _, _, err := Advise(64 << 20); err != ErrUnavailable {
		t.Fatalf("Advise without THP: %v, want ErrUnavailable", err)
	}
}

func TestDefaultSize(t *testing.T) {
	n := DefaultSize()
	if n <= 0 || n > 1<<30 || n%hugeSize != 0 {
		t.Fatalf("DefaultSize() = %d: want a multiple of 2 MiB in (0, 1 GiB]", n)
	}
	if int64(n) > memTotal()/8 {
		t.Fatalf("DefaultSize() = %d, more than an eighth of %d", n, memTotal())
	}
}

// TestHeapGrowsIntoHugePages checks the whole promise: the region is
// marked, the heap's next allocations land in it, and the kernel backs
// them with huge pages.
func TestHeapGrowsIntoHugePages(t *testing.T) {
	if m := Mode(); m != "madvise" {
		t.Skipf("THP mode is %q; Advise marks memory only in mode madvise", m)
	}
	if err := committable(); err != nil {
		t.Skipf("Advise declines here: %v", err)
	}
	const n = 256 << 20
	start, length, err := Advise(n)
	if err != nil || length != n || start == 0 {
		t.Fatalf("Advise: %#x, %d, %v", start, length, err)
	}
	end := start + uintptr(length)

	// Small objects, as a store's records are: 64 MiB of them.
	const size, count = 64, 1 << 20
	objs := make([]*[size]byte, count)
	in := 0
	for i := range objs {
		o := new([size]byte)
		o[0] = 1 // touch it
		objs[i] = o
		if a := uintptr(unsafe.Pointer(o)); a >= start && a < end {
			in++
		}
	}
	if in < count*9/10 {
		t.Fatalf("%d of %d new objects in the advised region [%#x, %#x)", in, count, start, end)
	}

	flagged, huge := regionStats(t, start, end)
	if !flagged {
		t.Fatalf("the region [%#x, %#x) is not marked for huge pages (VmFlags hg)", start, end)
	}
	if huge == 0 {
		t.Fatalf("no huge pages back the region [%#x, %#x) after touching 64 MiB of it", start, end)
	}
	t.Logf("%d of %d objects in the region; %d MiB of it in huge pages", in, count, huge>>20)
	_ = objs[count-1]
}

// regionStats reads /proc/self/smaps for the mappings that overlap [start,
// end): whether every one carries VmFlags "hg" (MADV_HUGEPAGE), and their
// AnonHugePages in bytes.
func regionStats(t *testing.T, start, end uintptr) (flagged bool, huge int64) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flagged = true
	seen, overlaps := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				overlaps = uintptr(a) < end && uintptr(b) > start
				seen = seen || overlaps
				continue
			}
		}
		if !overlaps {
			continue
		}
		switch fields[0] {
		case "AnonHugePages:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			huge += kb << 10
		case "VmFlags:":
			if !strings.Contains(" "+strings.Join(fields[1:], " ")+" ", " hg ") {
				flagged = false
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return flagged && seen, huge
}

func TestAdviseDeclinesStrictOvercommit(t *testing.T) {
	if m := Mode(); m != "madvise" {
		t.Skipf("THP mode is %q; Advise declines before looking at overcommit", m)
	}
	defer func(f string) { overcommitFile = f }(overcommitFile)
	overcommitFile = filepath.Join(t.TempDir(), "overcommit_memory")
	if err := os.WriteFile(overcommitFile, []byte("2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, n, err := Advise(64 << 20); !errors.Is(err, ErrUnavailable) || n != 0 {
		t.Fatalf("Advise under strict overcommit: %d bytes, %v", n, err)
	}
}
