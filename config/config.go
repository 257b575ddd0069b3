// Package config reads sluice's server options from, in rising order of
// precedence, their defaults, a config file (lines "name value"), SLUICE_*
// environment variables and Redis-style command-line flags. One table below
// lists every option once; flags, variables, the file, CONFIG GET and the
// start-up log line all come from it.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Config is every server option. DefaultConfig gives the defaults.
type Config struct {
	Bind        []string // listen addresses as given ("-" marks an optional one); default 127.0.0.1
	Port        int      // TCP port; default 6390 (0: pick a free one)
	Dir         string   // data directory; default ./data
	AppendOnly  bool     // keep the append-only log; default yes
	AppendFsync string   // always, everysec (default) or no
	RequirePass string   // password for AUTH; default none (protected mode)
	ACLFile     string   // users file (ACL LOAD/SAVE); default none
	MaxClients  int      // default 10000
	Timeout     int      // seconds before an idle client is closed; default 0 (never)
	MaxPayload  int64    // bytes; default 1mb
	MaxMemory   int64    // bytes of job memory; default 0 (no limit)
	LogLevel    string   // debug, info (default), warn, error
	LogFormat   string   // console or json; default "" (console on a terminal, else json)
	MetricsAddr string   // host:port for Prometheus metrics; default none
	// HTTPAddr is where the web dashboard listens (host:port; an empty
	// host is 127.0.0.1, loopback as the client port is); default none.
	HTTPAddr string
	// MetricsMaxLabels bounds the queues and policy keys metrics name; the
	// rest are added up under "other". Default 100.
	MetricsMaxLabels  int
	MaxMemoryClients  int64 // bytes all client buffers may hold, past it the biggest clients close; default 1gb (0: no limit)
	SlowlogSlowerThan int64 // µs; commands at least this slow are logged; default 10000 (-1: off)
	SlowlogMaxLen     int   // slow log entries kept; default 128
	ShutdownTimeout   int   // seconds a drain may take before connections are cut; default 10
	HugePages         bool  // let the heap use transparent huge pages (see package hugepages); default yes
	MaxReserveQueues  int   // queues (and handlers) one JOBRESERVE may name; default 1000
	// IdempotencyWindow is how long, in seconds, a JOBPUSH IDEMPOTENCY
	// key is remembered; default 86400 (24 h).
	IdempotencyWindow int64
	// IdempotencyMaxKeys bounds the keys remembered; past it the oldest
	// are forgotten early. Default 1000000.
	IdempotencyMaxKeys int
	MaxCron            int // periodic entries (CRONSET) held at most; default 10000
	MaxBatches         int // batches not complete (BATCHOPEN) held at most; default 10000
	MaxBatchJobs       int // jobs one batch takes at most; default 1000000
	// Retention of terminal jobs: succeeded, cancelled and expired ones
	// for Retention seconds, at most MaxRetained of them (defaults 3600,
	// 100000); failed ones (dead letters) for FailedRetention seconds, at
	// most MaxFailed (defaults 604800, seven days, and 1000000).
	Retention       int64
	MaxRetained     int
	FailedRetention int64
	MaxFailed       int
	// ProtoMaxBulkLen is Redis's proto-max-bulk-len: an argument past
	// max-payload but not past this is read, dropped and refused with an
	// error; past it the connection closes. Default 512mb.
	ProtoMaxBulkLen int64

	// TLS, with Redis's option names and meaning. TLSPort 0 (the default)
	// serves no TLS; with a TLS port, port 0 serves TLS only.
	TLSPort        int
	TLSCertFile    string
	TLSKeyFile     string
	TLSCACertFile  string // CA that signs client certificates
	TLSAuthClients string // yes (default), no or optional
	TLSProtocols   string // space-separated: TLSv1.2 and/or TLSv1.3 (default both)
	// MetricsTLS serves --metrics-addr over HTTPS with the TLS
	// certificate (tls-cert-file, tls-key-file); default no.
	MetricsTLS bool

	// MaxMemoryShare limits the job memory of the queues matching each
	// pattern (--maxmemory-share PATTERN=SIZE, repeatable); default none.
	MaxMemoryShare []Share

	// Cluster: a node of a replicated group (see docs/replication.md) when
	// ClusterID is set; standalone otherwise.
	ClusterID        string // this node's id in the group, stable across restarts
	ClusterAddr      string // raft address to listen on (host:port)
	ClusterAdvertise string // raft address peers dial; ClusterAddr's when empty
	// ClusterClientAdvertise is the client address (host:port) the other
	// nodes send clients to for this node; the first listening address
	// when empty.
	ClusterClientAdvertise string
	ClusterBootstrap       []string // first voters, "id=host:port" each, to start a new group
	ClusterKey             string   // secret shared by the group's nodes (or TLS files)
	ClusterKeyFile         string   // file holding it
	// ClusterDialVia rewrites raft addresses this node dials,
	// "addr=via" each: for fault tests that put a proxy on each link.
	ClusterDialVia []string
	// ClusterName is the group's name, the master name Sentinel clients
	// ask for; default "sluice".
	ClusterName string

	File string // the config file read, if any
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Bind:        []string{"127.0.0.1"},
		Port:        6390,
		Dir:         "./data",
		AppendOnly:  true,
		AppendFsync: "everysec",
		MaxClients:  10000,
		MaxPayload:  1 << 20,
		LogLevel:    "info",

		MetricsMaxLabels:  100,
		MaxMemoryClients:  1 << 30,
		SlowlogSlowerThan: 10000,
		SlowlogMaxLen:     128,
		ShutdownTimeout:   10,
		HugePages:         true,
		MaxReserveQueues:  1000,

		IdempotencyWindow:  24 * 60 * 60,
		IdempotencyMaxKeys: 1_000_000,
		MaxCron:            10_000,
		MaxBatches:         10_000,
		MaxBatchJobs:       1_000_000,
		Retention:          3600,
		MaxRetained:        100_000,
		FailedRetention:    7 * 24 * 3600,
		MaxFailed:          1_000_000,
		ProtoMaxBulkLen:    512 << 20,

		TLSAuthClients: "yes",
		TLSProtocols:   "TLSv1.2 TLSv1.3",

		ClusterName: "sluice",
	}
}

