package persistence

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"sluice/store"
)

// The record codec is read off store.Record's `log` tags: each field's
// number, its kind of encoding and the record kinds that own it. The store
// declares; TestCodecGenerated writes record_codec.go from what it reads
// here, and the round-trip tests take their cases from it.

type fieldKind uint8

const (
	kInt     fieldKind = iota + 1 // int64: zigzag varint
	kUint                         // uint64: uvarint
	kByte                         // a uint8 type (State, Kind): uvarint
	kFlag                         // bool: the number alone, when true
	kString                       // length, bytes
	kBytes                        // length, bytes; written when non-nil
	kInts                         // count, varints
	kStrings                      // count, then length and bytes each
)

type field struct {
	name string
	typ  reflect.Type
	tag  byte
	kind fieldKind
	ops  []store.Op // the record kinds that own the field; none: the default for its number
}

var (
	// schema lists the fields in the order they are written: scalars, then
	// lists, each by field number. (The log has always been written in
	// this order.)
	schema = readSchema(reflect.TypeFor[store.Record]())
	// fields[op][tag] is the field that tag names in a record of kind op.
	fields = func() (t [256][256]*field) {
		for op := store.OpPush; op.Valid(); op++ {
			for i := range schema {
				f := &schema[i]
				switch {
				case len(f.ops) == 0 && t[op][f.tag] == nil:
					t[op][f.tag] = f
				case hasOp(f.ops, op):
					t[op][f.tag] = f // the owner beats the default
				}
			}
		}
		return t
	}()
)

// fieldOf returns the field tag names in a record of kind op, or nil.
func fieldOf(op store.Op, tag byte) *field { return fields[op][tag] }

func hasOp(ops []store.Op, op store.Op) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

// readSchema reads t's fields and checks the numbering: a mistake there
// is a programming error, found by every test of the package at start.
func readSchema(t reflect.Type) []field {
	opByName := map[string]store.Op{}
	for op := store.OpPush; op.Valid(); op++ {
		opByName[op.String()] = op
	}
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Name == "Op" {
			continue
		}
		tagText, ok := sf.Tag.Lookup("log")
		if !ok {
			panic(fmt.Sprintf("persistence: store.Record.%s has no log tag", sf.Name))
		}
		parts := strings.Split(tagText, ",")
		n, err := strconv.Atoi(parts[0])
		if err != nil || n < 1 || n > 254 {
			panic(fmt.Sprintf("persistence: store.Record.%s: bad field number %q", sf.Name, parts[0]))
		}
		f := field{name: sf.Name, typ: sf.Type, tag: byte(n), kind: kindOf(sf.Type)}
		if f.kind == 0 {
			panic(fmt.Sprintf("persistence: store.Record.%s: no encoding for %s", sf.Name, sf.Type))
		}
		for _, name := range parts[1:] {
			op, ok := opByName[name]
			if !ok {
				panic(fmt.Sprintf("persistence: store.Record.%s: unknown record kind %q", sf.Name, name))
			}
			f.ops = append(f.ops, op)
		}
		out = append(out, f)
	}
	// Fields sharing a number: at most one default, and no kind owning two.
	for i := range out {
		for k := i + 1; k < len(out); k++ {
			a, b := &out[i], &out[k]
			if a.tag != b.tag {
				continue
			}
			if a.kind != b.kind {
				panic(fmt.Sprintf("persistence: store.Record.%s and %s share number %d but not an encoding", a.name, b.name, a.tag))
			}
			if len(a.ops) == 0 && len(b.ops) == 0 {
				panic(fmt.Sprintf("persistence: store.Record.%s and %s share number %d and no record kind tells them apart", a.name, b.name, a.tag))
			}
			for _, op := range a.ops {
				if hasOp(b.ops, op) {
					panic(fmt.Sprintf("persistence: store.Record.%s and %s both claim number %d of %s records", a.name, b.name, a.tag, op))
				}
			}
		}
	}
	sort.SliceStable(out, func(i, k int) bool {
		li, lk := out[i].kind >= kInts, out[k].kind >= kInts
		if li != lk {
			return !li
		}
		return out[i].tag < out[k].tag
	})
	return out
}

func kindOf(t reflect.Type) fieldKind {
	switch t.Kind() {
	case reflect.Int64:
		return kInt
	case reflect.Uint64:
		return kUint
	case reflect.Uint8:
		return kByte
	case reflect.Bool:
		return kFlag
	case reflect.String:
		return kString
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.Uint8:
			return kBytes
		case reflect.Int64:
			return kInts
		case reflect.String:
			return kStrings
		}
	}
	return 0
}
