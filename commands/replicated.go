package commands

import (
	"sluice/protocol"
	"sluice/store"
)

// What a node of a replicated group (package cluster) needs from the
// handlers: a blocking JOBRESERVE waits on the leader, outside the log, and
// proposes a plain reservation each time work may be there.

// ReserveArgs reads JOBRESERVE's arguments: what to reserve, and how long
// to block for it (-1: not at all).
func (e *Env) ReserveArgs(args [][]byte) (store.ReserveOptions, int64, error) {
	return e.reserveArgs(args)
}

// ReservationsOf is the reservations in a JOBRESERVE reply (nil for none).
func ReservationsOf(reply any) []store.Reservation {
	rs, _ := reply.(reservations)
	return rs
}

// ReservationsReply is JOBRESERVE's reply for res.
func ReservationsReply(res []store.Reservation) any {
	if len(res) == 0 {
		return protocol.NullArray
	}
	return reservations(res)
}