// Option describes one setting.
type Option struct {
	Name  string // flag name, CONFIG GET name and config-file name
	Usage string
	set   func(c *Config, v string) error
	get   func(c *Config) string
}

// Env is the option's environment variable.
func (o Option) Env() string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(o.Name, "-", "_"))
}

// Options lists every setting, in the order the documentation shows them.
var Options = []Option{
	{"bind", "listen address(es), space-separated; -addr (as -::1): skip it if not available",
		func(c *Config, v string) error {
			c.Bind = strings.Fields(v)
			return nil
		},
		func(c *Config) string { return strings.Join(c.Bind, " ") }},
	{"port", "TCP port (0 picks a free one and logs it; with --tls-port set, 0 serves TLS only)",
		func(c *Config, v string) (err error) { c.Port, err = intIn[int](v, portRange); return },
		func(c *Config) string { return strconv.Itoa(c.Port) }},
	{"dir", "data directory (created if missing)",
		func(c *Config, v string) error { c.Dir = v; return nil },
		func(c *Config) string { return c.Dir }},
	{"appendonly", "keep the append-only log: yes or no",
		func(c *Config, v string) (err error) { c.AppendOnly, err = yesNo(v); return },
		func(c *Config) string { return yesNoString(c.AppendOnly) }},
	{"appendfsync", "always, everysec or no",
		func(c *Config, v string) error { c.AppendFsync = strings.ToLower(v); return nil },
		func(c *Config) string { return c.AppendFsync }},
	{"requirepass", "password for AUTH; without one only loopback clients are served",
		func(c *Config, v string) error { c.RequirePass = v; return nil },
		func(c *Config) string { return c.RequirePass }},
	{"aclfile", "users file, as ACL LIST prints them: loaded at start and by ACL LOAD, written by ACL SAVE",
		func(c *Config, v string) error { c.ACLFile = v; return nil },
		func(c *Config) string { return c.ACLFile }},
	{"maxclients", "most connections at once",
		func(c *Config, v string) (err error) { c.MaxClients, err = intIn[int](v, maxClientsRange); return },
		func(c *Config) string { return strconv.Itoa(c.MaxClients) }},
	{"timeout", "close clients idle this many seconds (0 = never)",
		func(c *Config, v string) (err error) { c.Timeout, err = intIn[int](v, timeoutRange); return },
		func(c *Config) string { return strconv.Itoa(c.Timeout) }},
	{"max-payload", "largest job payload (e.g. 1mb, 512kb, 1048576)",
		func(c *Config, v string) (err error) { c.MaxPayload, err = ParseSize(v); return },
		func(c *Config) string { return strconv.FormatInt(c.MaxPayload, 10) }},
	{"proto-max-bulk-len", "longest argument read (e.g. 512mb): past it the connection closes; past max-payload the command is refused",
		func(c *Config, v string) (err error) { c.ProtoMaxBulkLen, err = ParseSize(v); return },
		func(c *Config) string { return strconv.FormatInt(c.ProtoMaxBulkLen, 10) }},
	{"maxmemory", "job memory limit, FULL beyond it (0 = none)",
		func(c *Config, v string) (err error) { c.MaxMemory, err = ParseSize(v); return },
		func(c *Config) string { return strconv.FormatInt(c.MaxMemory, 10) }},
	{"maxmemory-clients", "memory all client buffers may hold; past it the clients holding the most are closed (0 = none)",
		func(c *Config, v string) (err error) { c.MaxMemoryClients, err = ParseSize(v); return },
		func(c *Config) string { return strconv.FormatInt(c.MaxMemoryClients, 10) }},
	{"loglevel", "debug, info, warn or error",
		func(c *Config, v string) error { c.LogLevel = strings.ToLower(v); return nil },
		func(c *Config) string { return c.LogLevel }},
	{"logformat", "console or json (default: console on a terminal, else json)",
		func(c *Config, v string) error { c.LogFormat = strings.ToLower(v); return nil },
		func(c *Config) string { return c.LogFormat }},
	{"metrics-addr", "serve Prometheus metrics at http://ADDR/metrics (host:port; port 0 picks one)",
		func(c *Config, v string) error { c.MetricsAddr = v; return nil },
		func(c *Config) string { return c.MetricsAddr }},
	{"http-addr", "serve the web dashboard at http://ADDR/ (host:port; no host: 127.0.0.1; port 0 picks one)",
		func(c *Config, v string) error { c.HTTPAddr = v; return nil },
		func(c *Config) string { return c.HTTPAddr }},
	{"metrics-max-labels", "queues and policy keys named in metrics; the rest count as \"other\"",
		func(c *Config, v string) (err error) {
			c.MetricsMaxLabels, err = intIn[int](v, metricsLabelsRange)
			return
		},
		func(c *Config) string { return strconv.Itoa(c.MetricsMaxLabels) }},
	{"slowlog-log-slower-than", "log commands taking at least this many microseconds (-1: never)",
		func(c *Config, v string) (err error) {
			c.SlowlogSlowerThan, err = intIn[int64](v, slowlogSlowerRange)
			return
		},
		func(c *Config) string { return strconv.FormatInt(c.SlowlogSlowerThan, 10) }},
	{"slowlog-max-len", "slow log entries kept",
		func(c *Config, v string) (err error) { c.SlowlogMaxLen, err = intIn[int](v, slowlogLenRange); return },
		func(c *Config) string { return strconv.Itoa(c.SlowlogMaxLen) }},
	{"shutdown-timeout", "seconds a graceful shutdown waits for commands in flight",
		func(c *Config, v string) (err error) {
			c.ShutdownTimeout, err = intIn[int](v, shutdownTimeoutRange)
			return
		},
		func(c *Config) string { return strconv.Itoa(c.ShutdownTimeout) }},
	{"hugepages", "let the job heap use transparent huge pages where the kernel gives them on request: yes or no",
		func(c *Config, v string) (err error) { c.HugePages, err = yesNo(v); return },
		func(c *Config) string { return yesNoString(c.HugePages) }},
	{"max-reserve-queues", "most queues, and most handlers, one JOBRESERVE may name",
		func(c *Config, v string) (err error) {
			c.MaxReserveQueues, err = intIn[int](v, reserveQueuesRange)
			return
		},
		func(c *Config) string { return strconv.Itoa(c.MaxReserveQueues) }},
	{"idempotency-window", "seconds a JOBPUSH IDEMPOTENCY key is remembered",
		func(c *Config, v string) (err error) {
			c.IdempotencyWindow, err = intIn[int64](v, idemWindowRange)
			return
		},
		func(c *Config) string { return strconv.FormatInt(c.IdempotencyWindow, 10) }},
	{"idempotency-max-keys", "most idempotency keys remembered; past it the oldest are forgotten before their window ends",
		func(c *Config, v string) (err error) {
			c.IdempotencyMaxKeys, err = intIn[int](v, idemKeysRange)
			return
		},
		func(c *Config) string { return strconv.Itoa(c.IdempotencyMaxKeys) }},
	{"max-cron", "most periodic entries (CRONSET) held; 0 refuses every new one",
		func(c *Config, v string) (err error) { c.MaxCron, err = intIn[int](v, maxCronRange); return },
		func(c *Config) string { return strconv.Itoa(c.MaxCron) }},
	{"max-batches", "most batches (BATCHOPEN) not complete held at once; 0 refuses every new one",
		func(c *Config, v string) (err error) { c.MaxBatches, err = intIn[int](v, maxBatchesRange); return },
		func(c *Config) string { return strconv.Itoa(c.MaxBatches) }},
	{"max-batch-jobs", "most jobs one batch takes",
		func(c *Config, v string) (err error) { c.MaxBatchJobs, err = intIn[int](v, maxBatchJobsRange); return },
		func(c *Config) string { return strconv.Itoa(c.MaxBatchJobs) }},
	{"retention", "seconds a succeeded, cancelled or expired job stays readable",
		func(c *Config, v string) (err error) { c.Retention, err = intIn[int64](v, retentionRange); return },
		func(c *Config) string { return strconv.FormatInt(c.Retention, 10) }},
	{"max-retained", "most succeeded, cancelled and expired jobs kept; past it the oldest are dropped",
		func(c *Config, v string) (err error) { c.MaxRetained, err = intIn[int](v, maxRetainedRange); return },
		func(c *Config) string { return strconv.Itoa(c.MaxRetained) }},
	{"failed-retention", "seconds a failed job (a dead letter) is kept unless retried or cancelled",
		func(c *Config, v string) (err error) {
			c.FailedRetention, err = intIn[int64](v, failedRetentionRange)
			return
		},
		func(c *Config) string { return strconv.FormatInt(c.FailedRetention, 10) }},
	{"max-failed", "most failed jobs kept; past it the oldest are dropped",
		func(c *Config, v string) (err error) { c.MaxFailed, err = intIn[int](v, maxFailedRange); return },
		func(c *Config) string { return strconv.Itoa(c.MaxFailed) }},
	{"tls-port", "TCP port for TLS connections on the bind addresses (0 = no TLS)",
		func(c *Config, v string) (err error) { c.TLSPort, err = intIn[int](v, tlsPortRange); return },
		func(c *Config) string { return strconv.Itoa(c.TLSPort) }},
	{"tls-cert-file", "server certificate (PEM; a chain may follow it), reloaded on SIGHUP",
		func(c *Config, v string) error { c.TLSCertFile = v; return nil },
		func(c *Config) string { return c.TLSCertFile }},
	{"tls-key-file", "private key of tls-cert-file (PEM, unencrypted)",
		func(c *Config, v string) error { c.TLSKeyFile = v; return nil },
		func(c *Config) string { return c.TLSKeyFile }},
	{"tls-ca-cert-file", "CA certificates (PEM) that client certificates must chain to",
		func(c *Config, v string) error { c.TLSCACertFile = v; return nil },
		func(c *Config) string { return c.TLSCACertFile }},
	{"tls-auth-clients", "client certificates: yes (required), no (not asked for) or optional (checked if sent)",
		func(c *Config, v string) error { c.TLSAuthClients = strings.ToLower(v); return nil },
		func(c *Config) string { return c.TLSAuthClients }},
	{"tls-protocols", "TLS versions served, space-separated: TLSv1.2, TLSv1.3",
		func(c *Config, v string) error { c.TLSProtocols = v; return nil },
		func(c *Config) string { return c.TLSProtocols }},
	{"metrics-tls", "serve --metrics-addr over HTTPS with the TLS certificate: yes or no",
		func(c *Config, v string) (err error) { c.MetricsTLS, err = yesNo(v); return },
		func(c *Config) string { return yesNoString(c.MetricsTLS) }},
	{"maxmemory-share", "PATTERN=SIZE (repeatable; space-separated): job memory the queues matching PATTERN may hold, FULL beyond it",
		func(c *Config, v string) error {
			s, err := ParseShares(v)
			if err != nil {
				return err
			}
			c.MaxMemoryShare = MergeShares(c.MaxMemoryShare, s)
			return nil
		},
		func(c *Config) string { return FormatShares(c.MaxMemoryShare) }},
	{"cluster-id", "this node's id in a replicated group (empty: standalone)",
		func(c *Config, v string) error { c.ClusterID = v; return nil },
		func(c *Config) string { return c.ClusterID }},
	{"cluster-addr", "raft address to listen on, host:port (with cluster-id)",
		func(c *Config, v string) error { c.ClusterAddr = v; return nil },
		func(c *Config) string { return c.ClusterAddr }},
	{"cluster-advertise", "raft address the other nodes dial (default: cluster-addr)",
		func(c *Config, v string) error { c.ClusterAdvertise = v; return nil },
		func(c *Config) string { return c.ClusterAdvertise }},
	{"cluster-client-advertise", "client address (host:port) the other nodes send clients to for this node (default: its first listening address)",
		func(c *Config, v string) error { c.ClusterClientAdvertise = v; return nil },
		func(c *Config) string { return c.ClusterClientAdvertise }},
	{"cluster-bootstrap", "first voters of a new group, space-separated id=host:port (their raft addresses)",
		func(c *Config, v string) error { c.ClusterBootstrap = strings.Fields(v); return nil },
		func(c *Config) string { return strings.Join(c.ClusterBootstrap, " ") }},
	{"cluster-key", "secret the group's nodes share (at least 16 bytes); or TLS files, or cluster-key-file",
		func(c *Config, v string) error { c.ClusterKey = v; return nil },
		func(c *Config) string { return redacted(c.ClusterKey) }},
	{"cluster-key-file", "file holding cluster-key",
		func(c *Config, v string) error { c.ClusterKeyFile = v; return nil },
		func(c *Config) string { return c.ClusterKeyFile }},
	{"cluster-dial-via", "for fault tests: raft addresses to dial through a proxy, space-separated addr=via",
		func(c *Config, v string) error { c.ClusterDialVia = strings.Fields(v); return nil },
		func(c *Config) string { return strings.Join(c.ClusterDialVia, " ") }},
	{"cluster-name", "the group's name: the master name clients configured with Sentinel ask for",
		func(c *Config, v string) error {
			if err := checkClusterName(v); err != nil {
				return err
			}
			c.ClusterName = v
			return nil
		},
		func(c *Config) string { return c.ClusterName }},
}

