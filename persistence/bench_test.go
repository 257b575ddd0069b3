package persistence

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"sluice/store"
)

// BenchmarkPush measures store.Push with the log under each fsync policy,
// and with no log at all, from 1 and 50 concurrent clients. Compare
// everysec with none (bar: ≥ 0.8×) and always/clients=50 with
// always/clients=1 (bar: ≥ 10×, group commit).
func BenchmarkPush(b *testing.B) {
	payload := make([]byte, 100)
	for _, mode := range []string{"none", "no", "everysec", "always"} {
		for _, clients := range []int{1, 50} {
			b.Run(mode+"/clients="+strconv.Itoa(clients), func(b *testing.B) {
				cfg := DefaultConfig()
				cfg.Dir = b.TempDir()
				cfg.Logger = zerolog.Nop()
				cfg.RewritePercentage = 0
				st, err := store.New(cfg.Store, store.NewRandomGenerator())
				if err != nil {
					b.Fatal(err)
				}
				if mode != "none" {
					cfg.Fsync, _ = ParseFsync(mode)
					l, err := Open(cfg, st)
					if err != nil {
						b.Fatal(err)
					}
					defer l.Close()
				}
				b.SetParallelism((clients + 1) / 2) // GOMAXPROCS is 2 here
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := st.Push(time.Now().UnixMilli(), store.PushOptions{Queue: "q", Handler: "h", Payload: payload}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkRestart measures loading a log that holds 1,000,000 queued jobs
// with 100-byte payloads, and reports the log's bytes per job, before and
// after a rewrite.
func BenchmarkRestart(b *testing.B) {
	const jobs = 1_000_000
	dir := b.TempDir()
	cfg := DefaultConfig()
	cfg.Dir = dir
	cfg.Logger = zerolog.Nop()
	cfg.RewritePercentage = 0
	cfg.Fsync = FsyncNo
	st, _ := store.New(cfg.Store, store.NewRandomGenerator())
	l, err := Open(cfg, st)
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 100)
	for i := 0; i < jobs; i++ {
		if _, err := st.Push(1, store.PushOptions{Queue: "q" + strconv.Itoa(i%8), Handler: "h", Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	l.Close()
	size := func() int64 {
		var n int64
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if fi, err := os.Stat(filepath.Join(dir, e.Name())); err == nil {
				n += fi.Size()
			}
		}
		return n
	}
	logBytes := size()
	for _, phase := range []string{"log", "rewritten"} {
		b.Run(phase, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				st2, _ := store.New(cfg.Store, store.NewRandomGenerator())
				start := time.Now()
				l2, err := Open(cfg, st2)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/restart")
				if st2.Len() != jobs {
					b.Fatalf("%d jobs after restart", st2.Len())
				}
				if phase == "log" {
					b.ReportMetric(float64(logBytes)/jobs, "logbytes/job")
				} else {
					b.ReportMetric(float64(size())/jobs, "logbytes/job")
				}
				if phase == "log" && i == b.N-1 {
					if err := l2.Rewrite(); err != nil {
						b.Fatal(err)
					}
				}
				l2.Close()
			}
		})
	}
}

// BenchmarkRecordCodec: encoding and decoding the records a push and a
// reservation log, the log's commonest.
func BenchmarkRecordCodec(b *testing.B) {
	recs := []store.Record{
		{Op: store.OpPush, Now: 1_700_000_000_000, ID: "01HZX3K9Q7", Queue: "emails", Handler: "send",
			Payload: make([]byte, 100), Priority: 5, MaxAtt: 3, Backoff: 1000, RunAt: 1_700_000_000_000},
		{Op: store.OpReserve, Now: 1_700_000_000_001, ID: "01HZX3K9Q7", Token: "01HZX3K9Q7.1", Worker: "w1",
			Expires: 1_700_000_030_001},
		{Op: store.OpAck, Now: 1_700_000_000_002, ID: "01HZX3K9Q7"},
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for i := 0; i < b.N; i++ {
			buf = appendRecord(buf[:0], &recs[i%len(recs)])
		}
	})
	b.Run("decode", func(b *testing.B) {
		var frames [][]byte
		for i := range recs {
			frames = append(frames, appendRecord(nil, &recs[i]))
		}
		b.ReportAllocs()
		var r store.Record
		for i := 0; i < b.N; i++ {
			if _, _, err := readRecord(frames[i%len(frames)], &r, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
