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
	// The fields that changed names, read from the old bytes (the earlier
	// encoder set field i of the struct to i*1000+op, or its string form).
	var r store.Record
	for off, i := 0, 0; off < len(data); i++ {
		n, _, _ := readRecord(data[off:], &r, nil)
		off += n
		switch r.Op {
		case store.OpPolicySet, store.OpPolicyDel, store.OpSnapPolicy, store.OpSnapAdmissions:
			if want := fmt.Sprintf("f7-op%d", r.Op); r.PolicyKey != want || r.CKey != "" {
				t.Errorf("%s: PolicyKey %q CKey %q, want the old CKey %q in PolicyKey", r.Op, r.PolicyKey, r.CKey, want)
			}
		case store.OpReserve:
			if want := int64(9000 + int(r.Op)); r.AdmittedAt != want || r.RunAt != 0 || !r.Admitted {
				t.Errorf("reserve: AdmittedAt %d RunAt %d Admitted %v, want the old RunAt %d in AdmittedAt", r.AdmittedAt, r.RunAt, r.Admitted, want)
			}
		case store.OpSnapExpired:
			if len(r.ExpiredTokens) != 3 || r.RetainedIDs != nil {
				t.Errorf("snapexpired: ExpiredTokens %q RetainedIDs %q", r.ExpiredTokens, r.RetainedIDs)
			}
		case store.OpSnapRetained:
			if len(r.RetainedIDs) != 3 || r.ExpiredTokens != nil {
				t.Errorf("snapretained: RetainedIDs %q ExpiredTokens %q", r.RetainedIDs, r.ExpiredTokens)
			}
		}
		if r.Op == store.OpPolicyDel && !r.Existed {
			t.Errorf("policydel: Existed not read from the old Admitted")
		}
	}
}
