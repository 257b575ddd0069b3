package protocol

import (
	"testing"
)

// FuzzGuard: whatever the bytes, guard + command reader terminate without
// panicking, every command that comes out respects the limits, and no more
// argument bytes come out than went in.
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
		rd := newCmdReader(newGuard(src, &lim, 64), 64)
		total := 0
		for {
			cmds, err := readBatch(rd)
			for _, c := range cmds {
				if int64(len(c)) > lim.MaxArgs+lim.MaxInline {
					t.Fatalf("%d args passed the guard", len(c))
				}
				for _, a := range c {
					if int64(len(a)) > lim.MaxBulk+lim.MaxInline {
						t.Fatalf("argument of %d bytes passed the guard", len(a))
					}
					total += len(a)
				}
			}
			if err != nil {
				break
			}
			if len(rd.buf) > int(lim.MaxCommand)*2+128 {
				t.Fatalf("reader buffer grew to %d bytes", len(rd.buf))
			}
		}
		if total > len(data) {
			t.Fatalf("more bytes came out (%d) than went in (%d)", total, len(data))
		}
	})
}
