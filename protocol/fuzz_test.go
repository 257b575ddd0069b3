package protocol

import (
	"bytes"
	"testing"

	"github.com/tidwall/redcon"
)

// FuzzGuard: whatever the bytes, guard + redcon's reader terminate without
// panicking, and every command that comes out respects the limits.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$9223372036854775807\r\n", "*9223372036854775807\r\n", "PING\r\n",
		"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n", "*0\r\n*-1\r\n", "\"unbalanced\r\n", "*1\r\n$3\r\nab",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		lim := Limits{MaxArgs: 8, MaxBulk: 64, MaxInline: 128, MaxCommand: 512}
		src := &chunkReader{data: data, n: int(chunk%32) + 1}
		g := newGuard(src, &lim, 64)
		rd := redcon.NewReader(g)
		total := 0
		for {
			cmds, err := rd.ReadCommands()
			for _, c := range cmds {
				if int64(len(c.Args)) > lim.MaxArgs {
					t.Fatalf("%d args passed the guard", len(c.Args))
				}
				for _, a := range c.Args {
					if int64(len(a)) > lim.MaxBulk+lim.MaxInline {
						t.Fatalf("argument of %d bytes passed the guard", len(a))
					}
				}
				total += len(c.Raw)
			}
			if err != nil {
				break
			}
		}
		if total > 2*len(data)+16*len(bytes.Split(data, []byte("\n"))) {
			t.Fatalf("more bytes came out (%d) than went in (%d)", total, len(data))
		}
	})
}
