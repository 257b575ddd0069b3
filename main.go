// Command sluice is a job server that speaks the Redis protocol: push jobs,
// reserve them under a lease with per-key concurrency caps and rate limits,
// acknowledge them. See README.md and docs/.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"sluice/blocking"
	"sluice/commands"
	"sluice/config"
	"sluice/hugepages"
	"sluice/metrics"
	"sluice/persistence"
	"sluice/protocol"
	"sluice/store"
)

// version is the server's version (INFO, HELLO, --version).
const version = "0.1.0"

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP) // SIGHUP: reload TLS certificates
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sig, nil))
}

// run is the whole program; ready, if not nil, receives the listening
// addresses once the server accepts connections (tests use it).
func run(args, environ []string, stdout, stderr io.Writer, stop <-chan os.Signal, ready chan<- []string) int {
	if len(args) > 0 && args[0] == "check-aof" {
		return checkAOF(args[1:], stdout, stderr)
	}
	cfg, warnings, err := config.Load(args, environ)
	switch {
	case errors.Is(err, config.ErrHelp):
		usage(stdout)
		return 0
	case errors.Is(err, config.ErrVersion):
		fmt.Fprintln(stdout, "sluice", version)
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	for _, w := range warnings {
		log.Warn().Msg(w)
	}
	if cfg.HugePages {
		adviseHugePages(&log)
	}
	if lim, ok := memoryLimit(cfg, os.Getenv("GOMEMLIMIT")); ok {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(lim))
		log.Info().Int64("bytes", lim).Msg("the garbage collector keeps the heap within maxmemory + maxmemory-clients + 64mb")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		log.Error().Err(err).Str("dir", cfg.Dir).Msg("cannot create the data directory")
		return 1
	}

	scfg := store.DefaultConfig()
	scfg.MaxBytes = cfg.MaxMemory
	scfg.IdempotencyWindow = cfg.IdempotencyWindow * 1000
	scfg.IdempotencyKeys = cfg.IdempotencyMaxKeys
	st, err := store.New(scfg, store.NewRandomGenerator())
	if err != nil {
		log.Error().Err(err).Msg("cannot open the store")
		return 1
	}
	var aof *persistence.Log
	if cfg.AppendOnly {
		if aof, err = openLog(cfg, scfg, st, log); err != nil {
			log.Error().Err(err).Str("dir", cfg.Dir).Msg("cannot load the append-only log")
			return 1
		}
	}
	if err := st.SetShares(storeShares(cfg.MaxMemoryShare)); err != nil {
		log.Error().Err(err).Msg("bad maxmemory-share")
		return 1
	}
	logClosed := false
	defer func() { // a start that fails after the log opened still closes it
		if aof != nil && !logClosed {
			_ = aof.Close()
		}
	}()
	// Installed after the replay, so that history is not counted again.
	mcfg := metrics.DefaultConfig()
	mcfg.MaxLabels = cfg.MetricsMaxLabels
	met := metrics.New(mcfg)
	st.SetObserver(met)
	now := func() int64 { return time.Now().UnixMilli() }
	waiters, timer := blocking.Attach(st, log, now)

	env := &commands.Env{Store: st, Waiters: waiters, MaxPayload: cfg.MaxPayload, Version: version,
		MaxMemory: cfg.MaxMemory, MaxReserveQueues: cfg.MaxReserveQueues, JobStats: func() []commands.Setting { return jobStats(met) }}
	for _, o := range config.Options {
		v, _ := cfg.Get(o.Name)
		env.Settings = append(env.Settings, commands.Setting{Name: o.Name, Value: v})
	}
	// redis-benchmark asks for "save" at start; sluice takes no snapshots.
	env.Settings = append(env.Settings, commands.Setting{Name: "save", Value: ""})
	if aof != nil {
		env.Persistence = func() []commands.Setting { return persistenceInfo(aof, cfg) }
		env.Rewrite = aof.StartRewrite
	}
	shutdownReq := make(chan struct{}, 1)
	env.Shutdown = func() {
		select {
		case shutdownReq <- struct{}{}:
		default: // one is on its way
		}
	}
	table, err := protocol.NewTable(commands.Table(env))
	if err != nil {
		log.Error().Err(err).Msg("bad command table")
		return 1
	}
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
	pcfg.Atomic = st // MULTI/EXEC: one atomic step, logged as one unit
	srv, err := protocol.NewServer(pcfg, table, log)
	if err != nil {
		log.Error().Err(err).Msg("bad server settings")
		return 1
	}
	srv.OnDrain(waiters.Close)

	var lns []net.Listener
	var addrs []string
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
				log.Warn().Err(err).Str("addr", a).Msg("optional address not available, skipped")
				continue
			}
			log.Error().Err(err).Str("addr", a).Msg("cannot listen")
			for _, l := range lns {
				l.Close()
			}
			return 1
		}
		port = ln.Addr().(*net.TCPAddr).Port
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	tlsLns, certs, err := listenTLS(cfg, log)
	if err != nil {
		log.Error().Err(err).Int("tls-port", cfg.TLSPort).Msg("cannot serve TLS")
		for _, l := range lns {
			l.Close()
		}
		return 1
	}
	env.Settable = append(tlsSettable, "maxmemory-share")
	env.ConfigSet = configSetter(certs, st, env)
	var tlsAddrs []string
	for _, ln := range tlsLns {
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
		tlsAddrs = append(tlsAddrs, ln.Addr().String())
	}
	if len(lns) == 0 {
		log.Error().Strs("bind", cfg.Bind).Msg("no address to listen on")
		return 1
	}
	env.Info = []commands.Setting{{Name: "tcp_port", Value: strconv.Itoa(port)}, {Name: "config_file", Value: cfg.File}}

	var httpSrv *http.Server
	httpErr := make(chan error, 1)
	metricsURL := ""
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			log.Error().Err(err).Str("addr", cfg.MetricsAddr).Msg("cannot listen for metrics")
			for _, l := range lns {
				l.Close()
			}
			return 1
		}
		src := metrics.Sources{Store: st, Server: srv, MaxMemory: cfg.MaxMemory, Now: now}
		if aof != nil {
			src.Log = aof.Stats
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", met.Handler(src))
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: httpErrorLog(log)}
		scheme := "http"
		if cfg.MetricsTLS { // the same certificates, reloads included
			mln, scheme = tls.NewListener(mln, certs.Config()), "https"
		}
		go func() { httpErr <- httpSrv.Serve(mln) }() // ends when httpSrv is shut down below
		metricsURL = scheme + "://" + mln.Addr().String() + "/metrics"
		env.Info = append(env.Info, commands.Setting{Name: "metrics_url", Value: metricsURL})
	}

	ev := log.Info().Strs("addr", addrs).Str("version", version).Int("pid", os.Getpid())
	if metricsURL != "" {
		ev = ev.Str("metrics", metricsURL)
	}
	if tlsAddrs != nil {
		ev = ev.Strs("tls_addr", tlsAddrs)
	}
	for k, v := range cfg.Changed() {
		ev = ev.Str(k, v)
	}
	ev.Msg("sluice ready")

	timerStop := make(chan struct{})
	timerDone := make(chan struct{})
	go func() { timer.Run(timerStop); close(timerDone) }()
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		go func(ln net.Listener) { serveErr <- srv.Serve(ln) }(ln)
	}
	if ready != nil {
		ready <- addrs
	}

