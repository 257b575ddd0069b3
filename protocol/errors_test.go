package protocol

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"sluice/store"
)

func TestErrorText(t *testing.T) {
	st, err := store.New(store.DefaultConfig(), store.NewSeqGenerator())
	if err != nil {
		t.Fatal(err)
	}
	policyErr := st.SetConcurrency(0, "k", 0)
	for _, tc := range []struct {
		err      error
		want     string
		internal bool
	}{
		{ErrSyntax, "ERR syntax error", false},
		{store.ErrNoJob, "NOJOB no such job", false},
		{fmt.Errorf("%w: while acking", store.ErrExpired), "EXPIRED the reservation's lease has expired: while acking", false},
		{fmt.Errorf("lost: %w", store.ErrFull), "FULL lost: FULL the server is at its job limit", false},
		{&store.StateError{ID: "j", From: store.Queued, To: store.Running}, "WRONGSTATE job j cannot go from queued to running", false},
		{policyErr, "ERR limit must be a positive integer", false},
		{Error("ERR two\r\nlines"), "ERR two  lines", false},
		{errors.New("disk on fire"), "ERR internal error", true},
	} {
		got, internal := ErrorText(tc.err)
		if got != tc.want || internal != tc.internal {
			t.Errorf("%v: got %q (internal %v), want %q (%v)", tc.err, got, internal, tc.want, tc.internal)
		}
	}
}

// storeErrors holds the value of every exported error of package store, by
// name. TestStoreErrorsCarryCodes finds the names in store's source, so an
// error added there and not here fails the test, and every error here must
// carry a code ErrorText puts at the head of its reply.
var storeErrors = map[string]error{
	"ErrNoJob":         store.ErrNoJob,
	"ErrNoReservation": store.ErrNoReservation,
	"ErrExpired":       store.ErrExpired,
	"ErrDupJob":        store.ErrDupJob,
	"ErrWrongState":    store.ErrWrongState,
	"ErrFull":          store.ErrFull,
	"ErrInvalid":       store.ErrInvalid,
	"ErrMisconf":       store.ErrMisconf,
	"ErrCronFull":      store.ErrCronFull,
	"ErrScanCursor":    store.ErrScanCursor,
	"ErrDupKey":        store.ErrDupKey,
	"ErrKeysFull":      store.ErrKeysFull,
	"ErrDepFailed":     store.ErrDepFailed,
	"ErrNoBatch":       store.ErrNoBatch,
	"ErrBatchFull":     store.ErrBatchFull,
	"ErrBatchesFull":   store.ErrBatchesFull,
	"DupKeyError":      &store.DupKeyError{Key: "k", ID: "j"},
	"StateError":       &store.StateError{ID: "j", From: store.Queued, To: store.Running},
}

// storeInternalErrors are store's exported errors that never reach a client,
// with the reason. They carry no code on purpose.
var storeInternalErrors = map[string]string{
	"ErrCursor": "QUEUEPEEK answers a bad cursor with SCAN's own error instead",
	"ErrReplay": "reported when the log is loaded at startup, before any client",
}

// storeErrorDecls reads store's non-test source and returns its exported
// error variables (Err*), its exported error types, and every error type
// (exported or not) that has no Code method.
func storeErrorDecls(t *testing.T) (vars, types, uncoded []string) {
	t.Helper()
	files, err := filepath.Glob("../store/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("store source not found: %v", err)
	}
	fset := token.NewFileSet()
	methods := map[string]map[string]bool{} // receiver type -> method names
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				if d.Tok != token.VAR {
					continue
				}
				for _, spec := range d.Specs {
					for _, n := range spec.(*ast.ValueSpec).Names {
						if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
							vars = append(vars, n.Name)
						}
					}
				}
			case *ast.FuncDecl:
				if d.Recv == nil || len(d.Recv.List) != 1 {
					continue
				}
				typ := d.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				id, ok := typ.(*ast.Ident)
				if !ok {
					continue
				}
				if methods[id.Name] == nil {
					methods[id.Name] = map[string]bool{}
				}
				methods[id.Name][d.Name.Name] = true
			}
		}
	}
	for typ, m := range methods {
		if !m["Error"] {
			continue
		}
		if ast.IsExported(typ) {
			types = append(types, typ)
		}
		if !m["Code"] {
			uncoded = append(uncoded, typ)
		}
	}
	return vars, types, uncoded
}

// TestStoreErrorsCarryCodes walks store's source for its errors: each error
// type must have a Code method, and each exported error must reach a client
// under its code, alone or wrapped.
func TestStoreErrorsCarryCodes(t *testing.T) {
	vars, types, uncoded := storeErrorDecls(t)
	for _, typ := range uncoded {
		t.Errorf("store type %s is an error without a Code method: its replies would be %q", typ, ErrInternal)
	}
	found := map[string]bool{}
	for _, name := range append(vars, types...) {
		found[name] = true
		if _, ok := storeInternalErrors[name]; ok {
			continue
		}
		if _, ok := storeErrors[name]; !ok {
			t.Errorf("store.%s is not in storeErrors: give it a wire code (a Code method) and list it", name)
		}
	}
	for name := range storeErrors {
		if !found[name] {
			t.Errorf("storeErrors lists %s, which store no longer declares", name)
		}
	}
	for name := range storeInternalErrors {
		if !found[name] {
			t.Errorf("storeInternalErrors lists %s, which store no longer declares", name)
		}
	}
	if len(found) < len(storeErrors) {
		t.Fatalf("found only %v in store's source", vars)
	}

	for name, e := range storeErrors {
		var ce Coded
		if !errors.As(e, &ce) || ce.Code() == "" {
			t.Errorf("store.%s (%q) has no code", name, e)
			continue
		}
		code := ce.Code()
		if msg := e.Error(); msg != code && !strings.HasPrefix(msg, code+" ") {
			t.Errorf("store.%s: text %q does not start with its code %q", name, msg, code)
		}
		for _, tc := range []struct {
			err  error
			want string
		}{
			{e, e.Error()},
			{fmt.Errorf("%w (while acking)", e), e.Error() + " (while acking)"},
			{fmt.Errorf("lost: %w", e), code + " lost: " + e.Error()},
		} {
			got, internal := ErrorText(tc.err)
			if internal || got != tc.want {
				t.Errorf("store.%s: ErrorText(%q) = %q (internal %v), want %q", name, tc.err, got, internal, tc.want)
			}
		}
	}
}

// TestErrorTextAllocs: turning a refusal whose text is already its reply
// into that reply copies nothing.
func TestErrorTextAllocs(t *testing.T) {
	for _, e := range []error{ErrSyntax, store.ErrNoJob, fmt.Errorf("%w (while acking)", store.ErrExpired)} {
		if n := testing.AllocsPerRun(100, func() { ErrorText(e) }); n != 0 {
			t.Errorf("ErrorText(%q): %v allocations, want 0", e, n)
		}
	}
}
