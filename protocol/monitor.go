package protocol

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MONITOR, as Redis 7 does it: after +OK the client receives one line per
// command any client runs, a simple string in RESP2 and RESP3 alike (Redis
// builds "+..." and adds it to the reply verbatim; no push frame):
//
//	+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"
//
// the time the command ran, the database (always 0) and the client's
// address, then every argument quoted as Redis's sdscatrepr quotes it. As
// in Redis, commands flagged Admin (CONFIG, SLOWLOG, SHUTDOWN, ...) are not
// shown, nor commands refused before they run (unknown, wrong arity,
// NOAUTH, too large); AUTH's arguments and HELLO's AUTH username and
// password show as "(redacted)".
//
// A monitor's output has a goroutine of its own: every reply of the
// client, and every line, is appended to one buffer that the goroutine
// writes out, so that a command never waits for a monitor's socket. What
// the buffer holds counts in the client's buffers (--maxmemory-clients);
// past monitorLimit the monitor is disconnected, as Redis's
// client-output-buffer-limit disconnects a client that falls behind.
//
// Nobody monitoring costs one atomic load per command (Server.monitors).

// monitorLimit is the most a monitor's unwritten output may hold before it
// is disconnected (Redis's hard limit for pubsub clients). One line always
// fits in an empty buffer, however long.
const monitorLimit = 32 << 20

type monitor struct {
	c  *Client
	nc net.Conn // the socket itself; written only by run

	proto atomic.Uint32 // the client's protocol, for messages published to it (pubsub.go)

	mu      sync.Mutex // protects buf, gone, counted
	buf     []byte     // output not yet handed to run
	gone    bool       // stopped or over the limit: buf takes nothing more
	counted int64      // what c.memMon holds for this monitor

	wake   chan struct{} // one pending wake-up for run
	done   chan struct{} // closed by stop
	exited chan struct{} // closed when run returns
}

// monitorConn is the net.Conn a monitor's reply writer writes to: its
// replies join the monitor's buffer, in order with the lines.
type monitorConn struct {
	net.Conn
	m *monitor
}

func (mc monitorConn) Write(p []byte) (int, error) {
	if !mc.m.add(p) {
		return 0, net.ErrClosed
	}
	return len(p), nil
}

// SetWriteDeadline is run's business: the owner only appends.
func (mc monitorConn) SetWriteDeadline(time.Time) error { return nil }

// Monitor makes the client a monitor once the reply of the current command
// (MONITOR's +OK) is written: nothing is shown to it before that reply. A
// client that monitors already stays one.
func (c *Client) Monitor() {
	if !c.monitoring {
		c.monStart = true
	}
}

// startMonitor switches the client's replies to a monitor's buffer and
// starts its writer. Owner goroutine.
func (c *Client) startMonitor() *monitor {
	m := c.newMonitor()
	go m.run(c.srv.cfg.WriteTimeout)
	return m
}

// newMonitor switches the client's replies to a monitor's buffer; nothing
// writes it out until the caller starts run. Owner goroutine.
func (c *Client) newMonitor() *monitor {
	raw := c.nc
	if rc, ok := raw.(*rawConn); ok {
		// A write from another goroutine must not touch the read
		// session's state, which rawConn.Write does.
		raw = rc.Conn
	}
	m := &monitor{c: c, nc: raw, wake: make(chan struct{}, 1), done: make(chan struct{}), exited: make(chan struct{})}
	m.proto.Store(uint32(c.w.proto))
	c.mon = m
	c.w.nc = monitorConn{Conn: c.nc, m: m}
	return m
}

