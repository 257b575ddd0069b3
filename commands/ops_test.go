package commands_test

import (
	"bufio"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/backpressure"
	"sluice/internal/check"
	"sluice/protocol"
	"sluice/store"
)

func TestSlowlog(t *testing.T) {
	ts := start(t, func(s *setup) {
		s.pcfg.SlowlogSlowerThan = 0 // every command
		s.pcfg.SlowlogMaxLen = 4
		s.pcfg.RequirePass = "secret"
	})
	c := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1; o.Password = "secret"; o.ClientName = "op" })
	do(t, c, "SLOWLOG", "RESET")
	long := strings.Repeat("x", 200)
	do(t, c, "JOBPUSH", "q", "h", long)
	do(t, c, "AUTH", "secret")
	entries := do(t, c, "SLOWLOG", "GET").([]any) // auth, push, reset
	if len(entries) != 3 {
		t.Fatalf("SLOWLOG GET: %v", entries)
	}
	newest := entries[0].([]any)
	check.Equal(t, "the AUTH entry's arguments", newest[3], any([]any{"AUTH", "(redacted)"}))
	push := entries[1].([]any)
	args := push[3].([]any)
	check.Field(t, "JOBPUSH entry's command", args[0], any("JOBPUSH"))
	check.Field(t, "JOBPUSH entry's payload", args[3], any(strings.Repeat("x", 128)+"... (72 more bytes)"))
	if push[0].(int64) >= newest[0].(int64) {
		t.Errorf("JOBPUSH entry's id %v is not below the newest's, %v", push[0], newest[0])
	}
	check.Field(t, "JOBPUSH entry's client name", push[5], any("op"))
	if !strings.HasPrefix(push[4].(string), "127.0.0.1:") {
		t.Errorf("JOBPUSH entry's client address %v", push[4])
	}
	if t.Failed() {
		t.FailNow()
	}
	if d := time.Now().Unix() - push[1].(int64); d < -1 || d > 5 {
		t.Fatalf("timestamp %v", push[1])
	}
	// The log keeps the most recent slowlog-max-len entries.
	do(t, c, "PING")
	do(t, c, "PING")
	if got := do(t, c, "SLOWLOG", "LEN"); got != int64(4) {
		t.Fatalf("SLOWLOG LEN past the bound = %v", got)
	}
	if got := do(t, c, "SLOWLOG", "GET", 1).([]any); len(got) != 1 {
		t.Fatalf("SLOWLOG GET 1: %v", got)
	}
	if got := do(t, c, "SLOWLOG", "RESET"); got != "OK" {
		t.Fatal(got)
	}
	if got := do(t, c, "SLOWLOG", "GET", -1).([]any); len(got) != 1 { // the RESET itself comes after
		t.Fatalf("after RESET: %v", got)
	}
	if e := doErr(t, c, "SLOWLOG", "GET", -2); e != "ERR count should be greater than or equal to -1" {
		t.Fatal(e)
	}
	if e := doErr(t, c, "SLOWLOG", "NOPE"); !strings.HasPrefix(e, "ERR unknown subcommand 'NOPE'") {
		t.Fatal(e)
	}
}

// Time spent waiting in JOBRESERVE ... BLOCK is not execution time: a
// blocked reserve is not slow.
func TestSlowlogIgnoresBlockedTime(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.SlowlogSlowerThan = 100 * time.Millisecond })
	c := ts.client(t, resp2)
	if r := reserve(t, c, "w", 1000, "BLOCK", 300, "QUEUES", "q"); r != nil {
		t.Fatalf("reserved %v", r)
	}
	if got := do(t, c, "SLOWLOG", "LEN"); got != int64(0) {
		t.Fatalf("a blocked reserve was logged as slow: %v", do(t, c, "SLOWLOG", "GET"))
	}
	for _, cs := range ts.srv.CommandStats() {
		if cs.Name == "jobreserve" && (cs.Calls != 1 || cs.Usec > 100_000) {
			t.Fatalf("jobreserve stats %+v", cs)
		}
	}
}

func infoText(t *testing.T, c *redis.Client, args ...any) string {
	t.Helper()
	return do(t, c, append([]any{"INFO"}, args...)...).(string)
}

