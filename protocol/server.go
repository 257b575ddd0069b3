package protocol

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Config tunes a Server. DefaultConfig gives the documented defaults.
type Config struct {
	RequirePass  string        // "" : no AUTH, and only loopback clients (protected mode)
	ACLFile      string        // users loaded at start and by ACL LOAD, written by ACL SAVE; "": none
	MaxClients   int           // default 10000
	IdleTimeout  time.Duration // close clients idle this long; 0: never (default)
	WriteTimeout time.Duration // a reply write taking longer (or at least 7/8 of it) closes the client; default 30 s
	Limits       Limits        // per-command limits once authenticated
	PreAuth      Limits        // per-command limits before AUTH (only with RequirePass)
	ReadBuffer   int           // bytes read from the socket at a time; default 16 KiB
	FlushAt      int           // reply bytes buffered before an early write; default 64 KiB
	// MaxMemoryClients bounds what every client's input and output buffers
	// hold together; past it the clients holding the most are closed. 0: no
	// limit. Default 1 GiB.
	MaxMemoryClients int64
	// SlowlogSlowerThan: commands taking at least this long go to the slow
	// log; negative: none. Default 10 ms.
	SlowlogSlowerThan time.Duration
	SlowlogMaxLen     int // slow log entries kept; default 128
	// Atomic orders commands against transactions and logs a
	// transaction as one unit (see multi.go); nil: the server orders
	// them itself and logs nothing.
	Atomic Atomic
	// MultiMaxCommands bounds the commands one MULTI may queue; default
	// 100,000. MultiMaxBytes bounds their bytes; 0 (the default): 64 MiB,
	// or Limits.MaxCommand if larger; at most 512 MiB.
	MultiMaxCommands int
	MultiMaxBytes    int64
}

// DefaultMaxPayload is the default largest job payload (1 MiB).
const DefaultMaxPayload = 1 << 20

// DefaultProtoMaxBulk is Redis's default proto-max-bulk-len (512 MiB).
const DefaultProtoMaxBulk = 512 << 20

// LimitsFor derives the authenticated limits from the largest payload: one
// argument may hold a payload plus some slack; a command may hold a payload
// plus a megabyte of other arguments. Larger ones are refused, up to
// DefaultProtoMaxBulk per argument.
func LimitsFor(maxPayload int64) Limits {
	return Limits{
		MaxArgs:      1 << 16,
		MaxBulk:      maxPayload + 64<<10,
		MaxInline:    64 << 10,
		MaxCommand:   maxPayload + 1<<20,
		ProtoMaxBulk: DefaultProtoMaxBulk,
		Payload:      maxPayload,
	}
}

// DefaultConfig returns the defaults of PROTOCOL.md.
func DefaultConfig() Config {
	return Config{
		MaxClients:   10000,
		WriteTimeout: 30 * time.Second,
		Limits:       LimitsFor(DefaultMaxPayload),
		// Redis's own limits for clients that have not authenticated.
		PreAuth: Limits{
			MaxArgs: 10, MaxBulk: 16 << 10, MaxInline: 16 << 10, MaxCommand: 64 << 10,
			Unauthenticated: true,
		},
		ReadBuffer:        16 << 10,
		FlushAt:           64 << 10,
		MaxMemoryClients:  1 << 30,
		SlowlogSlowerThan: 10 * time.Millisecond,
		SlowlogMaxLen:     128,
		MultiMaxCommands:  DefaultMultiMaxCommands,
	}
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxClients < 1:
		return errors.New("maxclients must be at least 1")
	case c.IdleTimeout < 0:
		return errors.New("timeout must not be negative")
	case c.Limits.MaxArgs < 1 || c.Limits.MaxBulk < 1 || c.Limits.MaxInline < 1 || c.Limits.MaxCommand < c.Limits.MaxBulk:
		return errors.New("protocol limits must be positive, and a command must hold at least one argument")
	case c.ReadBuffer < 512 || c.FlushAt < 512:
		return errors.New("read buffer and flush threshold must be at least 512 bytes")
	case c.SlowlogMaxLen < 0:
		return errors.New("slowlog-max-len must not be negative")
	case c.MaxMemoryClients < 0:
		return errors.New("maxmemory-clients must not be negative")
	case c.MultiMaxCommands < 0 || c.MultiMaxBytes < 0 || c.MultiMaxBytes > maxMultiBytes:
		return errors.New("transaction limits must not be negative, and a transaction may hold at most 512 MiB")
	}
	return nil
}