// redacted hides a secret in CONFIG GET and INFO.
func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "(set)"
}

// Clustered reports whether the node is part of a replicated group.
func (c *Config) Clustered() bool { return c.ClusterID != "" }

func (c *Config) validateCluster() error {
	if !c.Clustered() {
		return nil
	}
	if len(c.ClusterID) > 64 || strings.IndexFunc(c.ClusterID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return fmt.Errorf("cluster-id: %q must be 1 to 64 printable ASCII characters other than space", c.ClusterID)
	}
	if c.ClusterAddr == "" {
		return errors.New("cluster-id: needs cluster-addr")
	}
	if _, _, err := net.SplitHostPort(c.ClusterAddr); err != nil {
		return fmt.Errorf("cluster-addr: %q is not host:port", c.ClusterAddr)
	}
	if a := c.ClusterClientAdvertise; a != "" {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return fmt.Errorf("cluster-client-advertise: %q is not host:port", a)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("cluster-client-advertise: %q names no host clients can reach", a)
		}
	}
	if c.ClusterKey != "" && c.ClusterKeyFile != "" {
		return errors.New("cluster-key and cluster-key-file are both set: choose one")
	}
	for _, v := range c.ClusterDialVia {
		if a, b, ok := strings.Cut(v, "="); !ok || a == "" || b == "" {
			return fmt.Errorf("cluster-dial-via: %q is not addr=via", v)
		}
	}
	return nil
}

