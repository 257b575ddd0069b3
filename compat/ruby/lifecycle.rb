# The client lifecycle of compat/doc.go with Debian's ruby-redis (redis-rb)
# and its defaults: Redis.new(port: PORT). redis-rb 4.x speaks RESP2, so map
# replies are flat field/value lists. Steps marked [MULTI] and [IDEMPOTENCY]
# need those features of issue 17. Every step runs even when one before it
# failed; the exit status is 1 if any step failed.
#
# Usage: ruby lifecycle.rb PORT

require "redis"

PORT = Integer(ARGV[0])
R = Redis.new(port: PORT)
LIB = "redis-rb #{Redis::VERSION}"

$failures = []
$steps = 0
$state = {}

def step(name)
  $steps += 1
  yield
  puts "ok   #{name}"
rescue StandardError, ScriptError => e
  $failures << name
  puts "FAIL #{name}: #{e.class}: #{e.message.lines.first&.chomp}"
end

def check(cond, msg)
  raise msg unless cond
end

def as_map(v, what)
  check(v.is_a?(Array) && v.size.even?, "#{what}: #{v.inspect}, want a flat field/value list")
  v.each_slice(2).to_h
end

def fields(m, want, what)
  want.each do |k, w|
    check(m.key?(k), "#{what}: no field #{k} in #{m.inspect}")
    if w.is_a?(Proc)
      check(w.call(m[k]), "#{what}: #{k} = #{m[k].inspect}")
    else
      check(m[k] == w, "#{what}: #{k} = #{m[k].inspect}, want #{w.inspect}")
    end
  end
end

def call(*args)
  R.call(*args.map(&:to_s))
end

def now_ms
  (Time.now.to_f * 1000).to_i
end

step("HELLO answers proto 2") do
  fields(as_map(call("HELLO"), "HELLO"), { "server" => "sluice", "proto" => 2 }, "HELLO")
end

step("POLICYSET CONCURRENCY and RATELIMIT") do
  check(call("POLICYSET", "CONCURRENCY", "tenant:a", 2) == "OK", "POLICYSET CONCURRENCY")
  check(call("POLICYSET", "RATELIMIT", "api:x", 100, 60000) == "OK", "POLICYSET RATELIMIT")
end

step("JOBRESERVE BLOCK is woken by a push from another connection") do
  other = Redis.new(port: PORT)
  th = Thread.new { other.call("JOBRESERVE", "w1", "30000", "BLOCK", "10000", "QUEUES", "mail:out") }
  deadline = Time.now + 5
  until R.info("clients")["blocked_clients"] == "1"
    check(Time.now < deadline, "the reserve never blocked")
    sleep 0.02
  end
  id = call("JOBPUSH", "mail:out", "send", '{"to":"a@example.com"}', "ID", "job:a", "PRIORITY", 5,
            "CONCURRENCY", "tenant:a", "RATELIMIT", "api:x", "MAXATTEMPTS", 3, "BACKOFF", 10)
  check(id == "job:a", "JOBPUSH: #{id.inspect}")
  reply = th.value
  other.close
  check(reply.is_a?(Array) && reply.size == 1, "reserve: #{reply.inspect}")
  m = as_map(reply[0], "reservation")
  fields(m, { "id" => "job:a", "queue" => "mail:out", "handler" => "send", "payload" => '{"to":"a@example.com"}',
              "priority" => 5, "attempt" => 0, "expires_at" => ->(v) { v.is_a?(Integer) && v > now_ms } }, "reservation")
  $state[:token] = m["token"]
end

step("JOBPUSH DELAY and AT create scheduled jobs") do
  b = call("JOBPUSH", "mail:out", "send", "later", "DELAY", 600000)
  at = now_ms + 600000
  c = call("JOBPUSH", "mail:out", "send", "at", "AT", at)
  fields(as_map(call("JOBGET", b), "JOBGET"), { "state" => "scheduled", "payload" => "later" }, "JOBGET delayed")
  fields(as_map(call("JOBGET", c), "JOBGET"), { "state" => "scheduled", "run_at" => at }, "JOBGET at")
end

step("JOBSTART, JOBTOUCH, JOBGET, JOBACK") do
  token = $state[:token]
  check(token, "no reservation from the blocking step")
  check(call("JOBSTART", token) == 1, "JOBSTART")
  exp = call("JOBTOUCH", token, 60000)
  check(exp.is_a?(Integer) && exp >= now_ms + 50000, "JOBTOUCH: #{exp.inspect}")
  fields(as_map(call("JOBGET", "job:a"), "JOBGET"), {
    "id" => "job:a", "queue" => "mail:out", "handler" => "send", "state" => "running", "priority" => 5,
    "concurrency_key" => "tenant:a", "rate_limit_key" => "api:x", "attempt" => 1, "max_attempts" => 3,
    "worker" => "w1", "expires_at" => exp, "last_error" => nil, "blocked_by" => nil
  }, "JOBGET job:a")
  check(call("JOBACK", token) == "OK", "JOBACK")
  fields(as_map(call("JOBGET", "job:a"), "JOBGET"), { "state" => "succeeded", "worker" => nil }, "JOBGET job:a")
