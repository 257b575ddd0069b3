package server

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/cluster"
	"sluice/commands"
	"sluice/config"
	"sluice/dashboard"
	"sluice/metrics"
	"sluice/persistence"
	"sluice/protocol"
	"sluice/store"
	"sluice/tlsserver"
)

// Options are what a caller adds to the settings. The zero value, with a
// logger, is what the program runs; the hooks let tests change one part of
// the wiring and keep the rest.
type Options struct {
	Log     zerolog.Logger // where the node and its connections log
	Version string         // INFO's and HELLO's version
	// Now is the clock of the blocking registry and of the commands; nil:
	// the wall clock for the registry, the protocol's per-command clock
	// for the commands.
	Now       func() int64
	Generator store.Generator // job ids and tokens; nil: random ones

	// Store, Env, Commands and Protocol, when set, adjust each part after
	// the settings have been applied to it and before it is used.
	Store    func(*store.Config)
	Env      func(*commands.Env)
	Commands func([]protocol.Command) []protocol.Command
	Protocol func(*protocol.Config)
	// Atomic, when set, wraps the store as the protocol server's Atomic
	// (MULTI/EXEC's one step); nil: the store itself.
	Atomic func(*store.Store) protocol.Atomic
}

// ErrShutDown is Shutdown's error when called again.
var ErrShutDown = errors.New("server: already shut down")

// Failure is a listener that stopped serving while the node runs.
type Failure struct {
	Metrics bool // an HTTP listener (metrics or the dashboard), not a client listener
	Err     error
}

// Server is one node. Its methods other than Shutdown and Abandon are
// not safe to call concurrently with Start.
type Server struct {
	cfg  config.Config
	opts Options
	log  zerolog.Logger
	now  func() int64 // never nil

	store *store.Store
	aof   *persistence.Log // nil: the log is off
	// In a replicated group (cluster.go): the node's part in it, its
	// generator, and the table its log's entries are applied with.
	node     *cluster.Node
	gen      *store.EntryGenerator
	fsmTable *protocol.Table
	met      *metrics.Metrics
	waiters  *blocking.Registry
	jobWaits *blocking.JobWaits // JOBWAIT's clients
	timer    *blocking.Timer
	env      *commands.Env
	srv      *protocol.Server

	stopAnnounce func() // ends +switch-master announcements (replication.go)

	lns        []net.Listener
	addrs      []string // every listener's, plaintext first
	tlsAddrs   []string
	certs      *tlsserver.Certs // nil: no TLS
	httpSrv    *http.Server     // nil: no metrics endpoint
	metricsURL string
	dash       *dashboard.Dashboard // nil: no dashboard (--http-addr)
	dashSrv    *http.Server
	dashURL    string

	shutdownReq chan struct{} // SHUTDOWN asked for a stop
	failed      chan Failure  // a listener stopped while serving
	timerStop   chan struct{}
	timerDone   chan struct{} // nil until Start

	shutOnce sync.Once
	// force ends the wait for the log in Shutdown (Abandon).
	force  context.Context
	giveUp context.CancelFunc
}

// New builds a node from cfg: the store, the log replayed into it (with
// --appendonly yes), the command table and the protocol server. Nothing
// listens yet. On error New has logged why, and holds nothing open.
func New(cfg config.Config, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, opts: opts, log: opts.Log, now: opts.Now,
		shutdownReq: make(chan struct{}, 1), failed: make(chan Failure, 1), timerStop: make(chan struct{})}
	if s.now == nil {
		s.now = func() int64 { return time.Now().UnixMilli() }
	}
	s.force, s.giveUp = context.WithCancel(context.Background())
	if err := s.openStore(); err != nil {
		return nil, err
	}
	// Installed after the replay, so that history is not counted again.
	mcfg := metrics.DefaultConfig()
	mcfg.MaxLabels = cfg.MetricsMaxLabels
	s.met = metrics.New(mcfg)
	s.store.SetObserver(s.met)
	if s.node != nil {
		s.waiters = s.node.Waiters()
		// Every read on a node of a group, the metrics' included, runs at
		// the log's time: a read at the wall clock's would run the store's
		// maintenance ahead of the log, on this node alone.
		s.now = s.node.Now
	} else {
		s.waiters, s.timer = blocking.Attach(s.store, s.log, s.now)
	}
	// Every node wakes its own JOBWAIT clients as it applies the end.
	s.jobWaits = blocking.NewJobWaits(s.store, s.now)
	s.store.SetEndHook(s.jobWaits.End)
	s.env = s.newEnv()
	if err := s.newProtocol(); err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

