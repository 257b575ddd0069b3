//go:build !linux

package hugepages

// Advise returns ErrUnavailable: huge pages on request are Linux's.
func Advise(n int) (start uintptr, length int, err error) {
	return 0, 0, ErrUnavailable
}
