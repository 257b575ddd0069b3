package store

// SetPeekSlice makes PeekPage read n jobs per hold of a queue's lock, so
// that tests with few jobs cross slices; hook, if set, runs between them.
func SetPeekSlice(s *Store, n int, hook func()) { s.peekSlice, s.peekHook = n, hook }
