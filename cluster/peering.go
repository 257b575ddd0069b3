// Package cluster runs a sluice node as a member of a replicated group on
// hashicorp/raft: the transport between peers, the replicated state
// machine over the store, and the leader's batching of commands.
package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// MinKeyLen is the shortest pre-shared key accepted: shorter ones are
// guessable.
const MinKeyLen = 16

// Peering says how the nodes of a group prove to each other that they
// belong to it. Every raft connection is TLS 1.3 in both directions; a
// connection that fails the check can neither join nor send an entry.
//
// With Key, every node derives the same Ed25519 identity from the shared
// secret and accepts a peer only when it shows that identity: nothing to
// generate or distribute but the key. With certificate files, each node
// shows its own certificate, and a peer is accepted when its certificate
// chains to the CA (the certificate's names are not checked: membership is
// the CA's to give). The files are those of the client port's TLS
// (--tls-cert-file, --tls-key-file, --tls-ca-cert-file) when set.
type Peering struct {
	Key      []byte
	CertFile string
	KeyFile  string
	CAFile   string
}

// identityInfo separates the key's use for the raft identity from any
// other use of the same secret.
const identityInfo = "sluice raft peer identity v1"

// TLSConfigs builds the configuration a node serves with and the one it
// dials with.
func (p Peering) TLSConfigs() (server, client *tls.Config, err error) {
	switch {
	case len(p.Key) > 0 && p.CertFile != "":
		return nil, nil, errors.New("cluster peering: a key and certificate files are both set; choose one")
	case len(p.Key) > 0:
		return p.keyConfigs()
	case p.CertFile != "":
		return p.certConfigs()
	default:
		return nil, nil, errors.New("cluster peering: set a cluster key or TLS certificate files; the raft port is never open to strangers")
	}
}

func (p Peering) keyConfigs() (server, client *tls.Config, err error) {
	if len(p.Key) < MinKeyLen {
		return nil, nil, fmt.Errorf("cluster key: %d bytes, need at least %d", len(p.Key), MinKeyLen)
	}
	seed, err := hkdf.Key(sha256.New, p.Key, nil, identityInfo, ed25519.SeedSize)
	if err != nil {
		return nil, nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	// The peer must show the group's public key; the certificate around
	// it is only its envelope.
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("peer sent no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		k, ok := c.PublicKey.(ed25519.PublicKey)
		if !ok || !bytes.Equal(k, pub) {
			return errors.New("peer does not hold the cluster key")
		}
		return nil
	}
	server, client = peerConfigs(cert, verify, tls.VersionTLS13)
	return server, client, nil
}

func (p Peering) certConfigs() (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster peering: %w", err)
	}
	if p.CAFile == "" {
		return nil, nil, errors.New("cluster peering: a CA certificate file is needed to check peers")
	}
	pem, err := os.ReadFile(p.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster peering: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("cluster peering: no certificate in %s", p.CAFile)
	}
	// Both sides check the chain to the CA, not the names: a peer is
	// dialled by address, and any holder of a CA-signed certificate is a
	// member.
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("peer sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	server, client = peerConfigs(cert, verify, tls.VersionTLS12)
	return server, client, nil
}

// peerConfigs are the two sides of a raft connection: each shows cert and
// demands the other's, which verify checks in place of the usual name and
// chain checks (InsecureSkipVerify only turns those off).
func peerConfigs(cert tls.Certificate, verify func([][]byte, [][]*x509.Certificate) error, min uint16) (server, client *tls.Config) {
	server = &tls.Config{MinVersion: min, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: verify}
	client = &tls.Config{MinVersion: min, Certificates: []tls.Certificate{cert},
		InsecureSkipVerify: true, VerifyPeerCertificate: verify}
	return server, client
}