// Server accepts RESP connections and runs commands from a Table.
type Server struct {
	cfg   Config
	table *Table
	acl   *ACL
	log   zerolog.Logger

	mu        sync.Mutex // protects clients, listeners, onDrain
	clients   map[int64]*Client
	listeners []net.Listener
	onDrain   []func()
	draining  atomic.Bool // set once, by Shutdown, under mu

	slow slowlog

	atomic Atomic // cfg.Atomic, or the server's own
	// replicator, when set, runs EXEC's commands (SetReplicator).
	replicator Replicator

	conns   sync.WaitGroup // one per connection goroutine
	nextID  atomic.Int64
	started time.Time

	// Counters for INFO. Per-command and per-byte counts live in each
	// Client (no shared cache line on the hot path); these keep the totals
	// of connections that have closed.
	totalConns atomic.Int64
	rejected   atomic.Int64
	closedCmds atomic.Int64
	closedIn   atomic.Int64
	closedOut  atomic.Int64

	ps pubsub // subscriptions (pubsub.go)

	monMu    sync.Mutex                 // serializes changes of monitors
	monitors atomic.Pointer[[]*monitor] // clients in MONITOR mode; nil: none (monitor.go)

	clientMem atomic.Int64 // bytes the clients' buffers hold (clientmem.go)
	evicted   atomic.Int64 // clients closed for maxmemory-clients
	evictMu   sync.Mutex   // one eviction at a time; protects the two below
	// When an eviction was last logged, and how many were not since.
	evictLogged   time.Time
	evictUnlogged int64
}

// NewServer builds a server; call Serve for each listener.
func NewServer(cfg Config, table *Table, log zerolog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, table: table, log: log, clients: make(map[int64]*Client), started: time.Now()}
	s.acl = newACL(table, cfg.RequirePass)
	if cfg.ACLFile != "" {
		if err := s.LoadACLFile(); err != nil {
			return nil, err
		}
	}
	s.slow.slower, s.slow.max = cfg.SlowlogSlowerThan, cfg.SlowlogMaxLen
	s.atomic = cfg.Atomic
	if s.atomic == nil {
		s.atomic = &localAtomic{}
	}
	return s, nil
}

// Table is the command table being served.
func (s *Server) Table() *Table { return s.table }

// Config is the configuration the server runs with.
func (s *Server) Config() Config { return s.cfg }

// Started is when the server was built.
func (s *Server) Started() time.Time { return s.started }

// OnDrain registers fn to run when Shutdown begins, after the listeners are
// closed and before connections are drained (e.g. to answer blocked
// reservations).
func (s *Server) OnDrain(fn func()) {
	s.mu.Lock()
	s.onDrain = append(s.onDrain, fn)
	s.mu.Unlock()
}

// Serve accepts connections on ln until Shutdown. Accept errors back off
// (5 ms doubling to 1 s) instead of spinning.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isDraining() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff *= 2; backoff > time.Second {
				backoff = time.Second
			}
			s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.accept(nc)
	}
}

func (s *Server) isDraining() bool { return s.draining.Load() }

// accept admits a new connection or refuses it with a Redis-style error.
func (s *Server) accept(nc net.Conn) {
	if s.acl.def.NoPass() && !isLoopback(nc.RemoteAddr()) {
		s.refuse(nc, ErrProtectedMode, "protected mode")
		return
	}
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		s.refuse(nc, ErrShuttingDown, "shutting down")
		return
	}
	if len(s.clients) >= s.cfg.MaxClients {
		s.mu.Unlock()
		s.refuse(nc, ErrMaxClients, "maxclients reached")
		return
	}
	c := newClient(s, nc)
	s.clients[c.id] = c
	s.conns.Add(1)
	s.mu.Unlock()
	s.totalConns.Add(1)
	go c.serve()
}