// openStore makes the store and, with the log on, replays the log into it.
func (s *Server) openStore() error {
	scfg := store.DefaultConfig()
	scfg.MaxBytes = s.cfg.MaxMemory
	scfg.IdempotencyWindow = s.cfg.IdempotencyWindow * 1000
	scfg.IdempotencyKeys = s.cfg.IdempotencyMaxKeys
	scfg.MaxCron = s.cfg.MaxCron
	scfg.MaxBatches, scfg.MaxBatchJobs = s.cfg.MaxBatches, int64(s.cfg.MaxBatchJobs)
	scfg.Retention, scfg.MaxRetained = s.cfg.Retention*1000, s.cfg.MaxRetained
	scfg.FailedRetention, scfg.MaxFailed = s.cfg.FailedRetention*1000, s.cfg.MaxFailed
	if s.opts.Store != nil {
		s.opts.Store(&scfg)
	}
	if s.cfg.Clustered() {
		if err := s.newClusterStore(scfg); err != nil {
			return err
		}
		return s.setShares()
	}
	gen := s.opts.Generator
	if gen == nil {
		gen = store.NewRandomGenerator()
	}
	st, err := store.New(scfg, gen)
	if err != nil {
		s.log.Error().Err(err).Msg("cannot open the store")
		return err
	}
	s.store = st
	if s.cfg.AppendOnly {
		if s.aof, err = openLog(s.cfg, scfg, st, s.log); err != nil {
			s.log.Error().Err(err).Str("dir", s.cfg.Dir).Msg("cannot load the append-only log")
			return err
		}
	}
	return s.setShares()
}

// setShares sets the memory shares, after the replay: a share limits
// admissions, never what the log holds.
func (s *Server) setShares() error {
	if err := s.store.SetShares(storeShares(s.cfg.MaxMemoryShare)); err != nil {
		s.log.Error().Err(err).Msg("bad maxmemory-share")
		return err
	}
	return nil
}

// newEnv is what the command handlers work with.
func (s *Server) newEnv() *commands.Env {
	cfg := s.cfg
	env := &commands.Env{Store: s.store, Waiters: s.waiters, JobWaits: s.jobWaits, Now: s.opts.Now, MaxPayload: cfg.MaxPayload,
		Version: s.opts.Version, MaxMemory: cfg.MaxMemory, MaxReserveQueues: cfg.MaxReserveQueues,
		JobStats: func() []commands.Setting { return jobStats(s.met) }}
	for _, o := range config.Options {
		v, _ := cfg.Get(o.Name)
		env.Settings = append(env.Settings, commands.Setting{Name: o.Name, Value: v})
	}
	// redis-benchmark asks for "save" at start; sluice takes no snapshots.
	env.Settings = append(env.Settings, commands.Setting{Name: "save", Value: ""})
	if s.aof != nil {
		env.Persistence = func() []commands.Setting { return persistenceInfo(s.aof, cfg) }
		env.Rewrite = s.aof.StartRewrite
	}
	s.standaloneReplication(env)
	env.Shutdown = func() {
		select {
		case s.shutdownReq <- struct{}{}:
		default: // one is on its way
		}
	}
	env.Digest = s.digest
	if s.node != nil {
		s.clusterEnv(env)
	}
	if s.opts.Env != nil {
		s.opts.Env(env)
	}
	return env
}

