package protocol

import (
	"errors"
	"fmt"
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
