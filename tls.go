package main

import (
	"net"

	"github.com/rs/zerolog"

	"sluice/config"
	"sluice/protocol"
	"sluice/tlsserver"
)

// listenTLS opens the TLS listeners cfg asks for (none without tls-port).
// optional bind addresses that are not available are skipped, as for
// plaintext. On error every listener opened is closed.
func listenTLS(cfg config.Config, log zerolog.Logger) ([]net.Listener, *tlsserver.Certs, error) {
	if cfg.TLSPort == 0 {
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
