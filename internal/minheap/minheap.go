// Package minheap is a binary min-heap over a slice, for element types
// that order themselves: the cold heaps of the store (expired tokens,
// idempotency keys) and of the policy registry (throttle ends). Written
// out rather than container/heap, whose interface boxes every element
// pushed or popped.
//
// The store's heaps come in three styles, each where a benchmark puts it
// (store/heap_test.go; go test ./store -bench Timers, medians of 7
// alternated runs on 1,024 timers, 2 cores):
//
//   - this generic heap, for the cold heaps: one copy of the code. On the
//     lane timers it measured 693 ns/op against 317 for the same heap
//     written out (calls to Less through the generic dictionary are not
//     inlined), which is why the hot ones are not built on it;
//   - written out per type (store/timers.go), for the timers every lease,
//     retry and parked lane arms: job timers 241 ns/op against 437 through
//     container/heap, lane timers 317 against 726 and 2 allocations;
//   - container/heap (store/queue.go, store/peek.go), for the reservation
//     order's heaps of pointers, which box nothing.
package minheap

// Lesser is an element that orders itself.
type Lesser[T any] interface{ Less(T) bool }

// Push adds x to h and returns the heap.
func Push[T Lesser[T]](h []T, x T) []T {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].Less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// Pop removes the least element of the non-empty h and returns the
// heap and that element. The slot it leaves is zeroed, so the backing
// array keeps no pointer to it.
func Pop[T Lesser[T]](h []T) ([]T, T) {
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	var zero T
	h[n] = zero
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].Less(h[l]) {
			m = r
		}
		if !h[m].Less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return h, top
}
