// Package check holds test helpers whose failures name what differs: the
// field, not the whole reply.
package check

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Field reports, by name, a field that is not what the test wants, and
// lets the test go on (so that every field that differs is reported).
func Field[T comparable](t testing.TB, name string, got, want T) bool {
	t.Helper()
	if got != want {
		t.Errorf("%s = %#v, want %#v", name, got, want)
		return false
	}
	return true
}

// Fields compares the fields want names in got, a map reply, with want's
// values (nil: the field is absent or null), and stops the test with a
// diff that names each field that differs.
func Fields(t testing.TB, what string, got, want map[string]any) {
	t.Helper()
	picked := make(map[string]any, len(want))
	for k := range want {
		picked[k] = got[k]
	}
	if d := cmp.Diff(want, picked); d != "" {
		t.Fatalf("%s: fields differ (-want +got):\n%s", what, d)
	}
}

// Len stops the test unless list has n elements.
func Len[T any](t testing.TB, what string, list []T, n int) {
	t.Helper()
	if len(list) != n {
		t.Fatalf("%s: %d elements, want %d: %+v", what, len(list), n, list)
	}
}

// Equal stops the test with a diff that names each element or field of
// got that differs from want (opts as for cmp.Diff: fields to ignore, say).
func Equal(t testing.TB, what string, got, want any, opts ...cmp.Option) {
	t.Helper()
	if d := cmp.Diff(want, got, opts...); d != "" {
		t.Fatalf("%s differs (-want +got):\n%s", what, d)
	}
}

// MapField is a map reply's field, in either protocol's shape: a RESP3 map
// (map[any]any) or a RESP2 flat field/value list; nil if v is no map or
// lacks it. Safe in any goroutine.
func MapField(v any, name string) any {
	switch m := v.(type) {
	case map[any]any:
		return m[name]
	case []any:
		for i := 0; i+1 < len(m); i += 2 {
			if m[i] == name {
				return m[i+1]
			}
		}
	}
	return nil
}
