package store_test

import (
	"bytes"
	"fmt"

	"sluice/store"
)

// The model's results and progress (store/results.go): JOBACK ... RESULT
// keeps the result with the job; JOBPROGRESS keeps the last value reported
// by a reserved or running job, changes updated_at and nothing else (the
// lease included).

func (m *model) AckResult(now int64, token string, result []byte) error {
	m.maintain(now)
	j, err := m.byToken(token, store.Succeeded)
	if err != nil {
		return err
	}
	if result != nil {
		j.job.Result = bytes.Clone(result)
		if j.job.Result == nil {
			j.job.Result = []byte{}
		}
	}
	m.brkOutcome(now, j, true)
	if j.job.State == store.Reserved {
		j.job.Attempt++
	}
	m.makeTerminal(now, j, store.Succeeded)
	return nil
}

func (m *model) Progress(now int64, token string, value []byte) error {
	if len(value) > store.MaxProgress {
		return store.ErrInvalid
	}
	m.maintain(now)
	j, err := m.byToken(token, store.Running)
	if err != nil {
		return err
	}
	j.job.Progress = append([]byte{}, value...)
	j.job.UpdatedAt = now
	return nil
}

// optBytes renders a value that may be absent (nil) or empty.
func optBytes(b []byte) string {
	if b == nil {
		return "nil"
	}
	return "\"" + string(b) + "\""
}

// results is an ack with a result or a progress report on tok.
func (g *opGen) results(now int64, tok string) op {
	value := [][]byte{nil, {}, []byte("r1"), []byte("50%"), bytes.Repeat([]byte("p"), store.MaxProgress+g.src.intn(2))}[g.src.intn(5)]
	if g.chance(50) {
		return op{fmt.Sprintf("AckResult(%q, %s)", tok, optBytes(value)), func(s sut) reply {
			return reply{text: errText(s.AckResult(now, tok, value))}
		}}
	}
	return op{fmt.Sprintf("Progress(%q, %s)", tok, optBytes(value)), func(s sut) reply {
		return reply{text: errText(s.Progress(now, tok, value))}
	}}
}