// checkClusterName accepts 1 to 128 printable ASCII characters other than
// space: the name is a word of +switch-master's message.
func checkClusterName(v string) error {
	if v == "" || len(v) > 128 {
		return fmt.Errorf("%q must be 1 to 128 characters long", v)
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return fmt.Errorf("%q: only printable ASCII characters other than space (it is a word of +switch-master messages)", v)
		}
	}
	return nil
}

// Share is one --maxmemory-share: the queues whose names match Pattern (a
// glob, as ACL key patterns) may hold jobs of Bytes estimated memory.
type Share struct {
	Pattern string
	Bytes   int64
}

// ParseShares reads "PATTERN=SIZE ..." (space-separated; SIZE as
// maxmemory's, at least one byte; the last '=' splits). "" is no share.
func ParseShares(v string) ([]Share, error) {
	var out []Share
	for _, f := range strings.Fields(v) {
		i := strings.LastIndexByte(f, '=')
		if i <= 0 {
			return nil, fmt.Errorf("%q is not PATTERN=SIZE (e.g. team-a:*=64mb)", f)
		}
		n, err := ParseSize(f[i+1:])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f[:i], err)
		}
		if n < 1 {
			return nil, fmt.Errorf("%s: a share must be at least one byte", f[:i])
		}
		out = MergeShares(out, []Share{{f[:i], n}})
	}
	return out, nil
}