wait:
	select {
	case s := <-stop:
		if s == syscall.SIGHUP {
			reloadTLS(certs, log)
			goto wait
		}
		log.Info().Str("signal", fmt.Sprint(s)).Dur("deadline", time.Duration(cfg.ShutdownTimeout)*time.Second).Msg("shutting down")
	case <-shutdownReq:
		log.Info().Str("command", "SHUTDOWN").Dur("deadline", time.Duration(cfg.ShutdownTimeout)*time.Second).Msg("shutting down")
	case err := <-serveErr:
		log.Error().Err(err).Msg("listener failed, shutting down")
	case err := <-httpErr:
		log.Error().Err(err).Msg("metrics server failed, shutting down")
	}
	// Drain: stop accepting, answer blocked reserves with null, let every
	// connection finish the commands it has sent, then write and fsync what
	// the log holds. A second signal cuts the connections' wait short. The
	// log is not given up so easily: while it cannot be written (a full
	// disk), the server waits, retrying every second, since exiting would
	// lose changes it has acknowledged; only a third signal exits without
	// them (status 1, with their number logged).
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout)*time.Second)
	defer cancel()
	force, giveUp := context.WithCancel(context.Background())
	defer giveUp()
	go func() {
		for n := 2; ; n++ {
			var s os.Signal
			select {
			case s = <-stop:
				if s == syscall.SIGHUP { // a reload, not a request to hurry
					n--
					continue
				}
			case <-force.Done():
				return
			}
			if n == 2 {
				log.Warn().Str("signal", fmt.Sprint(s)).Msg("second signal: closing connections now")
				cancel()
				continue
			}
			log.Warn().Str("signal", fmt.Sprint(s)).Msg("third signal: exiting without waiting for the append-only log")
			if aof != nil {
				aof.Abandon() // commands waiting for their fsync give up; their clients are gone
			}
			giveUp()
			return
		}
	}()
	code := 0
	began := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn().Err(err).Msg("shutdown")
		code = 1
	}
	log.Info().Dur("took", time.Since(began)).Msg("connections drained")
	if httpSrv != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), time.Second)
		_ = httpSrv.Shutdown(hctx)
		hcancel()
	}
	close(timerStop)
	<-timerDone
	if aof != nil {
		logClosed = true
		err := aof.Drain(force)
		if cerr := aof.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			log.Error().Err(err).Msg("closing the append-only log")
			code = 1
		} else {
			log.Info().Msg("append-only log flushed, synced and closed")
		}
	}
	giveUp() // ends the signal watcher
	log.Info().Msg("bye")
	return code
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