func (s *Server) refuse(nc net.Conn, e Error, why string) {
	s.rejected.Add(1)
	s.log.Debug().Str("addr", nc.RemoteAddr().String()).Str("reason", why).Msg("connection refused")
	go func() {
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write([]byte("-" + string(e) + "\r\n"))
		nc.Close()
	}()
}

func isLoopback(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	return a.Network() == "unix"
}

func (s *Server) remove(c *Client) {
	s.acl.logout(c)
	s.mu.Lock()
	s.released(c)
	delete(s.clients, c.id)
	s.closedCmds.Add(c.commands.Load())
	s.closedIn.Add(c.netIn.Load())
	s.closedOut.Add(c.netOut.Load())
	s.mu.Unlock()
	s.conns.Done()
}

// Shutdown stops accepting, runs the OnDrain hooks, lets every connection
// finish the commands it has received, and closes it. Connections still
// busy when ctx ends are closed forcibly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return errors.New("already shut down")
	}
	s.draining.Store(true)
	for _, ln := range s.listeners {
		ln.Close()
	}
	hooks := s.onDrain
	s.mu.Unlock()
	for _, fn := range hooks {
		fn()
	}
	s.mu.Lock()
	for _, c := range s.clients {
		c.interrupt()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for _, c := range s.clients {
			c.kill()
		}
		s.mu.Unlock()
		<-done
		return fmt.Errorf("drain cut short: %w", ctx.Err())
	}
}

// ClientInfo describes a connection for CLIENT LIST and INFO.
type ClientInfo struct {
	ID                    int64
	Addr, LAddr           string
	Name, LibName, LibVer string
	User                  string // the user it is logged in as (default until AUTH)
	Age, Idle             time.Duration
	Cmd                   string
	Blocked               bool
}

// Clients lists the connections, by id.
func (s *Server) Clients() []ClientInfo {
	s.mu.Lock()
	cs := make([]*Client, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	out := make([]ClientInfo, 0, len(cs))
	for _, c := range cs {
		if c.killed.Load() {
			continue // gone for the client's purposes; its goroutine is finishing
		}
		out = append(out, c.info())
	}
	slices.SortFunc(out, func(a, b ClientInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Kill closes every client for which match returns true, except skip (0:
// none), and returns how many it closed.
func (s *Server) Kill(match func(ClientInfo) bool, skip int64) int {
	s.mu.Lock()
	cs := make([]*Client, 0, len(s.clients))
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	n := 0
	for _, c := range cs {
		if c.id == skip || c.killed.Load() || !match(c.info()) {
			continue
		}
		c.kill()
		n++
	}
	return n
}

// Stats are the server's counters for INFO.
type Stats struct {
	Connected, Blocked              int
	TotalConnections, TotalCommands int64
	RejectedConnections             int64
	NetInputBytes, NetOutputBytes   int64

	// Client buffers (Redis's names in INFO): what every client's buffers
	// hold (mem_clients_normal), the most one client's input and output
	// buffers hold (client_recent_max_input_buffer, ..._output_buffer),
	// and the clients closed for maxmemory-clients (evicted_clients).
	ClientBuffers                   int64
	MaxInputBuffer, MaxOutputBuffer int64
	EvictedClients                  int64
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{TotalConnections: s.totalConns.Load(), RejectedConnections: s.rejected.Load()}
	s.mu.Lock()
	st.TotalCommands, st.NetInputBytes, st.NetOutputBytes = s.closedCmds.Load(), s.closedIn.Load(), s.closedOut.Load()
	st.Connected = len(s.clients)
	for _, c := range s.clients {
		if c.blocked.Load() {
			st.Blocked++
		}
		st.TotalCommands += c.commands.Load()
		st.NetInputBytes += c.netIn.Load()
		st.NetOutputBytes += c.netOut.Load()
		st.MaxInputBuffer = max(st.MaxInputBuffer, c.memIn.Load())
		st.MaxOutputBuffer = max(st.MaxOutputBuffer, c.memOut.Load()+c.memMon.Load())
	}
	s.mu.Unlock()
	st.ClientBuffers, st.EvictedClients = s.clientMem.Load(), s.evicted.Load()
	return st
}
