package store

// Delete forgets a terminal job at once, as if its retention had run out
// (JOBDELETE), and logs it as such a drop. A job that has not finished is
// refused with WRONGSTATE: its lease or timer would name a job that is
// gone, so it must be cancelled first.
func (s *Store) Delete(now int64, id string) error {
	var fx effects
	r, sh, err := s.byID(now, id, &fx)
	if err == nil {
		if r.j == nil { // packed: queued
			err = &deleteStateError{ID: id, State: Queued}
		} else {
			err = s.deleteLocked(r.j, now, &fx)
		}
	}
	return s.done(sh, err, &fx)
}

// Lock must be held.
func (s *Store) deleteLocked(j *job, now int64, fx *effects) error {
	if !j.state.Terminal() {
		return &deleteStateError{ID: j.id, State: j.state}
	}
	if !s.retentionOf(j).remove(j) {
		return ErrNoJob // evicted from retention a moment ago
	}
	s.log(Record{Op: OpDrop, Now: now, ID: j.id}, fx) // counts the memory shares' part
	s.dropLocked(j)
	return nil
}

// deleteStateError is JOBDELETE of a job that has not finished. It
// matches ErrWrongState.
type deleteStateError struct {
	ID    string
	State State
}

func (e *deleteStateError) Error() string {
	return "WRONGSTATE job " + e.ID + " is " + e.State.String() + ": only a finished job can be deleted (cancel it first)"
}
func (e *deleteStateError) Is(target error) bool { return target == ErrWrongState }
func (e *deleteStateError) Code() string         { return "WRONGSTATE" }