// MergeShares adds more to list: a pattern already there takes its new
// size.
func MergeShares(list, more []Share) []Share {
	out := append([]Share(nil), list...)
next:
	for _, m := range more {
		for i := range out {
			if out[i].Pattern == m.Pattern {
				out[i].Bytes = m.Bytes
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// FormatShares is shares as ParseShares reads them, sizes in bytes.
func FormatShares(shares []Share) string {
	parts := make([]string, len(shares))
	for i, s := range shares {
		parts[i] = s.Pattern + "=" + strconv.FormatInt(s.Bytes, 10)
	}
	return strings.Join(parts, " ")
}

func lookup(name string) *Option {
	name = strings.ToLower(name)
	for i := range Options {
		if Options[i].Name == name {
			return &Options[i]
		}
	}
	return nil
}

// Get returns an option's value as CONFIG GET shows it.
func (c *Config) Get(name string) (string, bool) {
	o := lookup(name)
	if o == nil {
		return "", false
	}
	return o.get(c), true
}

// Changed lists the options whose value differs from the default, for the
// start-up log line (the password is masked).
func (c *Config) Changed() map[string]string {
	def := DefaultConfig()
	out := map[string]string{}
	for _, o := range Options {
		if v := o.get(c); v != o.get(&def) {
			if o.Name == "requirepass" {
				v = "(set)"
			}
			out[o.Name] = v
		}
	}
	return out
}

// ErrHelp and ErrVersion are returned by Load for --help and --version.
var (
	ErrHelp    = errors.New("help requested")
	ErrVersion = errors.New("version requested")
)

// Load builds the configuration from the defaults, the config file named by
// the only positional argument, the SLUICE_* variables in environ and the
// flags in args, then validates it. It returns warnings for SLUICE_*
// variables that name no option.
func Load(args, environ []string) (Config, []string, error) {
	c := DefaultConfig()
	type kv struct{ name, value string }
	var flags []kv
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			return c, nil, ErrHelp
		case a == "-v" || a == "--version" || a == "-version":
			return c, nil, ErrVersion
		case strings.HasPrefix(a, "--"):
			name, value, hasValue := strings.Cut(a[2:], "=")
			if lookup(name) == nil {
				return c, nil, fmt.Errorf("unknown option --%s (see --help)", name)
			}
			if !hasValue {
				if i+1 >= len(args) {
					return c, nil, fmt.Errorf("option --%s needs a value", name)
				}
				i++
				value = args[i]
			}
			flags = append(flags, kv{name, value})
		case c.File == "" && !strings.HasPrefix(a, "-"):
			c.File = a
		default:
			return c, nil, fmt.Errorf("unexpected argument %q: the config file must be the only positional argument", a)
		}
	}
	if c.File != "" {
		f, err := os.Open(c.File)
		if err != nil {
			return c, nil, fmt.Errorf("config file: %w", err)
		}
		err = parseFile(&c, f, c.File)
		f.Close()
		if err != nil {
			return c, nil, err
		}
	}
	var warnings []string
	for _, e := range environ {
		name, value, _ := strings.Cut(e, "=")
		if !strings.HasPrefix(name, "SLUICE_") {
			continue
		}
		o := lookup(strings.ReplaceAll(strings.TrimPrefix(name, "SLUICE_"), "_", "-"))
		if o == nil {
			warnings = append(warnings, "ignoring "+name+": no such option")
			continue
		}
		if err := o.set(&c, value); err != nil {
			return c, warnings, fmt.Errorf("%s: %w", name, err)
		}
	}
	for _, f := range flags {
		if err := lookup(f.name).set(&c, f.value); err != nil {
			return c, warnings, fmt.Errorf("--%s: %w", f.name, err)
		}
	}
	return c, warnings, c.Validate()
}

// parseFile reads "name value" lines; '#' starts a comment line; a value
// may be double-quoted.
func parseFile(c *Config, r io.Reader, path string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		name, value, _ := strings.Cut(text, " ")
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			uq, err := strconv.Unquote(value)
			if err != nil {
				return fmt.Errorf("%s:%d: bad quoted value: %w", path, line, err)
			}
			value = uq
		}
		o := lookup(name)
		if o == nil {
			return fmt.Errorf("%s:%d: unknown option %q", path, line, name)
		}
		if err := o.set(c, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, line, name, err)
		}
	}
	return sc.Err()
}