func TestInfoSections(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	do(t, c, "POLICYSET", "CONCURRENCY", "smtp", 1)
	do(t, c, "POLICYSET", "RATELIMIT", "api", 5, 1000)
	do(t, c, "JOBPUSH", "mail", "send", "a", "CONCURRENCY", "smtp")
	do(t, c, "JOBPUSH", "mail", "send", "b", "CONCURRENCY", "smtp")
	r := reserve(t, c, "w", 10000, "QUEUES", "mail")
	do(t, c, "JOBACK", r[0]["token"])
	do(t, c, "JOBPUSH", "mail", "send", "c", "CONCURRENCY", "smtp")
	reserve(t, c, "w", 10000, "QUEUES", "mail")

	def := infoText(t, c)
	for _, want := range []string{"# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Persistence\r\n", "# Stats\r\n",
		"# Queues\r\n", "# Policies\r\n",
		"used_memory_jobs:" + strconv.FormatInt(ts.store.Bytes(), 10) + "\r\n", "maxmemory:0\r\n",
		"total_jobs_pushed:3\r\n", "total_jobs_reserved:2\r\n", "total_jobs_acked:1\r\n",
		"policies:2\r\n", "policy_concurrency_smtp:limit=1,active=1,waiting=1\r\n",
		"policy_ratelimit_api:limit=5,active=0,waiting=0,period=1000,next_free_at=0\r\n",
		"queue_mail:status=throttled,queued=1,scheduled=0,reserved=1,",
		"# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"} {
		if !strings.Contains(def, want) {
			t.Errorf("INFO lacks %q", want)
		}
	}
	if strings.Contains(def, "# Commandstats") {
		t.Error("INFO without arguments shows commandstats (Redis shows it only for all)")
	}
	// The memory figures: resident memory is at least the heap in use, and
	// what the runtime holds is at least that heap too.
	mem := map[string]int64{}
	for _, line := range strings.Split(infoText(t, c, "memory"), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				mem[k] = n
			}
		}
	}
	if runtime.GOOS == "linux" && (mem["used_memory_rss"] < mem["used_memory"] || mem["used_memory"] <= 0) {
		t.Errorf("INFO memory: used_memory_rss %d, used_memory %d", mem["used_memory_rss"], mem["used_memory"])
	}
	if mem["used_memory_sys"] < mem["used_memory"] {
		t.Errorf("INFO memory: used_memory_sys %d < used_memory %d", mem["used_memory_sys"], mem["used_memory"])
	}
	all := infoText(t, c, "all")
	if !strings.Contains(all, "# Commandstats\r\ncmdstat_") || !strings.Contains(all, "cmdstat_jobpush:calls=3,usec=") || !strings.Contains(all, "# Policies") {
		t.Errorf("INFO all:\n%s", all)
	}
	if got := infoText(t, c, "commandstats"); !strings.HasPrefix(got, "# Commandstats\r\n") || strings.Contains(got, "# Server") {
		t.Errorf("INFO commandstats:\n%s", got)
	}
	if got := infoText(t, c, "policies", "memory"); !strings.Contains(got, "# Memory") || !strings.Contains(got, "# Policies") || strings.Contains(got, "# Queues") {
		t.Errorf("INFO policies memory:\n%s", got)
	}
}

