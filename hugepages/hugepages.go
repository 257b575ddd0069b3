// Package hugepages lets the Go heap use transparent huge pages where the
// kernel offers them only on request (THP mode "madvise", the default of
// most distributions).
//
// Why: every 4 KiB page a growing heap touches for the first time costs a
// page fault, and on virtual machines a fault can cost 10 µs or more. A
// million queued jobs take about 50,000 pages; with 2 MiB pages the same
// memory takes under 2,000 faults.
//
// How: the Go runtime maps heap memory as it grows and asks for no huge
// pages. Advise makes the runtime map a large region at once (one
// allocation it never touches), marks that region MADV_HUGEPAGE, and frees
// it. The runtime hands out its lowest free pages first, so the heap grows
// into the advised region, and the kernel backs each 2 MiB of it with one
// huge page on first touch. Growth past the region gets ordinary pages.
// Untouched, the region costs address space, not memory, under the
// kernel's default overcommit policy; Advise declines where it would count
// (strict overcommit, an address-space limit).
//
// The trade-offs, which --hugepages no avoids: a first touch may wait while
// the kernel compacts memory to find a free huge page (THP defrag mode
// "madvise", the usual default), and memory the runtime gives back inside
// the region may be merged into huge pages again by khugepaged, so the
// process's resident memory shrinks less after a backlog drains.
package hugepages

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrUnavailable is returned by Advise when the kernel gives no huge pages
// on request: THP mode "never", or no THP support at all.
var ErrUnavailable = errors.New("transparent huge pages are not available on request")

// modeFile holds the kernel's THP mode, as "always [madvise] never".
var modeFile = "/sys/kernel/mm/transparent_hugepage/enabled"

// Mode returns the kernel's THP mode: "always", "madvise" or "never"; ""
// when it cannot be read (no THP support, or not Linux).
func Mode() string {
	b, err := os.ReadFile(modeFile)
	if err != nil {
		return ""
	}
	return parseMode(string(b))
}

// parseMode picks the bracketed word of a THP mode file.
func parseMode(s string) string {
	for _, f := range strings.Fields(s) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return f[1 : len(f)-1]
		}
	}
	return ""
}

// DefaultSize is the region Advise is given by default: an eighth of the
// machine's memory, at most 1 GiB, so that mapping it stays far inside
// what the default overcommit heuristic allows; 0 when the machine's
// memory cannot be read.
func DefaultSize() int {
	total := memTotal()
	if total <= 0 {
		return 0
	}
	return int(min(total/8, 1<<30)) &^ (hugeSize - 1)
}

// hugeSize is a huge page on the platforms this package advises for.
const hugeSize = 2 << 20

// memTotal reads MemTotal from /proc/meminfo, in bytes; 0 if unknown.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		var unit string
		line := sc.Text()
		if strings.HasPrefix(line, "MemTotal:") {
			if _, err := fmt.Sscan(line[len("MemTotal:"):], &kb, &unit); err == nil && unit == "kB" {
				return kb << 10
			}
			return 0
		}
	}
	return 0
}
