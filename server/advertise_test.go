package server

import (
	"strings"
	"testing"
)

// A node listening on every address cannot tell the others where to send
// its clients unless it is told; one listening on an address, or told
// one, can.
func TestClientAdvertise(t *testing.T) {
	for _, c := range []struct{ option, first, want, err string }{
		{"", "127.0.0.1:6379", "127.0.0.1:6379", ""},
		{"", "[::1]:6379", "[::1]:6379", ""},
		{"127.0.0.1:7000", "0.0.0.0:6379", "127.0.0.1:7000", ""},
		{"", "0.0.0.0:6379", "", "--cluster-client-advertise"},
		{"", "[::]:6379", "", "--cluster-client-advertise"},
	} {
		got, err := clientAdvertise(c.option, c.first)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("clientAdvertise(%q, %q) = %q, %v; want an error naming %s", c.option, c.first, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("clientAdvertise(%q, %q) = %q, %v; want %q", c.option, c.first, got, err, c.want)
		}
	}
}