end

step("JOBFAIL NORETRY, then JOBRETRY") do
  d = call("JOBPUSH", "mail:out", "send", "fails")
  reply = call("JOBRESERVE", "w2", 30000, "QUEUES", "mail:out")
  check(reply.is_a?(Array) && reply.size == 1, "reserve: #{reply.inspect}")
  m = as_map(reply[0], "reservation")
  fields(m, { "id" => d }, "reservation")
  check(call("JOBFAIL", m["token"], "ERROR", "boom", "NORETRY") == "failed", "JOBFAIL")
  fields(as_map(call("JOBGET", d), "JOBGET"), { "state" => "failed", "last_error" => "boom", "attempt" => 1 }, "JOBGET failed")
  check(call("JOBRETRY", d) == "OK", "JOBRETRY")
  fields(as_map(call("JOBGET", d), "JOBGET"), { "state" => "queued", "attempt" => 0 }, "JOBGET retried")
end

step("nulls: JOBGET of an unknown id, JOBRESERVE of an empty queue, POLICYGET of no policy") do
  check(call("JOBGET", "no:such:job").nil?, "JOBGET")
  check(call("JOBRESERVE", "w3", 1000, "QUEUES", "empty:q").nil?, "JOBRESERVE")
  check(call("POLICYGET", "CONCURRENCY", "no:such:key").nil?, "POLICYGET")
end

step("QUEUESTATS") do
  fields(as_map(call("QUEUESTATS", "mail:out"), "QUEUESTATS"), {
    "queue" => "mail:out", "status" => "active", "queued" => 1, "scheduled" => 2, "reserved" => 0, "running" => 0,
    "retry_pending" => 0, "failed" => 0, "paused" => 0, "pushed_total" => 4, "succeeded_total" => 1, "failed_total" => 1
  }, "QUEUESTATS mail:out")
end

step("POLICYGET and POLICYLIST") do
  fields(as_map(call("POLICYGET", "CONCURRENCY", "tenant:a"), "POLICYGET"), {
    "kind" => "concurrency", "key" => "tenant:a", "limit" => 2, "period" => nil, "active" => 0, "waiting" => 0,
    "next_free_at" => nil
  }, "POLICYGET CONCURRENCY tenant:a")
  fields(as_map(call("POLICYGET", "RATELIMIT", "api:x"), "POLICYGET"), {
    "kind" => "ratelimit", "key" => "api:x", "limit" => 100, "period" => 60000, "active" => 1, "waiting" => 0,
    "next_free_at" => nil
  }, "POLICYGET RATELIMIT api:x")
  list = call("POLICYLIST")
  check(list.is_a?(Array) && list.size == 2, "POLICYLIST: #{list.inspect}")
  fields(as_map(list[0], "POLICYLIST[0]"), { "kind" => "concurrency", "key" => "tenant:a" }, "POLICYLIST[0]")
  fields(as_map(list[1], "POLICYLIST[1]"), { "kind" => "ratelimit", "key" => "api:x" }, "POLICYLIST[1]")
end

step("[MULTI] multi of three pushes") do
  ids = R.multi do |tx|
    tx.call("JOBPUSH", "batch:q", "h", "one")
    tx.call("JOBPUSH", "batch:q", "h", "two", "PRIORITY", "1")
    tx.call("JOBPUSH", "batch:q", "h", "three", "ID", "batch:3")
  end
  check(ids.is_a?(Array) && ids.size == 3 && ids[2] == "batch:3" && ids.uniq.size == 3, "EXEC: #{ids.inspect}")
  check(call("QUEUELEN", "batch:q") == 3, "QUEUELEN batch:q")
end

step("[IDEMPOTENCY] a push with every option, and its retry, answer the same id") do
  at = now_ms + 600000
  e = ["JOBPUSH", "idem:q", "send", "p1", "ID", "job:e", "PRIORITY", -3, "CONCURRENCY", "tenant:a",
       "RATELIMIT", "api:x", "DELAY", 600000, "MAXATTEMPTS", 2, "BACKOFF", 50, "IDEMPOTENCY", "order:1"]
  f = ["JOBPUSH", "idem:q", "send", "p2", "PRIORITY", 7, "CONCURRENCY", "tenant:a",
       "RATELIMIT", "api:x", "AT", at, "MAXATTEMPTS", 4, "BACKOFF", 60, "IDEMPOTENCY", "order:2"]
  ide = call(*e)
  check(ide == "job:e", "JOBPUSH: #{ide.inspect}")
  idf = call(*f)
  check(call(*e) == ide, "the retry of the push with ID")
  check(call(*f) == idf, "the retry of the push without ID")
  fields(as_map(call("JOBGET", ide), "JOBGET"), { "state" => "scheduled", "priority" => -3,
                                                  "concurrency_key" => "tenant:a", "rate_limit_key" => "api:x",
                                                  "max_attempts" => 2 }, "JOBGET job:e")
  fields(as_map(call("JOBGET", idf), "JOBGET"), { "state" => "scheduled", "priority" => 7, "run_at" => at,
                                                  "max_attempts" => 4 }, "JOBGET second")
  fields(as_map(call("QUEUESTATS", "idem:q"), "QUEUESTATS"), { "scheduled" => 2, "pushed_total" => 2 }, "QUEUESTATS idem:q")
