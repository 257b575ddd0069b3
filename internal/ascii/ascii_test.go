package ascii

import "testing"

func TestEqualFold(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"jobpush", "JOBPUSH", true},
		{"JobPush", "jOBpUSH", true},
		{"lib-name", "LIB-NAME", true},
		{"queues", "queue", false},
		{"a", "b", false},
		{"@", "`", false},      // 0x40 and 0x60 differ by the case bit, but are no letters
		{"[", "{", false},      // nor are 0x5b and 0x7b
		{"s", "ſ", false},      // U+017F folds to s in Unicode, not here
		{"k", "\u212a", false}, // the Kelvin sign
		{"\xff", "\xdf", false},
		{"é", "É", false}, // non-ASCII letters compare as bytes
		{"é", "é", true},
	}
	for _, c := range cases {
		if got := EqualFold(c.a, c.b); got != c.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
		if got := EqualFold([]byte(c.b), c.a); got != c.want {
			t.Errorf("EqualFold([]byte(%q), %q) = %v, want %v", c.b, c.a, got, c.want)
		}
	}
}

func TestAppendLower(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	got := AppendLower([]byte("x:"), all)
	w := []byte("x:")
	for c := 0; c < 256; c++ {
		b := byte(c)
		if 'A' <= b && b <= 'Z' {
			b += 32
		}
		w = append(w, b)
	}
	if string(got) != string(w) {
		t.Fatalf("AppendLower maps bytes other than A-Z:\n got %q\nwant %q", got, w)
	}
}