// --maxmemory: pushes get FULL, reads and acks go on, and pushes are
// accepted again once memory is freed.
func TestMaxMemory(t *testing.T) {
	payload := strings.Repeat("p", 1000)
	limit := 3*store.JobBytes(len(payload), 2, 0) + store.QueueBytes("q") + store.LaneOverhead // three jobs, their queue and lane
	ts := start(t, func(s *setup) {
		s.scfg.MaxBytes = limit
		s.scfg.Retention = 300 // ms: acked jobs are dropped soon, freeing memory
	})
	c := ts.client(t, resp2)
	for _, id := range []string{"j1", "j2", "j3"} {
		do(t, c, "JOBPUSH", "q", "h", payload, "ID", id)
	}
	if e := doErr(t, c, "JOBPUSH", "q", "h", payload, "ID", "j4"); e != "FULL job memory is at its limit (maxmemory)" {
		t.Fatalf("push past maxmemory: %q", e)
	}
	if !strings.Contains(infoText(t, c, "memory"), "maxmemory:"+strconv.FormatInt(limit, 10)) {
		t.Fatal("INFO memory does not show the limit")
	}
	// Reads and the work that frees memory keep working.
	if got := do(t, c, "QUEUELEN", "q"); got != int64(3) {
		t.Fatal(got)
	}
	asMap(t, do(t, c, "JOBGET", "j1"), jobFields...)
	r := reserve(t, c, "w", 10000, "COUNT", 3, "QUEUES", "q")
	for _, res := range r {
		do(t, c, "JOBSTART", res["token"])
		do(t, c, "JOBACK", res["token"])
	}
	// The acked jobs are held until retention drops them; then pushes work.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.Do(ctx, "JOBPUSH", "q", "h", payload, "ID", "j4").Result()
		if err == nil {
			break
		}
		if !strings.HasPrefix(err.Error(), "FULL") || time.Now().After(deadline) {
			t.Fatalf("push after memory was freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CLIENT LIST shows a blocked client with its last command; CLIENT KILL ID
// ends its wait, and nothing is reserved for it.
func TestClientListAndKillBlocked(t *testing.T) {
	ts := start(t)
	admin := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1 })
	worker := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1; o.ClientName = "w-1"; o.MaxRetries = -1 })
	wid := do(t, worker, "CLIENT", "ID").(int64)
	done := make(chan error, 1)
	go func() { done <- worker.Do(ctx, "JOBRESERVE", "w", 1000, "BLOCK", 0, "QUEUES", "q").Err() }()
	var line string
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(line, "flags=b") {
		if time.Now().After(deadline) {
			t.Fatalf("never listed as blocked: %q", line)
		}
		time.Sleep(10 * time.Millisecond)
		line = do(t, admin, "CLIENT", "LIST", "ID", wid).(string)
	}
	for _, want := range []string{"id=" + strconv.FormatInt(wid, 10) + " ", "name=w-1 ", "cmd=jobreserve ", "age=", "idle=", "addr=127.0.0.1:"} {
		if !strings.Contains(line, want) {
			t.Errorf("CLIENT LIST lacks %q: %q", want, line)
		}
	}
	if got := do(t, admin, "CLIENT", "KILL", "ID", wid); got != int64(1) {
		t.Fatalf("CLIENT KILL ID = %v", got)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the killed client got a reply")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the killed client's wait did not end")
	}
	do(t, admin, "JOBPUSH", "q", "h", "p", "ID", "after")
	if got := asMap(t, do(t, admin, "JOBGET", "after"), jobFields...)["state"]; got != "queued" {
		t.Fatalf("a job was handed to the killed client: %v", got)
	}
	if got := do(t, admin, "CLIENT", "LIST", "ID", wid).(string); got != "" {
		t.Fatalf("killed client still listed: %q", got)
	}
}

// --timeout closes idle clients but not blocked ones.
func TestIdleTimeoutSparesBlockedClients(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.IdleTimeout = 200 * time.Millisecond })
	c := ts.client(t, resp2, func(o *redis.Options) { o.PoolSize = 1; o.MaxRetries = -1 })
	id := do(t, c, "CLIENT", "ID").(int64)
	if r := reserve(t, c, "w", 1000, "BLOCK", 600, "QUEUES", "q"); r != nil {
		t.Fatal(r)
	}
	if got := do(t, c, "CLIENT", "ID"); got != id {
		t.Fatalf("the blocked client was closed as idle (new id %v)", got)
	}
	time.Sleep(400 * time.Millisecond)
	if got, err := c.Do(ctx, "CLIENT", "ID").Int64(); err == nil && got == id {
		t.Fatal("an idle client was not closed")
	}
	_ = protocol.OK
}