end

step("[WORKFLOWS] a unique key, a dependency, a result and JOBWAIT, a batch, JOBSCAN and JOBBULK") do
  jid = call("JOBPUSH", "wf:q", "h", "p", "UNIQUE", "wf:k", "ON-DUPLICATE", "reject")
  begin
    call("JOBPUSH", "wf:q", "h", "p", "UNIQUE", "wf:k", "ON-DUPLICATE", "reject")
    raise "a duplicate push was taken"
  rescue Redis::CommandError => e
    check(e.message.start_with?("DUPKEY key wf:k is held by job #{jid}"), "the duplicate: #{e.message}")
  end
  dep = call("JOBPUSH", "wf:q", "h", "then", "AFTER", 1, jid)
  fields(as_map(call("JOBGET", dep), "JOBGET"), { "state" => "waiting" }, "JOBGET of a dependent")
  check(call("JOBWAIT", jid, 50).nil?, "JOBWAIT that times out")
  m = as_map(call("JOBRESERVE", "w9", 30000, "QUEUES", "wf:q")[0], "reservation")
  fields(m, { "id" => jid }, "reservation")
  check(call("JOBACK", m["token"], "RESULT", '{"n":1}') == "OK", "JOBACK RESULT")
  fields(as_map(call("JOBWAIT", jid), "JOBWAIT"),
         { "id" => jid, "state" => "succeeded", "result" => '{"n":1}', "last_error" => nil }, "JOBWAIT")
  fields(as_map(call("JOBGET", dep), "JOBGET"), { "state" => "queued" }, "JOBGET of the released dependent")
  check(call("BATCHOPEN", "wf:b") == "OK", "BATCHOPEN")
  b1 = call("JOBPUSH", "wf:bq", "h", "x", "BATCH", "wf:b")
  check(call("BATCHCLOSE", "wf:b") == "OK", "BATCHCLOSE")
  fields(as_map(call("BATCHGET", "wf:b"), "BATCHGET"),
         { "id" => "wf:b", "state" => "closed", "total" => 1, "pending" => 1 }, "BATCHGET")
  t = as_map(call("JOBRESERVE", "w9", 30000, "QUEUES", "wf:bq")[0], "reservation")["token"]
  check(call("JOBFAIL", t, "ERROR", "wf boom", "NORETRY") == "failed", "JOBFAIL")
  fields(as_map(call("BATCHGET", "wf:b"), "BATCHGET"), { "state" => "done", "failed" => 1, "pending" => 0 }, "BATCHGET done")
  cursor = "0"
  found = []
  loop do
    cursor, ids = call("JOBSCAN", cursor, "QUEUE", "wf:bq", "STATE", "failed")
    found.concat(ids)
    break if cursor == "0"
  end
  check(found == [b1], "JOBSCAN: #{found.inspect}")
  bulk = as_map(call("JOBBULK", "RETRY", "QUEUE", "wf:bq"), "JOBBULK")
  check(bulk["changed"] == 1, "JOBBULK: #{bulk.inspect}")
  fields(as_map(call("JOBGET", b1), "JOBGET"), { "state" => "queued" }, "JOBGET after JOBBULK RETRY")
end

# The field names percent-encode a name's bytes (docs/commands.md).
def unescape(s)
  s.gsub(/%[0-9A-Fa-f]{2}/) { |h| h[1..].hex.chr }.force_encoding("UTF-8")
end

# redis-rb's info() keeps each field's value as text; split it at ',' and '='.
def sub(v)
  (v || "").split(",").to_h { |kv| kv.split("=", 2) }
end

step("info() with ':' in queue names and policy keys") do
  q = R.info("queues")
  names = q.select { |k, _| k.start_with?("queue_") }.to_h { |k, v| [unescape(k.delete_prefix("queue_")), v] }
  check(names.key?("mail:out"), "no mail:out in #{q.inspect}")
  fields(sub(names["mail:out"]), { "status" => "active", "queued" => "1", "scheduled" => "2" }, "info queue_mail%3Aout")
  check(q["queues"] == names.size.to_s, "queues:#{q['queues']} but #{names.size} queue_ fields")
  p = R.info("policies")
  check(p["policies"] == "2", "policies: #{p.inspect}")
  fields(sub(p["policy_concurrency_tenant%3Aa"]), { "limit" => "2", "active" => "0" }, "info policy_concurrency_tenant%3Aa")
  fields(sub(p["policy_ratelimit_api%3Ax"]), { "limit" => "100", "period" => "60000" }, "info policy_ratelimit_api%3Ax")
end

R.close
if $failures.empty?
  puts "#{LIB}: all #{$steps} steps ok"
else
  puts "#{LIB}: #{$failures.size} of #{$steps} steps failed: #{$failures.join('; ')}"
  exit 1
end
