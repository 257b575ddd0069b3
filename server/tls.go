package server

import (
	"fmt"
	stdlog "log"
	"net"
	"strings"
	"sync"

	"github.com/rs/zerolog"

	"sluice/commands"
	"sluice/config"
	"sluice/protocol"
	"sluice/store"
	"sluice/tlsserver"
)

// listenTLS opens the TLS listeners cfg asks for (none without tls-port).
// optional bind addresses that are not available are skipped, as for
// plaintext. On error every listener opened is closed.
// The certificates are loaded with tls-port or metrics-tls, and serve both.
func listenTLS(cfg config.Config, log zerolog.Logger) ([]net.Listener, *tlsserver.Certs, error) {
	if !cfg.UsesTLS() {
		return nil, nil, nil
	}
	min, max, err := config.TLSVersions(cfg.TLSProtocols)
	if err != nil {
		return nil, nil, err
	}
	certs, err := tlsserver.Load(tlsserver.Settings{CertFile: cfg.TLSCertFile, KeyFile: cfg.TLSKeyFile,
		CAFile: cfg.TLSCACertFile, AuthClients: cfg.TLSAuthClients, MinVersion: min, MaxVersion: max})
	if err != nil {
		return nil, nil, err
	}
	if cfg.TLSPort == 0 {
		return nil, certs, nil
	}
	var lns []net.Listener
	for _, l := range cfg.TLSListeners() {
		ln, err := net.Listen(l.Network, l.Addr)
		if err != nil {
			if l.Skip(err) {
				log.Warn().Err(err).Str("addr", l.Addr).Msg("optional TLS address not available, skipped")
				continue
			}
			for _, l := range lns {
				l.Close()
			}
			return nil, nil, err
		}
		// Under TLS too the protocol server reads and writes the socket
		// with raw system calls and read sessions.
		lns = append(lns, tlsserver.NewListener(protocol.RawListener(ln), certs.Config(), 0, cfg.MaxClients, log))
	}
	return lns, certs, nil
}

// reloadTLS reads the certificate files again (SIGHUP); on error the
// certificates in use stay.
func reloadTLS(certs *tlsserver.Certs, log zerolog.Logger) {
	if certs == nil {
		log.Info().Msg("SIGHUP: no TLS certificates to reload")
		return
	}
	if err := certs.Reload(); err != nil {
		log.Error().Err(err).Msg("SIGHUP: TLS certificates not reloaded, the previous ones stay in use")
		return
	}
	log.Info().Msg("SIGHUP: TLS certificates reloaded; new connections use them")
}

// tlsSettable are the settings CONFIG SET changes while serving, besides
// maxmemory-share.
var tlsSettable = []string{"tls-cert-file", "tls-key-file", "tls-ca-cert-file"}

// configSetter is CONFIG SET for main's settings: the TLS files given are
// loaded together (a certificate and its key change at once) and, only if
// they load, served from the next handshake on; maxmemory-share replaces
// the shares. Nothing changes unless every setting does.
func configSetter(certs *tlsserver.Certs, st *store.Store, env *commands.Env) func([]commands.Setting) error {
	var mu sync.Mutex // one CONFIG SET at a time, so Settings follow the order applied
	return func(changes []commands.Setting) error {
		mu.Lock()
		defer mu.Unlock()
		var shares []store.Share
		setShares := false
		var files tlsserver.Files
		setFiles := false
		if certs != nil {
			files = certs.Files()
		}
		for _, c := range changes {
			switch c.Name {
			case "maxmemory-share":
				list, err := config.ParseShares(c.Value)
				if err != nil {
					return fmt.Errorf("maxmemory-share: %w", err)
				}
				shares, setShares = storeShares(list), true
			case "tls-cert-file", "tls-key-file", "tls-ca-cert-file":
				if certs == nil {
					return fmt.Errorf("%s: TLS is off (start with --tls-port or --metrics-tls)", c.Name)
				}
				switch c.Name {
				case "tls-cert-file":
					files.CertFile = c.Value
				case "tls-key-file":
					files.KeyFile = c.Value
				default:
					files.CAFile = c.Value
				}
				setFiles = true
			default:
				return fmt.Errorf("%s cannot change while running", c.Name)
			}
		}
		if setFiles {
			if err := certs.SetFiles(files); err != nil {
				return fmt.Errorf("%w; the certificates in use stay", err)
			}
		}
		if setShares {
			if err := st.SetShares(shares); err != nil {
				return err // ParseShares has refused what SetShares would
			}
		}
		for _, c := range changes {
			if c.Name == "maxmemory-share" {
				env.SetSetting(c.Name, config.FormatShares(sharesOf(shares)))
				continue
			}
			env.SetSetting(c.Name, c.Value)
		}
		return nil
	}
}

// storeShares are config's shares as the store takes them.
func storeShares(list []config.Share) []store.Share {
	out := make([]store.Share, len(list))
	for i, s := range list {
		out[i] = store.Share{Pattern: s.Pattern, Bytes: s.Bytes}
	}
	return out
}

func sharesOf(list []store.Share) []config.Share {
	out := make([]config.Share, len(list))
	for i, s := range list {
		out[i] = config.Share{Pattern: s.Pattern, Bytes: s.Bytes}
	}
	return out
}

// httpErrorLog sends the metrics server's own errors (failed TLS
// handshakes among them: a scan would flood stderr) to the log, at debug.
func httpErrorLog(log zerolog.Logger) *stdlog.Logger {
	return stdlog.New(httpErrors{log}, "", 0)
}

type httpErrors struct{ log zerolog.Logger }

func (h httpErrors) Write(p []byte) (int, error) {
	h.log.Debug().Str("error", strings.TrimSpace(string(p))).Msg("metrics server")
	return len(p), nil
}
