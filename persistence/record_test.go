package persistence

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"

	"sluice/store"
)

// fill sets every field that a record of kind op carries (as the schema
// gives them) to a value derived from seed, none zero, and returns the
// names it set.
func fill(r *store.Record, op store.Op, seed int) []string {
	*r = store.Record{Op: op}
	v := reflect.ValueOf(r).Elem()
	var names []string
	for tag := 0; tag < 256; tag++ {
		f := fieldOf(op, byte(tag))
		if f == nil {
			continue
		}
		names = append(names, f.name)
		fv := v.FieldByName(f.name)
		n := int64(seed*1000 + tag*7 + int(op))
		switch f.kind {
		case kInt:
			if tag%2 == 0 {
				n = -n // zigzag: negative values survive too
			}
			fv.SetInt(n)
		case kUint:
			fv.SetUint(uint64(n) << 33)
		case kByte:
			fv.SetUint(uint64(n%200 + 1))
		case kFlag:
			fv.SetBool(true)
		case kString:
			fv.SetString(fmt.Sprintf("%s-%d", f.name, n))
		case kBytes:
			if seed%2 == 0 {
				fv.SetBytes([]byte{}) // an empty payload is kept as empty, not nil
			} else {
				fv.SetBytes([]byte(fmt.Sprintf("payload-%d", n)))
			}
		case kInts:
			fv.Set(reflect.ValueOf([]int64{n, -n, 0}))
		case kStrings:
			fv.Set(reflect.ValueOf([]string{"a", "", fmt.Sprint(n)}))
		default:
			panic(f.name)
		}
	}
	return names
}

// TestRecordRoundTrip: every field of every record kind survives encoding
// and decoding. The cases come from store.Record's declaration, so a field
// added there is covered here without a line of this test changing.
func TestRecordRoundTrip(t *testing.T) {
	covered := map[string]bool{}
	for op := store.OpPush; op.Valid(); op++ {
		for seed := 1; seed <= 2; seed++ {
			var r store.Record
			for _, name := range fill(&r, op, seed) {
				covered[name] = true
			}
			buf := appendRecord(nil, &r)
			var got store.Record
			n, _, err := readRecord(buf, &got, nil)
			if err != nil || n != len(buf) {
				t.Fatalf("%s: read %d of %d bytes: %v", op, n, len(buf), err)
			}
			if d := cmp.Diff(r, got); d != "" {
				t.Errorf("%s record round trip (-sent +read):\n%s", op, d)
			}
		}
	}
	// Every field of the declaration is some record kind's.
	rt := reflect.TypeFor[store.Record]()
	for i := 0; i < rt.NumField(); i++ {
		if name := rt.Field(i).Name; name != "Op" && !covered[name] {
			t.Errorf("field %s belongs to no record kind, so no round trip covers it", name)
		}
	}
}

// TestRecordBytesUnchanged: records written before the record's fields
// were named one per meaning decode, and encode again, to the very same
// bytes. testdata/records-v1.bin holds one record of each kind with every
// field number set, as the earlier encoder wrote it.
func TestRecordBytesUnchanged(t *testing.T) {
	data, err := os.ReadFile("testdata/records-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	ops := 0
	for off := 0; off < len(data); ops++ {
		var r store.Record
		n, _, err := readRecord(data[off:], &r, nil)
		if err != nil {
			t.Fatalf("record at %d: %v", off, err)
		}
		if again := appendRecord(nil, &r); !bytes.Equal(again, data[off:off+n]) {
			t.Errorf("%s record at %d encodes differently:\n got %x\nwant %x", r.Op, off, again, data[off:off+n])
		}
		off += n
	}
	if want := int(store.OpSnapIdem); ops != want {
		t.Fatalf("read %d records, want one of each of %d kinds", ops, want)
	}
	var r store.Record
	for off := 0; off < len(data); {
		n, _, _ := readRecord(data[off:], &r, nil)
		off += n
		// The earlier encoder set every field of the struct as it was then,
		// field i to i*1000+op, "f<i>-op<op>", true or a list ending in
		// i*1000+op; CKey was its field 7, RunAt 9, Admitted 19 and Strings
		// 34. Each number now lands in the field the record's kind gives it.
		want := store.Record{
			CKey: fmt.Sprintf("f7-op%d", r.Op), RunAt: int64(9000 + int(r.Op)), Admitted: true,
			RetainedIDs: []string{"a", "", fmt.Sprint(34000 + int(r.Op))},
		}
		switch r.Op {
		case store.OpPolicySet, store.OpPolicyDel, store.OpSnapPolicy, store.OpSnapAdmissions:
			want.PolicyKey, want.CKey = want.CKey, ""
		case store.OpReserve:
			want.AdmittedAt, want.RunAt = want.RunAt, 0
		case store.OpSnapExpired:
			want.ExpiredTokens, want.RetainedIDs = want.RetainedIDs, nil
		}
		if r.Op == store.OpPolicyDel {
			want.Existed, want.Admitted = true, false
		}
		got := store.Record{PolicyKey: r.PolicyKey, CKey: r.CKey, AdmittedAt: r.AdmittedAt, RunAt: r.RunAt,
			Admitted: r.Admitted, Existed: r.Existed, ExpiredTokens: r.ExpiredTokens, RetainedIDs: r.RetainedIDs}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s record: fields sharing a number (-want +got):\n%s", r.Op, d)
		}
	}
}
