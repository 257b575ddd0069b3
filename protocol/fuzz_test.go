package protocol

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// FuzzGuard: whatever the bytes, guard + command reader terminate without
// panicking, every command that comes out respects the limits, and no more
// argument bytes come out than went in.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"*1\r\n$9223372036854775807\r\n", "*9223372036854775807\r\n", "PING\r\n",
		"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n", "*0\r\n*-1\r\n", "\"unbalanced\r\n", "*1\r\n$3\r\nab",
		"*2\r\n$4\r\nECHO\r\n$03\r\nabc\r\n*02\r\n$1\r\na\r\n$0\r\n\r\n", "*1\r\n$-0\r\n\r\n",
		"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n*1\r\n$65\r\n" + strings.Repeat("x", 65) + "\r\n",
		"*-9223372036854775808\r\n*-01\r\n", "*1\r\n$+1\r\na\r\n",
		"a \"b\\x41\\\"\" 'c\\'d' e\"f g\"\th\vi\r\n\"x\"y\r\n", "PING\r\nEC\x00HO\r\n",
		"*9\r\n" + strings.Repeat("$0\r\n\r\n", 9), "*8\r\n" + strings.Repeat("$64\r\n"+strings.Repeat("y", 64)+"\r\n", 8), "*1\r\n$2\r\nabX\n",
		"*2\r\n$4\r\nECHO\r\n$200\r\n" + strings.Repeat("z", 200) + "\r\n*1\r\n$4\r\nPING\r\n", "*1\r\n$257\r\n",
		"*12\r\n" + strings.Repeat("$1\r\na\r\n", 12) + "PING\r\n", "*3\r\n$60\r\n" + strings.Repeat("q", 60) + "\r\n$300\r\n",
	} {
		for _, chunk := range []uint8{0, 40, 200, 255} {
			f.Add([]byte(s), chunk)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		lim := Limits{MaxArgs: 8, MaxBulk: 64, MaxInline: 128, MaxCommand: 512, ProtoMaxBulk: 256}
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
		// Every refusal names a command the reader has not passed: it was
		// reported with its command, or that command is not complete.
		for _, r := range rd.guard.refusals {
			if r.at < rd.pos {
				t.Fatalf("refusal at %d left behind; the reader is at %d", r.at, rd.pos)
			}
		}

		// The fast path passes on exactly what the state machine would,
		// and fails where it would, however the input arrives and
		// whatever room each read offers.
		for _, unauth := range []bool{false, true} {
			lim.Unauthenticated = unauth
			src, room := 1+int(chunk)*3, 1+int(chunk^0x5a)*5
			fastOut, fastRef, fastErr := guardOutput(data, src, room, &lim, false)
			slowOut, slowRef, slowErr := guardOutput(data, src, room, &lim, true)
			if !bytes.Equal(fastOut, slowOut) || fmt.Sprint(fastErr) != fmt.Sprint(slowErr) || fmt.Sprint(fastRef) != fmt.Sprint(slowRef) {
				t.Fatalf("fast path: %q, %v, %v; state machine: %q, %v, %v", fastOut, fastRef, fastErr, slowOut, slowRef, slowErr)
			}
		}
	})
}

// guardOutput reads data through a guard in reads of room bytes, the
// source giving chunk bytes at a time, and returns what came out, the
// commands refused and the error that ended it. Before authentication it
// resumes after each pause.
func guardOutput(data []byte, chunk, room int, lim *Limits, noFast bool) ([]byte, []refusal, error) {
	g := newGuard(&chunkReader{data: data, n: chunk}, lim, 1024)
	g.noFast = noFast
	var out []byte
	p := make([]byte, room)
	for {
		n, err := g.Read(p)
		out = append(out, p[:n]...)
		if err != nil {
			return out, g.refusals, err
		}
	}
}
