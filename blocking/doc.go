// Package blocking serves JOBRESERVE ... BLOCK: clients waiting for work,
// and the one timer that runs the store's maintenance when it is due.
//
// The Registry keeps, per queue, the clients waiting on it in arrival order.
// The store calls Notify(queue) whenever work in a queue may have become
// eligible. Notify serves that queue's waiters first-come first-served: it
// runs the store's own Reserve with each waiter's options (so priorities,
// handler filters and policies apply exactly as for a non-blocking reserve)
// and hands the result over a channel, then wakes the waiter through its
// Parker: the client's own goroutine, parked in a read of its connection
// so that a disconnect also ends the wait at once. It stops as soon as a
// waiter without a handler filter gets nothing (then nothing in the queue
// is eligible for anyone) and skips waiters whose filters already came up
// empty.
//
// A new waiter is listed on each of its queues (its own array of nodes, one
// per queue) and tried once, alone: registering marks no queue dirty, since
// nothing became eligible for the waiters already there. Registering n
// queues therefore costs O(n) whoever else waits on them.
//
// Only one goroutine serves at a time; a Notify that arrives meanwhile (also
// one raised by the store from inside a Reserve the server is running) marks
// its queue and returns, and the serving goroutine picks the queue up before
// it stops, so no wake-up is lost and no lock is held across a store call.
// A waiter that times out, disconnects or is shut down while a reservation
// is being made for it has that reservation released at once: by the
// serving goroutine, or by the waiter's own once its wait's done has run,
// so that the store is changed only where a command may change it (the
// server's gate held shared, never inside another client's transaction).
//
// The Timer is the only goroutine that sleeps: until the store's
// NextDeadline, re-armed by the store's timer hook. Its Tick expires leases,
// makes scheduled jobs due and opens rate windows, and the store's
// notifications then wake the waiters. Nothing polls.
//
// Lock order: Registry.mu is a leaf; it is never held while calling the
// store.
package blocking