// newProtocol builds the command table and the protocol server over it.
func (s *Server) newProtocol() error {
	cmds := commands.Table(s.env)
	if s.opts.Commands != nil {
		cmds = s.opts.Commands(cmds)
	}
	var table *protocol.Table
	var err error
	if s.node != nil {
		s.fsmTable, table, err = s.clusterTable(cmds)
	} else {
		table, err = protocol.NewTable(append(cmds, cluster.StandaloneCommands()...))
	}
	if err != nil {
		s.log.Error().Err(err).Msg("bad command table")
		return err
	}
	cfg := s.cfg
	pcfg := protocol.DefaultConfig()
	pcfg.RequirePass = cfg.RequirePass
	pcfg.ACLFile = cfg.ACLFile
	pcfg.MaxClients = cfg.MaxClients
	pcfg.IdleTimeout = time.Duration(cfg.Timeout) * time.Second
	pcfg.Limits = protocol.LimitsFor(cfg.MaxPayload)
	pcfg.Limits.ProtoMaxBulk = cfg.ProtoMaxBulkLen
	pcfg.MaxMemoryClients = cfg.MaxMemoryClients
	pcfg.SlowlogSlowerThan = time.Duration(cfg.SlowlogSlowerThan) * time.Microsecond
	pcfg.SlowlogMaxLen = cfg.SlowlogMaxLen
	pcfg.Atomic = s.store // MULTI/EXEC: one atomic step, logged as one unit
	if s.opts.Atomic != nil {
		pcfg.Atomic = s.opts.Atomic(s.store)
	}
	if s.opts.Protocol != nil {
		s.opts.Protocol(&pcfg)
	}
	s.srv, err = protocol.NewServer(pcfg, table, s.log)
	if err != nil {
		s.log.Error().Err(err).Msg("bad server settings")
		return err
	}
	s.srv.OnDrain(s.waiters.Close)
	s.srv.OnDrain(s.jobWaits.Close)
	if s.node != nil {
		s.srv.SetReplicator(s.node)
	}
	s.announceLeaderChanges()
	return nil
}

// Start opens the listeners cfg asks for and serves them. On error Start
// has logged why, closed what it opened and the log, and the node is done.
func (s *Server) Start() error {
	if err := s.listen(); err != nil {
		s.closeListeners()
		s.release()
		return err
	}
	if s.node != nil {
		if err := s.openCluster(); err != nil {
			s.closeListeners()
			s.release()
			return err
		}
	} else {
		s.timerDone = make(chan struct{})
		go func() { s.timer.Run(s.timerStop); close(s.timerDone) }()
	}
	for _, ln := range s.lns {
		go func(ln net.Listener) {
			if err := s.srv.Serve(ln); err != nil {
				s.fail(Failure{Err: err})
			}
		}(ln)
	}
	return nil
}

// listen opens the plaintext, TLS and metrics listeners.
func (s *Server) listen() error {
	cfg := s.cfg
	port, err := s.listenPlain()
	if err != nil {
		return err
	}
	tlsLns, certs, err := listenTLS(cfg, s.log)
	if err != nil {
		s.log.Error().Err(err).Int("tls-port", cfg.TLSPort).Msg("cannot serve TLS")
		return err
	}
	s.certs = certs
	s.env.Settable = tlsSettable
	if s.node == nil {
		// Only a standalone node changes its shares at run time: in a
		// group every node decides admission itself as it applies each
		// push, so the shares must be the same everywhere (the same
		// options at start), never one node's CONFIG SET.
		s.env.Settable = append(tlsSettable, "maxmemory-share")
	}
	s.env.ConfigSet = configSetter(certs, s.store, s.env)
	for _, ln := range tlsLns {
		s.lns = append(s.lns, ln)
		s.addrs = append(s.addrs, ln.Addr().String())
		s.tlsAddrs = append(s.tlsAddrs, ln.Addr().String())
	}
	if len(s.lns) == 0 {
		s.log.Error().Strs("bind", cfg.Bind).Msg("no address to listen on")
		return errors.New("no address to listen on")
	}
	s.env.Info = []commands.Setting{{Name: "tcp_port", Value: strconv.Itoa(port)}, {Name: "config_file", Value: cfg.File}}
	if err := s.listenMetrics(); err != nil {
		return err
	}
	if s.metricsURL != "" {
		s.env.Info = append(s.env.Info, commands.Setting{Name: "metrics_url", Value: s.metricsURL})
	}
	if err := s.listenHTTP(); err != nil {
		return err
	}
	if s.dashURL != "" {
		s.env.Info = append(s.env.Info, commands.Setting{Name: "dashboard_url", Value: s.dashURL})
	}
	return nil
}