// Validate reports the first setting a user must change.
func (c *Config) Validate() error {
	if len(c.Bind) == 0 {
		return errors.New("bind: at least one address is needed")
	}
	for _, b := range c.Bind {
		if _, _, _, err := parseBind(b); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		b bounds
		v int64
	}{
		{portRange, int64(c.Port)}, {tlsPortRange, int64(c.TLSPort)}, {maxClientsRange, int64(c.MaxClients)}, {timeoutRange, int64(c.Timeout)},
		{metricsLabelsRange, int64(c.MetricsMaxLabels)}, {slowlogSlowerRange, c.SlowlogSlowerThan},
		{slowlogLenRange, int64(c.SlowlogMaxLen)}, {shutdownTimeoutRange, int64(c.ShutdownTimeout)},
		{reserveQueuesRange, int64(c.MaxReserveQueues)},
		{idemWindowRange, c.IdempotencyWindow}, {idemKeysRange, int64(c.IdempotencyMaxKeys)},
		{maxCronRange, int64(c.MaxCron)}, {maxBatchesRange, int64(c.MaxBatches)}, {maxBatchJobsRange, int64(c.MaxBatchJobs)},
		{retentionRange, c.Retention}, {maxRetainedRange, int64(c.MaxRetained)},
		{failedRetentionRange, c.FailedRetention}, {maxFailedRange, int64(c.MaxFailed)},
	} {
		if err := o.b.check(o.v); err != nil {
			return err
		}
	}
	switch {
	case strings.TrimSpace(c.Dir) == "":
		return errors.New("dir: must not be empty")
	case c.AppendFsync != "always" && c.AppendFsync != "everysec" && c.AppendFsync != "no":
		return fmt.Errorf("appendfsync: %q is not always, everysec or no", c.AppendFsync)
	case c.MaxPayload < 1 || c.MaxPayload > 512<<20:
		return fmt.Errorf("max-payload: %d must be between 1 byte and 512mb", c.MaxPayload)
	case c.ProtoMaxBulkLen < 1<<20 || c.ProtoMaxBulkLen > maxSize:
		return fmt.Errorf("proto-max-bulk-len: %d is not between 1048576 (1mb) and %d bytes", c.ProtoMaxBulkLen, int64(maxSize))
	case c.MaxMemory < 0 || c.MaxMemory > maxSize:
		return fmt.Errorf("maxmemory: %d is not between 0 and %d bytes", c.MaxMemory, int64(maxSize))
	case c.MaxMemoryClients < 0 || c.MaxMemoryClients > maxSize:
		return fmt.Errorf("maxmemory-clients: %d is not between 0 and %d bytes", c.MaxMemoryClients, int64(maxSize))
	case c.LogLevel != "debug" && c.LogLevel != "info" && c.LogLevel != "warn" && c.LogLevel != "error":
		return fmt.Errorf("loglevel: %q is not debug, info, warn or error", c.LogLevel)
	case c.LogFormat != "" && c.LogFormat != "console" && c.LogFormat != "json":
		return fmt.Errorf("logformat: %q is not console or json", c.LogFormat)
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := c.validateCluster(); err != nil {
		return err
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return fmt.Errorf("metrics-addr: %q is not host:port", c.MetricsAddr)
		}
	}
	if c.HTTPAddr != "" {
		if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil || port == "" {
			return fmt.Errorf("http-addr: %q is not host:port (127.0.0.1:8080, or :8080 for loopback)", c.HTTPAddr)
		}
	}
	return nil
}

// validateTLS checks the tls-* options; the files themselves are read when
// the server starts (and again on SIGHUP).
// tlsUser names the option that asks for TLS, for messages.
func (c *Config) tlsUser() string {
	if c.TLSPort == 0 {
		return "metrics-tls"
	}
	return "tls-port"
}

