package chaos

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"sluice/cluster"
)

// TestBadPeer sends every node's raft port garbage, a TLS stranger and a
// raft peer holding the wrong key that tries to append an entry (a push)
// as the leader of a later term. Each is refused and logged; no node's
// state changes; the group goes on serving.
func TestBadPeer(t *testing.T) {
	g := newGroup(t)
	r := &router{g: g}
	var ids []string
	for i := range 20 {
		v, err := pushed(r, "JOBPUSH", plainQueue, "h", fmt.Sprint(i), "IDEMPOTENCY", fmt.Sprintf("bad-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, v)
	}
	c := &checker{t: t, g: g}
	before := c.settledState(ids)

	for _, nd := range g.nodes {
		garbage(t, nd.raftAddr)
		stranger(t, nd.raftAddr)
		wrongKey(t, nd.raftAddr)
	}

	for _, nd := range g.nodes {
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(readLog(nd), "raft connection refused") {
			if time.Now().After(deadline) {
				t.Fatalf("n%d logged no refusal:\n%s", nd.id, nd.logTail())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Still serving: a push is acknowledged, and every node applies it.
	id, err := pushed(r, "JOBPUSH", plainQueue, "h", "after", "IDEMPOTENCY", "bad-after")
	if err != nil {
		t.Fatalf("the group stopped serving: %v", err)
	}
	after := c.settledState(append(ids, id))
	delete(after, "job "+id)
	for k, v := range before {
		if strings.HasPrefix(k, "queue ") {
			continue // the push after counts there
		}
		if !reflect.DeepEqual(after[k], v) {
			t.Errorf("%s changed: %v, now %v", k, v, after[k])
		}
	}
	for i, nd := range g.nodes {
		v, err := c.get(nd, "QUEUES")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(v) != "["+plainQueue+"]" {
			t.Errorf("n%d holds queues %v: something was applied besides the pushes", i, v)
		}
		if got := fieldsOf(t, c, nd, "QUEUESTATS", plainQueue)["pushed_total"]; got != fmt.Sprint(len(ids)+1) {
			t.Errorf("n%d counts %s pushes, want %d", i, got, len(ids)+1)
		}
	}
}

func fieldsOf(t *testing.T, c *checker, nd *node, args ...any) map[string]string {
	v, err := c.get(nd, args...)
	if err != nil {
		t.Fatal(err)
	}
	return fields(v)
}

// pushed runs a write through r until a node answers it.
func pushed(r *router, args ...any) (string, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, err := r.do(context.Background(), time.Second, args...)
		if err == nil {
			id, _ := v.(string)
			return id, nil
		}
		if definite(err) || time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settledState waits until every node shows the same state of ids and
// returns it.
func (c *checker) settledState(ids []string) map[string]any {
	deadline := time.Now().Add(20 * time.Second)
	for {
		var snaps []map[string]any
		for _, nd := range c.g.nodes {
			s, err := c.snapshot(nd, ids)
			if err != nil {
				c.t.Fatal(err)
			}
			snaps = append(snaps, s)
		}
		if reflect.DeepEqual(snaps[0], snaps[1]) && reflect.DeepEqual(snaps[0], snaps[2]) {
			return snaps[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the nodes do not agree: %v", snaps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readLog(nd *node) string {
	data, _ := os.ReadFile(filepath.Join(nd.dir, "server.log"))
	return string(data)
}

// garbage sends random bytes, then bytes shaped like a raft request
// (the transport's AppendEntries type byte and a few msgpack-ish bytes).
func garbage(t *testing.T, addr string) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, payload := range [][]byte{
		randomBytes(rng, 64<<10),
		append([]byte{0, 0x85, 0xa4, 'T', 'e', 'r', 'm', 0xcf}, randomBytes(rng, 512)...),
		[]byte("\x16\x03\x01\x00\x05hello"), // a TLS record header with a broken hello
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(payload)
		io.Copy(io.Discard, c) // until the node closes it
		c.Close()
	}
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// stranger completes a TLS handshake with a certificate of its own, as a
// client that does not hold the group's key.
func stranger(t *testing.T, addr string) {
	_, client, err := cluster.Peering{Key: []byte("not the group's key, but long enough")}.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, client)
	if err != nil {
		return // refused during the handshake
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("\x00not a raft request"))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("%s answered a stranger", addr)
	}
}

// wrongKey is a raft peer with the wrong key: it sends an AppendEntries of
// a much later term carrying a push, as a leader would. The node must
// refuse the connection, so the call fails.
func wrongKey(t *testing.T, addr string) {
	_, client, err := cluster.Peering{Key: []byte("another group's secret of 16+ bytes")}.TLSConfigs()
	if err != nil {
		t.Fatal(err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: &dialOnly{client: client, done: make(chan struct{})}, MaxPool: 1, Timeout: 5 * time.Second,
		Logger: hclog.NewNullLogger(),
	})
	defer trans.Close()
	e := cluster.Entry{Kind: cluster.KindCommands, Now: time.Now().UnixMilli(),
		Batches: []cluster.Batch{{{[]byte("JOBPUSH"), []byte("evil"), []byte("h"), []byte("injected")}}}}
	req := &raft.AppendEntriesRequest{
		RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("intruder"), Addr: []byte("127.0.0.1:1")},
		Term:      1 << 40, PrevLogEntry: 0, PrevLogTerm: 0, LeaderCommitIndex: 1 << 40,
		Entries: []*raft.Log{{Index: 1, Term: 1 << 40, Type: raft.LogCommand, Data: cluster.AppendEntry(nil, &e)}},
	}
	var resp raft.AppendEntriesResponse
	err = trans.AppendEntries("n-intruder", raft.ServerAddress(addr), req, &resp)
	if err == nil {
		t.Errorf("%s answered an AppendEntries from a peer with the wrong key: %+v", addr, resp)
	}
}

// dialOnly is a raft stream layer that only dials, over TLS with client.
type dialOnly struct {
	client *tls.Config
	done   chan struct{}
}

func (d *dialOnly) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", string(addr), d.client)
}

func (d *dialOnly) Accept() (net.Conn, error) {
	<-d.done
	return nil, net.ErrClosed
}

func (d *dialOnly) Close() error {
	close(d.done)
	return nil
}

func (d *dialOnly) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