// checkAOF is `sluice check-aof [--fix] FILE`: report the first bad record
// of a log file and, with --fix, truncate the file there; and `sluice
// check-aof --rebuild-manifest DIR`.
func checkAOF(args []string, stdout, stderr io.Writer) int {
	const use = "usage: sluice check-aof [--fix] FILE\n       sluice check-aof --rebuild-manifest DIR"
	fix, rebuild := false, false
	var path string
	for _, a := range args {
		switch {
		case a == "--fix":
			fix = true
		case a == "--rebuild-manifest":
			rebuild = true
		case path == "" && !strings.HasPrefix(a, "-"):
			path = a
		default:
			fmt.Fprintln(stderr, use)
			return 2
		}
	}
	if path == "" || (fix && rebuild) {
		fmt.Fprintln(stderr, use)
		return 2
	}
	if rebuild {
		return rebuildManifest(path, stdout, stderr)
	}
	res, err := persistence.Check(persistence.OSFS{}, path, fix)
	if err != nil {
		fmt.Fprintln(stderr, "sluice check-aof:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d records, %d of %d bytes valid\n", path, res.Records, res.Good, res.Size)
	switch {
	case res.Problem == "":
		fmt.Fprintln(stdout, "OK")
		return 0
	case res.Fixed:
		fmt.Fprintf(stdout, "bad record at offset %d (%s): truncated the file there\n", res.Good, res.Problem)
		return 0
	}
	fmt.Fprintf(stdout, "bad record at offset %d (%s); run with --fix to truncate the file there\n", res.Good, res.Problem)
	return 1
}

// rebuildManifest is `sluice check-aof --rebuild-manifest DIR`: write the
// manifest of the log in DIR from the files there, and say what it holds.
func rebuildManifest(dir string, stdout, stderr io.Writer) int {
	res, err := persistence.RebuildManifest(persistence.OSFS{}, dir)
	if err != nil {
		fmt.Fprintln(stderr, "sluice check-aof:", err)
		return 1
	}
	verb := "wrote"
	if res.Replaced {
		verb = "replaced"
	}
	fmt.Fprintf(stdout, "%s %s, the log in replay order:\n", verb, res.Path)
	for i, f := range res.Files {
		fmt.Fprintf(stdout, "  %s (%d records)\n", f, res.Records[i])
	}
	if len(res.Left) > 0 {
		fmt.Fprintf(stdout, "left out (older than the base, or unfinished): %s\n", strings.Join(res.Left, ", "))
	}
	return 0
}

func newLogger(cfg config.Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "console"
			}
		}
	}
	if format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "sluice %s — a job server that speaks the Redis protocol\n\n", version)
	fmt.Fprintln(w, "Usage: sluice [config-file] [--option value ...]")
	fmt.Fprintln(w, "       sluice check-aof [--fix] FILE   check a log file; --fix truncates it at its last good record")
	fmt.Fprintln(w, "       sluice check-aof --rebuild-manifest DIR   write DIR's log manifest from the log files there")
	fmt.Fprintln(w, "\nEvery option may also be set in the config file (\"name value\" lines)")
	fmt.Fprintln(w, "or in the environment as SLUICE_<NAME> (upper case, '-' becomes '_').")
	fmt.Fprintln(w, "Flags override the environment, which overrides the file.")
	fmt.Fprintln(w)
	def := config.DefaultConfig()
	for _, o := range config.Options {
		v, _ := def.Get(o.Name)
		if v == "" {
			v = "(none)"
		}
		fmt.Fprintf(w, "  --%-24s %s (default: %s)\n", o.Name, o.Usage, v)
	}
}

// adviseOnce: the heap is the process's, and run may be called again (tests).
var adviseOnce sync.Once

// adviseHugePages lets the heap grow into transparent huge pages (package
// hugepages), once per process, before the store takes any memory.
func adviseHugePages(log *zerolog.Logger) {
	adviseOnce.Do(func() {
		mode := hugepages.Mode()
		start, n, err := hugepages.Advise(hugepages.DefaultSize())
		switch {
		case err != nil:
			log.Debug().Err(err).Str("thp", mode).Msg("heap keeps ordinary pages")
		case n > 0:
			log.Debug().Str("thp", mode).Int("bytes", n).Str("at", fmt.Sprintf("%#x", start)).Msg("heap advised for huge pages")
		case mode == "always":
			log.Debug().Str("thp", mode).Msg("heap gets huge pages without advice")
		default:
			log.Debug().Str("thp", mode).Msg("heap keeps ordinary pages: no region to advise")
		}
	})
}

// memoryLimit is the soft limit given to the garbage collector when
// --maxmemory is set: what the limits let the server hold (the data
// --maxmemory counts, the client buffers --maxmemory-clients counts) and
// 64 MB for the rest. Without it the collector lets the heap grow to twice
// what is live before it runs, so a server at its limits would take twice
// the memory its options promise. A limit from GOMEMLIMIT wins.
func memoryLimit(cfg config.Config, env string) (int64, bool) {
	if cfg.MaxMemory == 0 || cfg.MaxMemoryClients == 0 || env != "" {
		return 0, false
	}
	return cfg.MaxMemory + cfg.MaxMemoryClients + 64<<20, true
}
