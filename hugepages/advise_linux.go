package hugepages

import (
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"syscall"
	"unsafe"
)

// Advise readies about n bytes of heap for huge pages, as the package
// comment describes, and returns the region it marked (start and length;
// 0, 0 when it marked none). In mode "always" every mapping gets huge pages
// already and Advise marks nothing; in mode "never", or without THP, it
// returns ErrUnavailable. Call it once, early, before the heap grows: it
// runs a garbage collection and returns free memory to the system
// (debug.FreeOSMemory) to free the region for use.
//
// It also marks nothing, with ErrUnavailable, where committing the region
// could fail or cost: when the process has THP disabled (prctl), under
// strict overcommit (vm.overcommit_memory 2, where the region would count
// against the commit limit even untouched), or under an address-space
// limit (ulimit -v).
func Advise(n int) (start uintptr, length int, err error) {
	switch Mode() {
	case "always":
		return 0, 0, nil
	case "madvise":
	default:
		return 0, 0, ErrUnavailable
	}
	if n < hugeSize {
		return 0, 0, nil
	}
	if err := committable(); err != nil {
		return 0, 0, err
	}
	if start, err = mark(n); err != nil {
		return 0, 0, err
	}
	// Free the region and hand it back at once: untouched, it costs
	// nothing to release, and the runtime's figures stop counting it.
	debug.FreeOSMemory()
	return start, n, nil
}

// mark allocates n bytes, which the runtime maps fresh and leaves
// untouched, marks them MADV_HUGEPAGE and lets them go.
func mark(n int) (uintptr, error) {
	region := make([]byte, n)
	if err := syscall.Madvise(region, syscall.MADV_HUGEPAGE); err != nil {
		return 0, err
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(region))), nil
}

// prGetTHPDisable is prctl's PR_GET_THP_DISABLE.
const prGetTHPDisable = 42

// committable reports why marking a region could fail or cost, if it could.
func committable() error {
	if r, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prGetTHPDisable, 0, 0); e == 0 && r == 1 {
		return fmt.Errorf("%w: disabled for this process", ErrUnavailable)
	}
	if b, err := os.ReadFile(overcommitFile); err == nil && strings.TrimSpace(string(b)) == "2" {
		return fmt.Errorf("%w: strict overcommit", ErrUnavailable)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &lim); err == nil && lim.Cur != ^uint64(0) {
		return fmt.Errorf("%w: an address-space limit", ErrUnavailable)
	}
	return nil
}

// overcommitFile holds the kernel's overcommit policy.
var overcommitFile = "/proc/sys/vm/overcommit_memory"