// listenPlain opens the plaintext listeners and returns their port.
func (s *Server) listenPlain() (int, error) {
	cfg := s.cfg
	port := cfg.Port
	plain := cfg.Listeners()
	if cfg.PlainOff() { // port 0 with a TLS port: TLS only, as in Redis
		plain, port = nil, 0
	}
	for _, l := range plain {
		a := l.Addr
		if port != cfg.Port { // --port 0: every address shares the port picked first
			h, _, _ := net.SplitHostPort(a)
			a = net.JoinHostPort(h, strconv.Itoa(port))
		}
		ln, err := net.Listen(l.Network, a)
		if err != nil {
			if l.Skip(err) { // "-addr", as in redis.conf: optional
				s.log.Warn().Err(err).Str("addr", a).Msg("optional address not available, skipped")
				continue
			}
			s.log.Error().Err(err).Str("addr", a).Msg("cannot listen")
			return 0, err
		}
		port = ln.Addr().(*net.TCPAddr).Port
		s.lns = append(s.lns, ln)
		s.addrs = append(s.addrs, ln.Addr().String())
	}
	return port, nil
}

// listenMetrics serves /metrics on --metrics-addr, if set.
func (s *Server) listenMetrics() error {
	cfg := s.cfg
	if cfg.MetricsAddr == "" {
		return nil
	}
	mln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		s.log.Error().Err(err).Str("addr", cfg.MetricsAddr).Msg("cannot listen for metrics")
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.met.Handler(s.metricsSources()))
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(s.log)}
	scheme := "http"
	if cfg.MetricsTLS { // the same certificates, reloads included
		mln, scheme = tls.NewListener(mln, s.certs.Config()), "https"
	}
	go func() { // ends when httpSrv is shut down
		if err := s.httpSrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
			s.fail(Failure{Metrics: true, Err: err})
		}
	}()
	s.metricsURL = scheme + "://" + mln.Addr().String() + "/metrics"
	return nil
}

// metricsSources are what a scrape reads.
func (s *Server) metricsSources() metrics.Sources {
	src := metrics.Sources{Store: s.store, Server: s.srv, MaxMemory: s.cfg.MaxMemory, Now: s.now, JobWaits: s.jobWaits}
	if s.aof != nil {
		src.Log = s.aof.Stats
	}
	if s.node != nil {
		src.Raft = s.raftStats
	}
	return src
}

// listenHTTP serves the web dashboard, and /metrics beside it, on
// --http-addr, if set (package dashboard).
func (s *Server) listenHTTP() error {
	if s.cfg.HTTPAddr == "" {
		return nil
	}
	addr := s.cfg.HTTPListenAddr()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		s.log.Error().Err(err).Str("addr", addr).Msg("cannot listen for the dashboard")
		return err
	}
	d, err := dashboard.New(dashboard.Sources{Store: s.store, Server: s.srv, Metrics: s.met, Now: s.now,
		PromHandler: s.met.Handler(s.metricsSources()), Log: s.log})
	if err != nil {
		ln.Close()
		s.log.Error().Err(err).Msg("cannot build the dashboard")
		return err
	}
	s.dash = d
	s.dash.Start()
	s.dashSrv = &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(s.log)}
	go func() { // ends when dashSrv is shut down
		if err := s.dashSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.fail(Failure{Metrics: true, Err: err})
		}
	}()
	s.dashURL = "http://" + ln.Addr().String() + "/"
	return nil
}

