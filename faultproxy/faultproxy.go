// Package faultproxy is a TCP proxy on loopback that injects network
// faults for tests: traffic through it can be passed, dropped or held, each
// direction on its own, and every connection can be cut.
//
// A proxy stands for one link: it listens on its own address and forwards
// every connection to one target. Up is the direction from the dialer to the
// target (its requests), Down the way back (the replies). A partition of a
// link one way, as raft sees it, is Up dropped on the proxy of the
// connections one node dials and Down dropped on the proxy of those the
// other node dials.
//
// Dropped bytes are read and thrown away, so the sender sees a peer that
// reads but never answers; held bytes stay unread, so the sender's writes
// block once the kernel's buffers fill (a paused or overloaded peer).
// Bytes already handed to the kernel before a change are not recalled.
package faultproxy

import (
	"net"
	"sync"
)

// Mode is what a proxy does with one direction of its traffic.
type Mode int32

const (
	Pass Mode = iota // forward
	Drop             // read and discard
	Hold             // stop reading until the mode changes
)

// Dir names a direction of the traffic through a proxy.
type Dir int

const (
	Up   Dir = iota // dialer to target
	Down            // target to dialer
)

// Proxy forwards connections from its address to a target. Its goroutines
// are owned by it and end with Close.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond // signalled when a mode changes or the proxy closes
	modes  [2]Mode
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New starts a proxy on listen (e.g. "127.0.0.1:0") that forwards to target.
func New(listen, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Set changes what the proxy does with one direction, for the connections
// open now and those to come.
func (p *Proxy) Set(d Dir, m Mode) {
	p.mu.Lock()
	p.modes[d] = m
	p.cond.Broadcast()
	p.mu.Unlock()
}

// SetBoth sets both directions.
func (p *Proxy) SetBoth(m Mode) {
	p.mu.Lock()
	p.modes = [2]Mode{m, m}
	p.cond.Broadcast()
	p.mu.Unlock()
}

// Mode reports what the proxy does with direction d.
func (p *Proxy) Mode(d Dir) Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.modes[d]
}

// Cut closes every connection open through the proxy (a reset link); new
// ones are accepted as before.
func (p *Proxy) Cut() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Close stops the proxy, closes its connections and waits for its
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		p.wg.Add(2)
		go p.pump(Up, in, out)
		go p.pump(Down, out, in)
	}
}

// track records a connection pair; false once the proxy is closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	for _, c := range cs {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

// pump copies one direction of a connection pair under the proxy's mode
// for it; when either side ends, it closes both.
func (p *Proxy) pump(d Dir, from, to net.Conn) {
	defer p.wg.Done()
	defer func() {
		from.Close()
		to.Close()
		p.untrack(from, to)
	}()
	buf := make([]byte, 32<<10)
	for {
		if _, ok := p.waitReadable(d); !ok {
			return
		}
		n, err := from.Read(buf)
		if n > 0 {
			// Bytes read just before a change to Hold wait with it;
			// the mode that applies is the one when they are sent.
			m, ok := p.waitReadable(d)
			if !ok {
				return
			}
			if m == Pass {
				if _, werr := to.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// waitReadable blocks while direction d is held; it reports the mode to
// read under, and false when the proxy closed.
func (p *Proxy) waitReadable(d Dir) (Mode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.modes[d] == Hold && !p.closed {
		p.cond.Wait()
	}
	return p.modes[d], !p.closed
}
