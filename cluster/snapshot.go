package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"sluice/persistence"
	"sluice/store"
)

// A snapshot is the node's replicated state: the store's dump (the
// records a log rewrite writes), the users, the generator's state, and the
// time and index of the last entry applied.
//
//	snapshot = magic:"SLUICE-SNAP" version:1 index:8 now:8
//	           gen:uvarint-len+bytes users:uvarint-len+text dump
//
// It is taken on raft's FSM goroutine with the store's gate held alone, so
// that it is one moment's state: applying and this node's reads wait for
// the dump (in memory); writing it out (Persist) does not hold them up.

const (
	snapMagic   = "SLUICE-SNAP"
	snapVersion = 1
	// maxUsersText bounds the users section a snapshot may claim.
	maxUsersText = 64 << 20
)

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	if err := f.Broken(); err != nil {
		// The store stopped at the break: a snapshot stamped with a later
		// index would skip the entries since, for good.
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(snapMagic)
	b.WriteByte(snapVersion)
	f.st.BeginUnit()
	now := f.now.Load()
	b.Write(binary.BigEndian.AppendUint64(nil, f.index.Load()))
	b.Write(binary.BigEndian.AppendUint64(nil, uint64(now)))
	gen := f.gen.State()
	b.Write(binary.AppendUvarint(nil, uint64(len(gen))))
	b.Write(gen)
	users := f.srv.UsersText()
	b.Write(binary.AppendUvarint(nil, uint64(len(users))))
	b.WriteString(users)
	err := persistence.WriteDump(&b, f.st, now)
	if uerr := f.st.EndUnit(); err == nil {
		err = uerr
	}
	if err != nil {
		return nil, err
	}
	return &snapshot{data: b.Bytes()}, nil
}

type snapshot struct{ data []byte }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.data = nil }

// Restore implements raft.FSM: the node's state becomes the snapshot's.
// A snapshot this node cannot read stops it applying, as an entry would.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(bufio.NewReader(rc))
	if err == nil {
		err = f.restore(data)
	}
	if err != nil {
		err = fmt.Errorf("raft snapshot: %w", err)
		f.stop(err)
		f.log.Error().Err(err).Msg("cannot restore a replicated snapshot: this node stops applying and leaves the group")
	}
	return err
}

func (f *FSM) restore(data []byte) error {
	if !bytes.HasPrefix(data, []byte(snapMagic)) || len(data) < len(snapMagic)+1+16 {
		return errors.New("not a sluice snapshot")
	}
	data = data[len(snapMagic):]
	if data[0] != snapVersion {
		return fmt.Errorf("%w: snapshot version %d", ErrEntryVersion, data[0])
	}
	index := binary.BigEndian.Uint64(data[1:])
	now := int64(binary.BigEndian.Uint64(data[9:]))
	d := decoder{b: data[17:]}
	gen := d.bytes()
	users := d.bytes()
	if d.err != nil {
		return d.err
	}
	if len(users) > maxUsersText {
		return errors.New("snapshot users section too large")
	}
	var g store.EntryGenerator
	if err := g.SetState(gen); err != nil {
		return err
	}
	f.st.BeginUnit()
	defer func() { _ = f.st.EndUnit() }()
	if err := f.st.Flush(now); err != nil {
		return err
	}
	if err := persistence.ReadDump(d.b, f.st); err != nil {
		return err
	}
	if err := f.srv.ReplaceUsers(string(users), "snapshot"); err != nil {
		return err
	}
	if err := f.gen.SetState(gen); err != nil {
		return err
	}
	f.now.Store(now)
	f.index.Store(index)
	return nil
}