// HTTPListenAddr is the address the dashboard listens on: HTTPAddr with
// an empty host made 127.0.0.1, so that only an address written out
// exposes it beyond the machine.
func (c *Config) HTTPListenAddr() string {
	h, p, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil || h != "" {
		return c.HTTPAddr
	}
	return net.JoinHostPort("127.0.0.1", p)
}

// UsesTLS reports whether a listener serves TLS: tls-port or metrics-tls.
func (c *Config) UsesTLS() bool { return c.TLSPort != 0 || c.MetricsTLS }

func (c *Config) validateTLS() error {
	if _, _, err := TLSVersions(c.TLSProtocols); err != nil {
		return err
	}
	switch c.TLSAuthClients {
	case "yes", "no", "optional":
	default:
		return fmt.Errorf("tls-auth-clients: %q is not yes, no or optional", c.TLSAuthClients)
	}
	if c.MetricsTLS && c.MetricsAddr == "" {
		return errors.New("metrics-tls: needs metrics-addr")
	}
	if c.TLSPort == 0 && !c.MetricsTLS {
		return nil
	}
	switch {
	case c.TLSPort != 0 && c.TLSPort == c.Port:
		return fmt.Errorf("tls-port: %d is also the plaintext port", c.TLSPort)
	case c.TLSCertFile == "" || c.TLSKeyFile == "":
		return errors.New(c.tlsUser() + ": needs tls-cert-file and tls-key-file")
	case c.TLSAuthClients != "no" && c.TLSCACertFile == "":
		return fmt.Errorf("tls-auth-clients %s: needs tls-ca-cert-file to check client certificates (or tls-auth-clients no)", c.TLSAuthClients)
	}
	return nil
}

// TLSVersions reads tls-protocols ("TLSv1.2 TLSv1.3", either alone, any
// case) into the lowest and highest version to serve, as crypto/tls numbers
// them. TLS 1.0 and 1.1 are refused: they are deprecated (RFC 8996).
func TLSVersions(s string) (min, max uint16, err error) {
	const v12, v13 = 0x0303, 0x0304 // tls.VersionTLS12, tls.VersionTLS13
	for _, f := range strings.Fields(s) {
		var v uint16
		switch strings.ToLower(f) {
		case "tlsv1.2":
			v = v12
		case "tlsv1.3":
			v = v13
		default:
			return 0, 0, fmt.Errorf("tls-protocols: %q is not TLSv1.2 or TLSv1.3", f)
		}
		if min == 0 || v < min {
			min = v
		}
		if v > max {
			max = v
		}
	}
	if min == 0 {
		return 0, 0, errors.New("tls-protocols: names no protocol (TLSv1.2, TLSv1.3)")
	}
	return min, max, nil
}

// TLSListeners are the addresses to listen on for TLS: the bind addresses
// with tls-port; none when tls-port is 0.
func (c *Config) TLSListeners() []Listener {
	if c.TLSPort == 0 {
		return nil
	}
	d := *c
	d.Port = c.TLSPort
	return d.Listeners()
}

// PlainOff reports whether plaintext is off: port 0 with a TLS port, as in
// Redis. (Without a TLS port, port 0 picks a free port.)
func (c *Config) PlainOff() bool { return c.Port == 0 && c.TLSPort != 0 }

// parseBind reads one bind address: an IP address (IPv6 with or without
// brackets), localhost, * for every IPv4 interface or ::* for every IPv6
// one (as in Redis), optionally prefixed with '-' as in redis.conf's
// "bind 127.0.0.1 -::1" and "bind * -::*". It returns the host for
// net.JoinHostPort and the network to listen on; on error, b itself, which
// no listen accepts.
func parseBind(b string) (host, network string, optional bool, err error) {
	host, optional = strings.CutPrefix(b, "-")
	if optional && host == "" {
		return b, "", false, fmt.Errorf("bind: %q names no address after the '-'", b)
	}
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	switch host {
	case "*":
		return "0.0.0.0", "tcp4", optional, nil
	case "::*":
		return "::", "tcp6", optional, nil
	case "localhost":
		return host, "tcp", optional, nil
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return b, "", false, fmt.Errorf("bind: %q is not an IP address", b)
	case ip.To4() != nil:
		return host, "tcp4", optional, nil
	}
	// tcp6 listens on IPv6 only, so "::" and "0.0.0.0" can both be bound,
	// as in Redis.
	return host, "tcp6", optional, nil
}

// Listener is one address to listen on.
type Listener struct {
	Network string // for net.Listen: tcp4, tcp6, or tcp for localhost
	Addr    string // host:port
	// Optional is set for an address given with Redis's '-' prefix: when
	// it is not available here, the server starts without it (see Skip).
	Optional bool
}

// Listeners are the addresses to listen on, in the order bind gives them.
func (c *Config) Listeners() []Listener {
	out := make([]Listener, 0, len(c.Bind))
	for _, b := range c.Bind {
		h, network, optional, _ := parseBind(b)
		out = append(out, Listener{Network: network, Addr: net.JoinHostPort(h, strconv.Itoa(c.Port)), Optional: optional})
	}
	return out
}