// HELLO 2 AUTH authenticates in one step; without it an unauthenticated
// HELLO is refused as Redis refuses it; a wrong password changes nothing.
func TestHelloAuth(t *testing.T) {
	ts := start(t, func(s *setup) { s.pcfg.RequirePass = "pw" })
	nc, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	send := func(cmd string) string {
		t.Helper()
		if _, err := nc.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "*") { // HELLO's map: skip its 14 elements
			for i := 0; i < 14; i++ {
				if l, _ := r.ReadString('\n'); strings.HasPrefix(l, "$") {
					r.ReadString('\n') // a bulk's body; "*0" (modules) has none
				}
			}
		}
		return strings.TrimSpace(line)
	}
	if got := send("HELLO 2"); !strings.HasPrefix(got, "-NOAUTH HELLO must be called with the client already authenticated") {
		t.Fatalf("HELLO 2 before AUTH: %q", got)
	}
	if got := send("HELLO 2 AUTH default wrong"); got != "-WRONGPASS invalid username-password pair or user is disabled." {
		t.Fatalf("HELLO 2 AUTH with a wrong password: %q", got)
	}
	if got := send("JOBPUSH q h p"); got != "-NOAUTH Authentication required." {
		t.Fatalf("after a failed HELLO AUTH: %q", got)
	}
	if got := send("HELLO 2 AUTH default pw SETNAME ops"); got != "*14" {
		t.Fatalf("HELLO 2 AUTH: %q", got)
	}
	if got := send("CLIENT GETNAME"); got != "$3" {
		t.Fatalf("CLIENT GETNAME after HELLO SETNAME: %q", got)
	}
	r.ReadString('\n')
	if got := send("PING"); got != "+PONG" {
		t.Fatalf("PING after HELLO 2 AUTH: %q", got)
	}
}

// infoField reads one numeric field of an INFO section.
func infoField(t *testing.T, c *redis.Client, section, field string) int64 {
	t.Helper()
	for _, line := range strings.Split(infoText(t, c, section), "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return 0
}

// --maxmemory counts queues and policies too: pausing queues that do not
// exist, and setting new policies, answer FULL at the limit, and INFO
// memory shows what they take.
func TestMaxMemoryCountsPausesAndPolicies(t *testing.T) {
	const limit = 200_000
	ts := start(t, func(s *setup) { s.scfg.MaxBytes = limit })
	c := ts.client(t, resp2)
	var paused int
	for ; paused < 5000; paused++ {
		_, err := c.Do(ctx, "QUEUEPAUSE", "q"+strconv.Itoa(paused)).Result()
		if err != nil {
			if err.Error() != "FULL memory is at its limit (maxmemory)" {
				t.Fatalf("pause %d: %v", paused, err)
			}
			break
		}
	}
	if paused == 5000 || paused == 0 {
		t.Fatalf("%d pauses of unknown queues went through under %d bytes", paused, limit)
	}
	queues := infoField(t, c, "memory", "used_memory_queues")
	used := infoField(t, c, "memory", "used_memory_dataset")
	if queues < int64(paused)*store.QueueOverhead || used > limit || used < queues {
		t.Fatalf("INFO memory: queues %d, dataset %d after %d pauses", queues, used, paused)
	}
	if got := do(t, c, "QUEUESTATS", "q"+strconv.Itoa(paused)); asMap(t, got, queueStatsFields...)["paused"] != int64(0) {
		t.Fatal("the refused pause paused its queue")
	}
	var set int
	for ; set < 5000; set++ {
		_, err := c.Do(ctx, "POLICYSET", "RATELIMIT", "k"+strconv.Itoa(set), 10, 1000).Result()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "FULL") {
				t.Fatalf("policy %d: %v", set, err)
			}
			break
		}
	}
	if set == 5000 || infoField(t, c, "memory", "used_memory_dataset") > limit {
		t.Fatalf("%d new policies set at the limit", set)
	}
	if set > 0 && infoField(t, c, "memory", "used_memory_policies") < int64(set)*backpressure.RateKeyOverhead {
		t.Fatal("INFO memory does not count the policies")
	}
	// Resuming forgets an empty queue, and gives its memory back.
	do(t, c, "QUEUERESUME", "q0")
	if got := infoField(t, c, "memory", "used_memory_queues"); got >= queues {
		t.Fatalf("queues take %d after a resume, %d before", got, queues)
	}
}