// fail reports a listener's end; only the first one is kept.
func (s *Server) fail(f Failure) {
	select {
	case s.failed <- f:
	default:
	}
}

func (s *Server) closeListeners() {
	for _, l := range s.lns {
		l.Close()
	}
	s.closeDashboard()
}

// closeDashboard stops the dashboard's listener and its sampler.
func (s *Server) closeDashboard() {
	if s.dashSrv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.dashSrv.Shutdown(hctx)
		hcancel()
		s.dashSrv = nil
	}
	if s.dash != nil {
		s.dash.Close()
	}
}

// release closes the log without waiting for it: a node that never
// started has acknowledged nothing.
func (s *Server) release() {
	if s.aof != nil {
		_ = s.aof.Close()
		s.aof = nil
	}
}

// Addrs are the addresses the node serves clients on, plaintext first.
func (s *Server) Addrs() []string { return s.addrs }

// TLSAddrs are the TLS listeners' addresses (nil: no TLS).
func (s *Server) TLSAddrs() []string { return s.tlsAddrs }

// MetricsURL is the metrics endpoint's URL ("": none).
func (s *Server) MetricsURL() string { return s.metricsURL }

// DashboardURL is the web dashboard's URL ("": none).
func (s *Server) DashboardURL() string { return s.dashURL }

// ShutdownRequested receives when a client sends SHUTDOWN.
func (s *Server) ShutdownRequested() <-chan struct{} { return s.shutdownReq }

// Failed receives when a listener stops serving while the node runs.
func (s *Server) Failed() <-chan Failure { return s.failed }

// Reload reads the TLS certificate files again (SIGHUP); on error the
// certificates in use stay.
func (s *Server) Reload() { reloadTLS(s.certs, s.log) }

// Store, Protocol, Waiters and Metrics are the node's parts.
func (s *Server) Store() *store.Store         { return s.store }
func (s *Server) Protocol() *protocol.Server  { return s.srv }
func (s *Server) Waiters() *blocking.Registry { return s.waiters }

// JobWaits is the registry of the clients blocked in JOBWAIT.
func (s *Server) JobWaits() *blocking.JobWaits { return s.jobWaits }
func (s *Server) Metrics() *metrics.Metrics    { return s.met }

// Shutdown drains the node: stop accepting, answer blocked reserves with
// null, let every connection finish the commands it has sent (until ctx
// ends, then close them), stop the metrics endpoint and the timer, then
// write and fsync what the log holds. The log is not given up so easily:
// while it cannot be written (a full disk) Shutdown waits, retrying, since
// giving up would lose changes the node has acknowledged; only Abandon
// ends that wait. The error is the first thing that went wrong, each
// logged as it happened; ErrShutDown if Shutdown was called before.
func (s *Server) Shutdown(ctx context.Context) error {
	first := false
	s.shutOnce.Do(func() { first = true })
	if !first {
		return ErrShutDown
	}
	began := time.Now()
	s.stopAnnounce()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("shutdown")
	}
	s.log.Info().Dur("took", time.Since(began)).Msg("connections drained")
	if s.httpSrv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.httpSrv.Shutdown(hctx)
		hcancel()
	}
	s.closeDashboard()
	close(s.timerStop)
	if s.timerDone != nil {
		<-s.timerDone
	}
	if s.node != nil {
		if cerr := s.node.Close(); cerr != nil {
			s.log.Warn().Err(cerr).Msg("leaving the group")
		}
	}
	if lerr := s.closeLog(); err == nil {
		err = lerr
	}
	s.giveUp()
	return err
}