// Skip reports whether err, from listening on l, should be logged and the
// address left out rather than stop the start: l is optional and its
// address is not available here — no interface has it, or the system does
// not support its protocol (IPv6 turned off). Any other failure, an address
// in use among them, is never skipped. (Redis skips an unsupported
// protocol even without the '-'; sluice only with it.)
func (l Listener) Skip(err error) bool {
	if !l.Optional || err == nil {
		return false
	}
	for _, errno := range []syscall.Errno{
		syscall.EADDRNOTAVAIL, syscall.EAFNOSUPPORT, syscall.EPFNOSUPPORT,
		syscall.EPROTONOSUPPORT, syscall.ESOCKTNOSUPPORT, syscall.ENOPROTOOPT,
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// ParseSize reads a byte count the way redis.conf does: 1k = 1000,
// 1kb = 1024, likewise m/mb and g/gb, case-insensitive.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSuffix(t, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if errors.Is(err, strconv.ErrRange) || (err == nil && n > maxSize/mult) {
		return 0, fmt.Errorf("%q is more than %d bytes (4294967296gb), the largest size", s, int64(maxSize))
	}
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 1048576, 512kb, 1mb)", s)
	}
	return n * mult, nil
}

// maxSize is the largest size ParseSize reads: 4 EiB, so that adding a few
// sizes together cannot overflow an int64.
const maxSize = 1 << 62

// bounds is the range of an integer option. Every one is closed on both
// sides, so that no value, once multiplied into a time.Duration or added to
// a time, can overflow (issue 19: "--timeout 18446744074" used to wrap
// round to 0.29 s).
type bounds struct {
	name     string
	min, max int64
	unit     string // for messages: "seconds", or "" for a plain count
}

// The integer options' ranges. Where redis.conf has the same option, its
// range is Redis's own (INT_MAX seconds, about 68 years, for timeout and
// shutdown-timeout; -1 as "off" for slowlog-log-slower-than) unless that
// would overflow here; counts stop at the largest 32-bit int.
var (
	portRange            = bounds{"port", 0, 65535, ""}
	tlsPortRange         = bounds{"tls-port", 0, 65535, ""}
	maxClientsRange      = bounds{"maxclients", 1, math.MaxInt32, ""}
	timeoutRange         = bounds{"timeout", 0, math.MaxInt32, "seconds"}
	shutdownTimeoutRange = bounds{"shutdown-timeout", 0, math.MaxInt32, "seconds"}
	// Ten years, the longest duration any command takes; Redis allows
	// LLONG_MAX µs, which no time.Duration holds.
	slowlogSlowerRange = bounds{"slowlog-log-slower-than", -1, 10 * 365 * 24 * 3600 * 1e6, "microseconds"}
	slowlogLenRange    = bounds{"slowlog-max-len", 0, math.MaxInt32, ""}
	// Each label is a time series of its own; a million is already far
	// past what a Prometheus server takes, and keeps the metrics package's
	// 4*n bound on remembered names far from overflow.
	metricsLabelsRange = bounds{"metrics-max-labels", 1, 1_000_000, ""}
	reserveQueuesRange = bounds{"max-reserve-queues", 1, 1_000_000, ""}
	// Ten years, as slowlog-log-slower-than; the window is kept in ms.
	idemWindowRange = bounds{"idempotency-window", 1, 10 * 365 * 24 * 3600, "seconds"}
	idemKeysRange   = bounds{"idempotency-max-keys", 1, math.MaxInt32, ""}
	maxCronRange    = bounds{"max-cron", 0, 1_000_000, ""}
	// Batches (store/batch.go): each open one is a few hundred bytes.
	maxBatchesRange   = bounds{"max-batches", 0, 1_000_000, ""}
	maxBatchJobsRange = bounds{"max-batch-jobs", 1, math.MaxInt32, ""}

	retentionRange       = bounds{"retention", 1, 10 * 365 * 24 * 3600, "seconds"}
	maxRetainedRange     = bounds{"max-retained", 1, math.MaxInt32, ""}
	failedRetentionRange = bounds{"failed-retention", 1, 10 * 365 * 24 * 3600, "seconds"}
	maxFailedRange       = bounds{"max-failed", 1, math.MaxInt32, ""}
)

// outOfRange is the message for a value outside b, as the option's value
// (v) was given.
func (b bounds) outOfRange(v string) string {
	msg := fmt.Sprintf("%s is not between %d and %d", v, b.min, b.max)
	if b.unit != "" {
		msg += " " + b.unit
	}
	return msg
}

// check reports a value outside b, naming the option (for Validate).
func (b bounds) check(n int64) error {
	if n < b.min || n > b.max {
		return fmt.Errorf("%s: %s", b.name, b.outOfRange(strconv.FormatInt(n, 10)))
	}
	return nil
}

// intIn reads an integer option's value and checks it against b; a number
// too large for int64 is out of range like any other.
func intIn[T int | int64](v string, b bounds) (T, error) {
	t := strings.TrimSpace(v)
	n, err := strconv.ParseInt(t, 10, 64)
	if errors.Is(err, strconv.ErrRange) || (err == nil && (n < b.min || n > b.max)) {
		return 0, errors.New(b.outOfRange(t))
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	return T(n), nil
}

func yesNo(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no", v)
}

func yesNoString(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