// Each queue and policy has a field of its own, whatever its name holds, so
// that a client's INFO parser (here go-redis's InfoMap) keeps them all.
func TestInfoFieldPerQueueAndPolicy(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	escaped := map[string]string{"mail": "mail", "a:b": "a%3Ab", "a,b": "a%2Cb", "a=b": "a%3Db", "a b": "a%20b",
		"a\nb": "a%0Ab", "a%3Ab": "a%253Ab", "x=1,y=2:z": "x%3D1%2Cy%3D2%3Az", "émails": "émails"}
	var names []string
	for n := range escaped {
		names = append(names, n)
	}
	for _, n := range names {
		do(t, c, "JOBPUSH", n, "h", "p")
		do(t, c, "POLICYSET", "CONCURRENCY", n, 2)
		do(t, c, "POLICYSET", "RATELIMIT", n, 5, 1000)
	}
	info, err := c.InfoMap(ctx, "queues", "policies").Result()
	if err != nil {
		t.Fatal(err)
	}
	queues, policies := info["Queues"], info["Policies"]
	if queues["queues"] != strconv.Itoa(len(names)) || policies["policies"] != strconv.Itoa(2*len(names)) {
		t.Fatalf("counts: %v %v", queues["queues"], policies["policies"])
	}
	if len(queues) != 1+len(names) || len(policies) != 1+2*len(names) {
		t.Fatalf("want a field per queue and per policy:\n%v\n%v", queues, policies)
	}
	for _, n := range names {
		esc := escaped[n]
		if v := queues["queue_"+esc]; !strings.HasPrefix(v, "status=active,queued=1,") {
			t.Errorf("queue %q: field queue_%s = %q", n, esc, v)
		}
		if v := policies["policy_concurrency_"+esc]; v != "limit=2,active=0,waiting=0" {
			t.Errorf("policy %q: field policy_concurrency_%s = %q", n, esc, v)
		}
		if v := policies["policy_ratelimit_"+esc]; v != "limit=5,active=0,waiting=0,period=1000,next_free_at=0" {
			t.Errorf("policy %q: field policy_ratelimit_%s = %q", n, esc, v)
		}
	}
}

// INFO keyspace has Redis's db0 line while jobs are held, none otherwise;
// FLUSHDB empties the store as FLUSHALL does.
func TestInfoKeyspaceAndFlushDB(t *testing.T) {
	ts := start(t)
	c := ts.client(t, resp2)
	if got := infoText(t, c, "keyspace"); got != "# Keyspace\r\n" {
		t.Fatalf("empty store: %q", got)
	}
	for i := range 3 {
		do(t, c, "JOBPUSH", "q"+strconv.Itoa(i%2), "h", "p")
	}
	do(t, c, "POLICYSET", "CONCURRENCY", "k", 1)
	if got := infoText(t, c, "keyspace"); got != "# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n" {
		t.Fatalf("three jobs: %q", got)
	}
	if !strings.Contains(infoText(t, c), "\r\n# Keyspace\r\ndb0:keys=3,") {
		t.Fatal("INFO without arguments lacks the keyspace section")
	}
	if got := doErr(t, c, "FLUSHDB", "NOW"); got != "ERR syntax error" {
		t.Fatalf("FLUSHDB NOW: %s", got)
	}
	if got := do(t, c, "DBSIZE"); got != int64(3) {
		t.Fatalf("a refused FLUSHDB changed the store: DBSIZE %v", got)
	}
	if got := do(t, c, "FLUSHDB", "ASYNC"); got != "OK" {
		t.Fatal(got)
	}
	if got := do(t, c, "DBSIZE"); got != int64(0) {
		t.Fatalf("DBSIZE after FLUSHDB: %v", got)
	}
	if got := do(t, c, "POLICYLIST").([]any); len(got) != 0 {
		t.Fatalf("FLUSHDB kept policies %v", got)
	}
	if got := infoText(t, c, "keyspace"); got != "# Keyspace\r\n" {
		t.Fatalf("after FLUSHDB: %q", got)
	}
	do(t, c, "JOBPUSH", "q", "h", "p")
	if got := do(t, c, "FLUSHDB"); got != "OK" {
		t.Fatal(got)
	}
	if got := do(t, c, "DBSIZE"); got != int64(0) {
		t.Fatalf("DBSIZE after FLUSHDB: %v", got)
	}
}