// add appends p to the buffer for run to write, and reports whether it
// was taken. Any goroutine.
func (m *monitor) add(p []byte) bool {
	m.mu.Lock()
	if m.gone {
		m.mu.Unlock()
		return false
	}
	if len(m.buf) > 0 && len(m.buf)+len(p) > monitorLimit {
		m.gone = true
		m.buf = nil
		grew := m.account()
		m.mu.Unlock()
		m.c.srv.accountMonitor(grew)
		m.c.srv.log.Warn().Int64("client", m.c.id).Str("addr", m.c.addr).Int("limit", monitorLimit).
			Msg("monitor or subscriber fell behind past its output limit: closing it")
		m.c.kill()
		return false
	}
	wasEmpty := len(m.buf) == 0
	m.buf = append(m.buf, p...)
	grew := m.account()
	m.mu.Unlock()
	m.c.srv.accountMonitor(grew)
	if wasEmpty {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// account brings c.memMon to what the buffer holds and returns the
// change. m.mu must be held.
func (m *monitor) account() int64 {
	d := int64(cap(m.buf)) - m.counted
	if d != 0 {
		m.counted += d
		m.c.memMon.Add(d)
	}
	return d
}

// run writes the buffer out whenever it holds something, until stop; then
// it writes what is left and returns. Started by startMonitor, stopped by
// stop (the client's goroutine, on its way out).
func (m *monitor) run(timeout time.Duration) {
	defer close(m.exited)
	for {
		stopping := false
		select {
		case <-m.wake:
		case <-m.done:
			stopping = true
		}
		m.mu.Lock()
		out := m.buf
		m.buf = nil // a buffer of its own for what comes meanwhile
		grew := m.account()
		m.mu.Unlock()
		m.c.srv.accountMonitor(grew)
		if len(out) > 0 {
			if timeout > 0 {
				_ = m.nc.SetWriteDeadline(time.Now().Add(timeout))
			}
			n, err := m.nc.Write(out)
			m.c.netOut.Add(int64(n))
			if err != nil {
				m.mu.Lock()
				m.gone = true
				m.buf = nil
				grew := m.account()
				m.mu.Unlock()
				m.c.srv.accountMonitor(grew)
				m.c.kill()
				return
			}
		}
		if stopping {
			return
		}
	}
}

// stop ends the monitor: it takes nothing more, and run writes what it
// holds (the client's last replies: QUIT's +OK) and returns. Owner
// goroutine, after removeMonitor.
func (m *monitor) stop() {
	m.mu.Lock()
	m.gone = true
	m.mu.Unlock()
	close(m.done)
	<-m.exited
	m.mu.Lock()
	m.buf = nil
	grew := m.account()
	m.mu.Unlock()
	m.c.srv.accountMonitor(grew)
}

// accountMonitor adds a monitor buffer's change to the server's client
// memory, and evicts past --maxmemory-clients, as sized does.
func (s *Server) accountMonitor(grew int64) {
	if grew == 0 {
		return
	}
	total := s.clientMem.Add(grew)
	if lim := s.cfg.MaxMemoryClients; grew > 0 && lim > 0 && total > lim {
		s.evictClients()
	}
}

// addMonitor publishes m: commands are shown to it from now on.
func (s *Server) addMonitor(m *monitor) {
	s.monMu.Lock()
	var ms []*monitor
	if old := s.monitors.Load(); old != nil {
		ms = append(ms, *old...)
	}
	ms = append(ms, m)
	s.monitors.Store(&ms)
	s.monMu.Unlock()
}

// removeMonitor withdraws m; with none left, monitors is nil again.
func (s *Server) removeMonitor(m *monitor) {
	s.monMu.Lock()
	defer s.monMu.Unlock()
	old := s.monitors.Load()
	if old == nil {
		return
	}
	var ms []*monitor
	for _, o := range *old {
		if o != m {
			ms = append(ms, o)
		}
	}
	if len(ms) == 0 {
		s.monitors.Store(nil)
		return
	}
	s.monitors.Store(&ms)
}

// monitored shows a command that ran to every monitor, unless it is
// flagged Admin. The caller has loaded a non-nil Server.monitors. A
// transaction shows each queued command as it runs, then EXEC, as Redis
// does: its runner calls this for each.
func (c *Client) monitored(ms []*monitor, cmd *Command, args [][]byte) {
	if cmd.Flags&Admin != 0 {
		return
	}
	line := monitorLine(make([]byte, 0, 64), time.Now(), c.addr, cmd, args)
	for _, m := range ms {
		m.add(line)
	}
}

// monitorLine appends a command's MONITOR line.
func monitorLine(b []byte, now time.Time, addr string, cmd *Command, args [][]byte) []byte {
	b = append(b, '+')
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, '.')
	us := strconv.AppendInt(make([]byte, 0, 6), int64(now.Nanosecond()/1000), 10)
	b = append(b, "000000"[len(us):]...)
	b = append(b, us...)
	b = append(b, " [0 "...)
	b = append(b, addr...)
	b = append(b, "] "...)
	redact := redacted(cmd, args)
	for i, a := range args {
		if i > 0 {
			b = append(b, ' ')
		}
		if redact(i) {
			b = append(b, `"(redacted)"`...)
			continue
		}
		b = appendRepr(b, a)
	}
	return append(b, '\r', '\n')
}

// redacted reports which arguments a monitor must not see, as Redis 7
// redacts them: every argument of AUTH, the username and password after
// HELLO's AUTH.
func redacted(cmd *Command, args [][]byte) func(i int) bool {
	if cmd.Flags&Redact == 0 {
		return func(int) bool { return false }
	}
	if cmd.Name != "hello" {
		return func(i int) bool { return i > 0 }
	}
	hidden := map[int]bool{}
	for j := 2; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case bytes.EqualFold(args[j], []byte("auth")) && more >= 2:
			hidden[j+1], hidden[j+2] = true, true
			j += 2
		case bytes.EqualFold(args[j], []byte("setname")) && more >= 1:
			j++
		}
	}
	return func(i int) bool { return hidden[i] }
}

// appendRepr quotes s as Redis's sdscatrepr does: in double quotes, with
// \\ and \" escaped, \n \r \t \a \b as such, other bytes outside printable
// ASCII as \xHH.
func appendRepr(b, s []byte) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\a':
			b = append(b, '\\', 'a')
		case '\b':
			b = append(b, '\\', 'b')
		default:
			if c >= 0x20 && c <= 0x7e {
				b = append(b, c)
			} else {
				b = append(b, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			}
		}
	}
	return append(b, '"')
}
