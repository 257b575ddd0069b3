package client

import (
	"context"
	"crypto/tls"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAddr is where sluice listens unless told otherwise.
const DefaultAddr = "127.0.0.1:6390"

// Options configure a Client. The zero value talks to DefaultAddr.
type Options struct {
	Addr       string // host:port; default DefaultAddr
	Username   string // AUTH user (an ACL user); empty: the default user
	Password   string // AUTH password (the user's, or --requirepass for the default user); empty: none
	ClientName string // CLIENT SETNAME on every connection; empty: none

	PoolSize     int           // connections per pool; default go-redis's (10 per CPU)
	DialTimeout  time.Duration // default 5 s
	ReadTimeout  time.Duration // default 5 s; blocking reserves are not bound by it
	WriteTimeout time.Duration // default ReadTimeout

	// MaxRetries is how many times a command that failed on the network is
	// sent again. Default 0: never, because a JOBPUSH or JOBRESERVE whose
	// first copy did arrive would be applied twice. Pushes that carry an
	// IdempotencyKey are safe to retry (the copy returns the first id).
	MaxRetries int

	// TLSConfig turns TLS on (the server's --tls-port): RootCAs trusts the
	// server's CA, Certificates holds a client certificate for a server
	// with --tls-auth-clients yes. nil: plain TCP. A Worker's connections
	// are its Client's, so they use it too.
	TLSConfig *tls.Config

	// Redis, if set, may adjust the go-redis options last. Protocol stays 2
	// whatever it sets: sluice speaks RESP2 only.
	Redis func(*redis.Options)
}

// ParseURL reads a redis:// or rediss:// URL
// (redis://[user:password@]host:port) into Options.
func ParseURL(url string) (Options, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		return Options{}, err
	}
	return Options{Addr: ro.Addr, Username: ro.Username, Password: ro.Password, TLSConfig: ro.TLSConfig}, nil
}

// Client is a connection pool to one sluice server with a typed method for
// every job, queue and policy command. It is safe for concurrent use.
type Client struct {
	rdb *redis.Client // everything but blocking reserves; ReadTimeout applies
	// blk carries blocking JOBRESERVEs. It has no read timeout of its own and
	// honours context deadlines, so each call's deadline is its BLOCK plus a
	// margin rather than ReadTimeout.
	blk    *redis.Client
	margin time.Duration // extra wait for a blocking reply beyond BLOCK
}

// New returns a client for the server described by opts. It does not
// connect until the first command; use Ping to check the server.
func New(opts Options) *Client {
	ro := &redis.Options{
		Addr:         opts.Addr,
		Username:     opts.Username,
		Password:     opts.Password,
		ClientName:   opts.ClientName,
		PoolSize:     opts.PoolSize,
		DialTimeout:  opts.DialTimeout,
		ReadTimeout:  opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout,
		MaxRetries:   opts.MaxRetries,
		TLSConfig:    opts.TLSConfig,
	}
	if ro.Addr == "" {
		ro.Addr = DefaultAddr
	}
	if ro.MaxRetries == 0 {
		ro.MaxRetries = -1 // go-redis reads 0 as "its default", which retries
	}
	if opts.Redis != nil {
		opts.Redis(ro)
	}
	ro.Protocol = 2

	margin := ro.ReadTimeout
	if margin <= 0 {
		margin = 5 * time.Second
	}
	bo := *ro
	bo.ReadTimeout = -1 // no deadline but the context's
	bo.ContextTimeoutEnabled = true
	return &Client{rdb: redis.NewClient(ro), blk: redis.NewClient(&bo), margin: margin}
}

// Redis returns the underlying go-redis client (not the one used for
// blocking reserves), for commands this package has no method for.
func (c *Client) Redis() *redis.Client { return c.rdb }

// Close closes every connection. Calls in flight fail.
func (c *Client) Close() error {
	return errors.Join(c.rdb.Close(), c.blk.Close())
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
	return wrapErr(c.rdb.Ping(ctx).Err())
}

// do runs one command and converts an error reply into *Error.
func (c *Client) do(ctx context.Context, args ...any) (any, error) {
	v, err := c.rdb.Do(ctx, args...).Result()
	return v, wrapErr(err)
}

func (c *Client) doInt(ctx context.Context, args ...any) (int64, error) {
	v, err := c.do(ctx, args...)
	if err != nil {
		return 0, err
	}
	return asInt(v, args[0])
}

func (c *Client) doOK(ctx context.Context, args ...any) error {
	v, err := c.do(ctx, args...)
	if err != nil {
		return err
	}
	if s, ok := v.(string); !ok || s != "OK" {
		return unexpected(args[0], v)
	}
	return nil
}

// ms is a duration in whole milliseconds, rounded up so that a positive
// duration never becomes 0.
func ms(d time.Duration) int64 {
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}
