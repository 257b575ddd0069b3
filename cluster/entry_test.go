package cluster

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func sampleEntry() *Entry {
	e := &Entry{Kind: KindCommands, Now: 1765100000123,
		Batches: []Batch{
			{{[]byte("JOBPUSH"), []byte("q"), []byte("payload"), []byte("")}},
			{{[]byte("MULTI")}, {[]byte("JOBACK"), []byte("j1"), []byte("t1")}, {[]byte("EXEC")}},
		}}
	copy(e.Seed[:], "0123456789abcdef")
	return e
}

func TestEntryRoundTrip(t *testing.T) {
	for _, e := range []*Entry{sampleEntry(), {Kind: KindTick, Now: 42, Batches: []Batch{}}} {
		got, err := DecodeEntry(AppendEntry(nil, e))
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(e, got); d != "" {
			t.Fatalf("round trip (-want +got):\n%s", d)
		}
	}
}

// Every cut of a valid entry, a flipped version and trailing bytes are
// refused with an error.
func TestEntryRefusesDamage(t *testing.T) {
	data := AppendEntry(nil, sampleEntry())
	for n := range len(data) {
		if _, err := DecodeEntry(data[:n]); err == nil {
			t.Fatalf("entry cut at %d of %d bytes accepted", n, len(data))
		}
	}
	if _, err := DecodeEntry(append(data[:len(data):len(data)], 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	bad := append([]byte(nil), data...)
	bad[0] = EntryVersion + 1
	if _, err := DecodeEntry(bad); !errors.Is(err, ErrEntryVersion) {
		t.Fatalf("future version: %v", err)
	}
	bad[0], bad[1] = EntryVersion, 9
	if _, err := DecodeEntry(bad); !errors.Is(err, ErrEntryVersion) {
		t.Fatalf("unknown kind: %v", err)
	}
}

// FuzzDecodeEntry: any input decodes or errors, never panics, and what
// decodes encodes back to the same bytes.
func FuzzDecodeEntry(f *testing.F) {
	f.Add(AppendEntry(nil, sampleEntry()))
	f.Add(AppendEntry(nil, &Entry{Kind: KindTick}))
	f.Add([]byte{EntryVersion, KindCommands})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		if again := AppendEntry(nil, e); string(again) != string(data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", data, again)
		}
	})
}

// A padded length (a uvarint longer than it needs to be) is refused: one
// entry has one encoding.
func TestEntryRefusesPaddedLengths(t *testing.T) {
	data := AppendEntry(nil, &Entry{Kind: KindTick})
	padded := append(data[:headerLen:headerLen], 0x80, 0x00)
	if _, err := DecodeEntry(padded); err == nil {
		t.Fatal("padded count accepted")
	}
}
