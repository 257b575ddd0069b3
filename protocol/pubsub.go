package protocol

import (
	"sync"

	"github.com/tidwall/match"
)

// Publish/subscribe, enough for Sentinel-aware clients: they subscribe to
// +switch-master on every node they know and learn of a new leader from
// it. A client may subscribe to any channel or pattern; the server
// publishes what Server.Publish is given.
//
// A subscriber's output has a goroutine of its own, a monitor's (see
// monitor.go): messages come from other goroutines at any time, and a
// publisher never waits for a subscriber's socket. What is not written yet
// counts in --maxmemory-clients, and past monitorLimit (Redis's hard
// client-output-buffer-limit for pubsub clients, 32 MiB) the subscriber is
// disconnected.
//
// A channel is registered and its confirmation (["subscribe", channel,
// count]) handed to that output in one critical section of pubsub.mu, so
// a message on the channel never overtakes the confirmation, and a client
// that has read the confirmation receives what is published afterwards.
//
// Lock order: pubsub.mu, then a monitor's mu (Publish takes them one
// after the other, never both).
//
// In RESP2 a subscribed client may run only the commands flagged PubSub
// (SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, PING, QUIT), as in
// Redis; in RESP3 replies and pushes share the connection, so every
// command may run.

// pubsub is the server's registry of subscriptions.
type pubsub struct {
	mu       sync.Mutex                       // protects channels, patterns
	channels map[string]map[*monitor]struct{} // channel name -> subscribers' outputs
	patterns map[string]map[*monitor]struct{} // glob -> subscribers' outputs
}

// errSubscribed is the error for a command a RESP2 subscriber may not run.
func errSubscribed(name string) Error {
	return Error("ERR Can't execute '" + name + "': only (P)SUBSCRIBE / (P)UNSUBSCRIBE / PING / QUIT are allowed in this context")
}

// Subscriptions is how many channels and patterns the client is subscribed
// to. Owner goroutine only.
func (c *Client) Subscriptions() int { return len(c.subs) + len(c.psubs) }

// Subscribe subscribes the client to channels (patterns, if pattern): for
// each, in order, the confirmation ["subscribe", name, count] (or
// "psubscribe") is sent as a push, and from then on the client receives
// what is published there. The command's own reply must be NoReply. Only
// the client's own command may call it.
func (c *Client) Subscribe(names [][]byte, pattern bool) {
	kind, set := "subscribe", &c.subs
	if pattern {
		kind, set = "psubscribe", &c.psubs
	}
	m := c.asyncOutput()
	for _, b := range names {
		name := string(b)
		if *set == nil {
			*set = map[string]struct{}{}
		}
		_, had := (*set)[name]
		(*set)[name] = struct{}{}
		// Registered and confirmed in one step for Publish, which
		// finds subscribers under the lock: once the confirmation can
		// reach the client the channel is registered, and a message
		// found afterwards joins the output behind the confirmation.
		c.srv.ps.mu.Lock()
		if !had {
			c.srv.ps.add(m, name, pattern)
		}
		c.sendNow(m, Push{kind, name, int64(c.Subscriptions())})
		c.srv.ps.mu.Unlock()
	}
}

// Unsubscribe ends the client's subscriptions to names, or to every
// channel (pattern, if pattern) when names is empty, confirming each as
// ["unsubscribe", name, count] (or "punsubscribe"); with nothing to end,
// one confirmation with a null name, as Redis sends. The command's own
// reply must be NoReply. Only the client's own command may call it.
func (c *Client) Unsubscribe(names [][]byte, pattern bool) {
	kind, set := "unsubscribe", &c.subs
	if pattern {
		kind, set = "punsubscribe", &c.psubs
	}
	if len(names) == 0 {
		for name := range *set {
			names = append(names, []byte(name))
		}
		if len(names) == 0 {
			c.sendNow(c.mon, Push{kind, nil, int64(c.Subscriptions())})
			return
		}
	}
	for _, b := range names {
		name := string(b)
		c.srv.ps.mu.Lock()
		if _, had := (*set)[name]; had {
			delete(*set, name)
			c.srv.ps.remove(c.mon, name, pattern)
		}
		c.sendNow(c.mon, Push{kind, name, int64(c.Subscriptions())})
		c.srv.ps.mu.Unlock()
	}
}

// asyncOutput gives the client a monitor's output goroutine, if it has
// none yet, and moves the replies buffered so far into it. Owner goroutine.
func (c *Client) asyncOutput() *monitor {
	if c.mon == nil {
		c.startMonitor()
		c.w.sent = nil // run counts what it writes
	}
	_ = c.w.flush() // into the monitor's buffer: no system call
	return c.mon
}

// sendNow hands v to m at once, behind what is buffered, so that it comes
// before anything published later; without m (a client that never
// subscribed) it is buffered as a reply.
func (c *Client) sendNow(m *monitor, v any) {
	c.w.appendReply(v, c.errFn)
	if m != nil {
		_ = c.w.flush()
	}
}

// unsubscribeAll withdraws every subscription of a client that is going.
func (c *Client) unsubscribeAll() {
	c.srv.ps.mu.Lock()
	defer c.srv.ps.mu.Unlock()
	for name := range c.subs {
		c.srv.ps.remove(c.mon, name, false)
	}
	for name := range c.psubs {
		c.srv.ps.remove(c.mon, name, true)
	}
	c.subs, c.psubs = nil, nil
}

// add registers c's subscription. p.mu must be held.
func (p *pubsub) add(c *monitor, name string, pattern bool) {
	m := &p.channels
	if pattern {
		m = &p.patterns
	}
	if *m == nil {
		*m = map[string]map[*monitor]struct{}{}
	}
	subs := (*m)[name]
	if subs == nil {
		subs = map[*monitor]struct{}{}
		(*m)[name] = subs
	}
	subs[c] = struct{}{}
}

// remove withdraws c's subscription. p.mu must be held.
func (p *pubsub) remove(c *monitor, name string, pattern bool) {
	m := p.channels
	if pattern {
		m = p.patterns
	}
	if subs := m[name]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(m, name)
		}
	}
}

// Publish sends message to every client subscribed to channel, and to
// every client with a matching pattern (once per pattern, as Redis does),
// and returns how many deliveries it made. A subscriber that has fallen
// past its output limit is disconnected instead. Any goroutine.
func (s *Server) Publish(channel, message string) int {
	type delivery struct {
		m     *monitor
		frame Push
	}
	var out []delivery
	s.ps.mu.Lock()
	for m := range s.ps.channels[channel] {
		out = append(out, delivery{m, Push{"message", channel, message}})
	}
	for pat, subs := range s.ps.patterns {
		if !match.Match(channel, pat) {
			continue
		}
		for m := range subs {
			out = append(out, delivery{m, Push{"pmessage", pat, channel, message}})
		}
	}
	s.ps.mu.Unlock()
	n := 0
	for _, d := range out {
		// A subscriber that has gone meanwhile takes nothing (add).
		if d.m.add(AppendReply(nil, d.frame, Proto(d.m.proto.Load()))) {
			n++
		}
	}
	return n
}

// Channels lists the channels with subscribers that match pattern (all,
// if empty): PUBSUB CHANNELS.
func (s *Server) Channels(pattern string) []string {
	s.ps.mu.Lock()
	defer s.ps.mu.Unlock()
	var out []string
	for name := range s.ps.channels {
		if pattern == "" || match.Match(name, pattern) {
			out = append(out, name)
		}
	}
	return out
}
