package client

import (
	"fmt"
	"strconv"
	"time"
)

// reply reads a flat field/value array ("map" reply) by field name.
type reply struct {
	cmd    any
	fields map[string]any
	err    error // first decoding problem, reported once at the end
}

func newReply(cmd, v any) *reply {
	arr, ok := v.([]any)
	if !ok || len(arr)%2 != 0 {
		return &reply{cmd: cmd, err: unexpected(cmd, v)}
	}
	m := make(map[string]any, len(arr)/2)
	for i := 0; i < len(arr); i += 2 {
		k, ok := arr[i].(string)
		if !ok {
			return &reply{cmd: cmd, err: unexpected(cmd, v)}
		}
		m[k] = arr[i+1]
	}
	return &reply{cmd: cmd, fields: m}
}

func (r *reply) fail(field string, v any) {
	if r.err == nil {
		r.err = fmt.Errorf("sluice: %v: unexpected value %#v for field %q", r.cmd, v, field)
	}
}

// str reads a string field; null reads as "".
func (r *reply) str(field string) string {
	switch v := r.fields[field].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		r.fail(field, v)
		return ""
	}
}

// int reads an integer field; null reads as 0.
func (r *reply) int(field string) int64 {
	switch v := r.fields[field].(type) {
	case int64:
		return v
	case string: // a server may send numbers as bulk strings
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			r.fail(field, v)
		}
		return n
	case nil:
		return 0
	default:
		r.fail(field, v)
		return 0
	}
}

// time reads a Unix-ms field; null reads as the zero Time.
func (r *reply) time(field string) time.Time {
	if r.fields[field] == nil {
		return time.Time{}
	}
	return time.UnixMilli(r.int(field))
}

func asInt(v, cmd any) (int64, error) {
	n, ok := v.(int64)
	if !ok {
		return 0, unexpected(cmd, v)
	}
	return n, nil
}

func unexpected(cmd, v any) error {
	return fmt.Errorf("sluice: %v: unexpected reply %#v", cmd, v)
}

// strs reads a field holding an array of strings; absent or null reads
// as nil.
func (r *reply) strs(field string) []string {
	switch v := r.fields[field].(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				r.fail(field, v)
				return nil
			}
			out[i] = s
		}
		return out
	default:
		r.fail(field, v)
		return nil
	}
}
