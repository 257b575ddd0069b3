package hugepages

import (
	"runtime/debug"
	"syscall"
	"unsafe"
)

// Advise readies about n bytes of heap for huge pages, as the package
// comment describes, and returns the region it marked (start and length;
// 0, 0 when it marked none). In mode "always" every mapping gets huge pages
// already and Advise marks nothing; in mode "never", or without THP, it
// returns ErrUnavailable. Call it once, early, before the heap grows: it
// runs a garbage collection to free the region for use.
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
