package commands

import (
	"net/url"
	"testing"
)

// Every name gets a field name that holds none of the characters INFO
// parsers split at, and that decodes back to the name.
func TestInfoNameIsReversibleAndSafe(t *testing.T) {
	names := []string{
		"mail", "a:b", "a,b", "a=b", "a b", "a\r\nb", "a%3Ab", "%", "émails", "x\u2028y",
		"x\u0085y", "x\x1cy", "x\vy", "\xff\xfe", "tab\there", "#hash", "a\u00a0b", "a\x7fb", "日本",
	}
	seen := map[string]string{}
	for _, n := range names {
		got := infoName(n)
		for _, r := range got {
			if r == ':' || r == ',' || r == '=' || r == ' ' || r < ' ' || r == 0x7f || r == 0x85 || r == 0x2028 || r == 0x2029 || r == 0xa0 || r == 0xfffd {
				t.Errorf("infoName(%q) = %q holds %U", n, got, r)
			}
		}
		back, err := url.PathUnescape(got)
		if err != nil || back != n {
			t.Errorf("infoName(%q) = %q decodes to %q, %v", n, got, back, err)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("%q and %q both give %q", prev, n, got)
		}
		seen[got] = n
	}
	if got := infoName("émails"); got != "émails" {
		t.Errorf("a printable UTF-8 name is kept as it is: %q", got)
	}
}