// closeLog writes, fsyncs and closes the log, if it is on.
func (s *Server) closeLog() error {
	if s.aof == nil {
		return nil
	}
	err := s.aof.Drain(s.force)
	if cerr := s.aof.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.log.Error().Err(err).Msg("closing the append-only log")
		return err
	}
	s.log.Info().Msg("append-only log flushed, synced and closed")
	return nil
}

// Abandon stops Shutdown waiting for the log: commands waiting for their
// fsync give up (their clients are gone) and the changes not yet written
// are lost. Safe to call at any time, from any goroutine.
func (s *Server) Abandon() {
	if s.aof != nil {
		s.aof.Abandon()
	}
	s.giveUp()
}

// openLog replays the append-only log in cfg.Dir into st and keeps it.
func openLog(cfg config.Config, scfg store.Config, st *store.Store, log zerolog.Logger) (*persistence.Log, error) {
	pcfg := persistence.DefaultConfig()
	pcfg.Dir = cfg.Dir
	pcfg.Store = scfg
	pcfg.Logger = log
	var err error
	if pcfg.Fsync, err = persistence.ParseFsync(cfg.AppendFsync); err != nil {
		return nil, err
	}
	aof, err := persistence.Open(pcfg, st)
	if err != nil {
		return nil, err
	}
	ls := aof.Stats().Loaded
	log.Info().Int("files", ls.Files).Int64("records", ls.Records).Int64("bytes", ls.Bytes).
		Int64("jobs", st.Len()).Int64("millis", ls.Millis).Int64("truncated", ls.Truncated).
		Int64("skipped", ls.Skipped).Msg("append-only log loaded")
	return aof, nil
}

// jobStats are INFO stats' job event totals.
func jobStats(m *metrics.Metrics) []commands.Setting {
	t := m.Totals()
	out := make([]commands.Setting, len(t))
	for i, n := range t {
		out[i] = commands.Setting{Name: "total_jobs_" + metrics.EventNames[i], Value: strconv.FormatUint(n, 10)}
	}
	return out
}

// persistenceInfo is INFO persistence with the log on.
func persistenceInfo(aof *persistence.Log, cfg config.Config) []commands.Setting {
	s := aof.Stats()
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	b := func(v bool) string {
		if v {
			return "1"
		}
		return "0"
	}
	return []commands.Setting{
		{Name: "aof_enabled", Value: "1"},
		{Name: "appendfsync", Value: cfg.AppendFsync},
		{Name: "aof_dir", Value: cfg.Dir},
		{Name: "aof_current_size", Value: i(s.Size)},
		{Name: "aof_base_size", Value: i(s.BaseSize)},
		{Name: "aof_rewrite_in_progress", Value: b(s.RewriteInProgress)},
		{Name: "aof_rewrites", Value: i(s.Rewrites)},
		{Name: "aof_last_rewrite_time_ms", Value: i(s.LastRewriteMillis)},
		{Name: "aof_last_rewrite_at", Value: i(s.LastRewriteAt)},
		{Name: "aof_last_bgrewrite_status", Value: s.LastRewriteStatus},
		{Name: "aof_last_write_status", Value: s.Status},
		{Name: "aof_last_write_error", Value: s.LastError},
		{Name: "aof_write_errors", Value: i(s.WriteErrors)},
		{Name: "aof_last_fsync_at", Value: i(s.LastFsyncAt)},
		{Name: "aof_last_fsync_us", Value: i(s.LastFsyncMicros)},
		{Name: "aof_loaded_records", Value: i(s.Loaded.Records)},
		{Name: "aof_loaded_truncated_bytes", Value: i(s.Loaded.Truncated)},
		{Name: "aof_load_time_ms", Value: i(s.Loaded.Millis)},
	}
}
