'use strict';
// The client lifecycle of compat/doc.go, written once for Node.js and run by
// node-redis.js and ioredis.js through a small driver:
//
//   driver.name           the library, for messages
//   driver.proto          2 or 3: the protocol the library asks for by default
//   driver.mapShape       'object' when the library gives RESP3 maps as plain
//                         objects, 'flat' when it gives field/value arrays
//   driver.call(args)     one command; resolves to the library's reply
//   driver.multi(cmds)    the library's own MULTI/EXEC of cmds; resolves to
//                         the replies in order
//   driver.info(section)  the library's INFO reply, as text
//   driver.second()       another connection, with the same defaults: an
//                         object with call(args) and close()
//
// Steps that need a feature of issue 17 are marked [RESP3], [MULTI],
// [IDEMPOTENCY]. Every step runs even when one before it failed (the steps
// are independent where the lifecycle allows), every failure is printed, and
// the exit status is 1 if any step failed.

const assert = require('node:assert/strict');

function text(v) {
  if (v === null || v === undefined) return v;
  if (Buffer.isBuffer(v)) return v.toString();
  if (v instanceof String) return v.toString();
  return v;
}

// asMap reads a map reply in the shape the library gives it, and checks
// that the shape is the one its protocol promises.
function asMap(driver, v, what) {
  assert.ok(v !== null && v !== undefined, `${what}: null, want a map`);
  if (driver.mapShape === 'object') {
    assert.ok(!Array.isArray(v) && typeof v === 'object',
      `${what}: got ${JSON.stringify(v)}, want a RESP3 map (an object)`);
    const m = {};
    for (const [k, val] of (v instanceof Map ? v.entries() : Object.entries(v))) m[text(k)] = text(val);
    return m;
  }
  assert.ok(Array.isArray(v) && v.length % 2 === 0, `${what}: got ${JSON.stringify(v)}, want a flat field/value list`);
  const m = {};
  for (let i = 0; i < v.length; i += 2) m[text(v[i])] = text(v[i + 1]);
  return m;
}

// fields checks the named fields of map m.
function fields(m, want, what) {
  for (const [k, v] of Object.entries(want)) {
    assert.ok(k in m, `${what}: no field ${k} in ${JSON.stringify(m)}`);
    if (typeof v === 'function') {
      assert.ok(v(m[k]), `${what}: ${k} = ${JSON.stringify(m[k])}`);
    } else {
      assert.deepStrictEqual(m[k], v, `${what}: ${k} = ${JSON.stringify(m[k])}, want ${JSON.stringify(v)}`);
    }
  }
}

// zero accepts 0 and, for a value RESP3 may give as a boolean, false.
const zero = (v) => v === 0 || v === false;

// parseInfo reads INFO text as redis-py and go-redis do: a field is split
// from its value at the first ':', a value at ',' and '='.
function parseInfo(t) {
  const out = {};
  for (const raw of String(t).split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const i = line.indexOf(':');
    if (i < 0) continue;
    const key = line.slice(0, i);
    const value = line.slice(i + 1);
    if (value.includes('=')) {
      const sub = {};
      for (const kv of value.split(',')) {
        const j = kv.lastIndexOf('=');
        sub[kv.slice(0, j)] = kv.slice(j + 1);
      }
      out[key] = sub;
    } else {
      out[key] = value;
    }
  }
  return out;
}

async function run(driver) {
  const failures = [];
  let steps = 0;
  async function step(name, fn) {
    steps++;
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (e) {
      failures.push(name);
      console.log(`FAIL ${name}: ${String(e && e.message ? e.message : e).split('\n')[0]}`);
    }
  }
  const call = (...args) => driver.call(args.map(String));

  if (driver.proto === 3) {
    await step('[RESP3] HELLO answers proto 3 on the library\'s connection', async () => {
      const m = asMap(driver, await call('HELLO'), 'HELLO');
      fields(m, { server: 'sluice', proto: 3 }, 'HELLO');
    });
  } else {
    await step('HELLO answers proto 2', async () => {
      fields(asMap(driver, await call('HELLO'), 'HELLO'), { proto: 2 }, 'HELLO');
    });
  }

  await step('POLICYSET CONCURRENCY and RATELIMIT', async () => {
    assert.equal(text(await call('POLICYSET', 'CONCURRENCY', 'tenant:a', 2)), 'OK');
    assert.equal(text(await call('POLICYSET', 'RATELIMIT', 'api:x', 100, 60000)), 'OK');
  });

  let token = null;
  await step('JOBRESERVE BLOCK is woken by a push from another connection', async () => {
    const other = await driver.second();
    try {
      const pending = other.call(['JOBRESERVE', 'w1', '30000', 'BLOCK', '10000', 'QUEUES', 'mail:out']);
      const deadline = Date.now() + 5000;
      for (;;) {
        const info = parseInfo(await driver.info('clients'));
        if (info.blocked_clients === '1') break;
        assert.ok(Date.now() < deadline, `the reserve never blocked: blocked_clients:${info.blocked_clients}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const id = await call('JOBPUSH', 'mail:out', 'send', '{"to":"a@example.com"}', 'ID', 'job:a',
        'PRIORITY', 5, 'CONCURRENCY', 'tenant:a', 'RATELIMIT', 'api:x', 'MAXATTEMPTS', 3, 'BACKOFF', 10);
      assert.equal(text(id), 'job:a');
      const got = await pending;
      assert.ok(Array.isArray(got) && got.length === 1, `reserve: ${JSON.stringify(got)}`);
      const r = asMap(driver, got[0], 'reservation');
      fields(r, {
        id: 'job:a', queue: 'mail:out', handler: 'send', payload: '{"to":"a@example.com"}',
        priority: 5, attempt: 0, expires_at: (v) => Number.isInteger(v) && v > Date.now(),
        token: (v) => typeof v === 'string' && v.length > 0,
      }, 'reservation');
      token = r.token;
    } finally {
      await other.close();
    }
  });

  await step('JOBPUSH DELAY and AT create scheduled jobs', async () => {
    const b = text(await call('JOBPUSH', 'mail:out', 'send', 'later', 'DELAY', 600000));
    const at = Date.now() + 600000;
    const c = text(await call('JOBPUSH', 'mail:out', 'send', 'at', 'AT', at));
    fields(asMap(driver, await call('JOBGET', b), 'JOBGET'), { state: 'scheduled', payload: 'later' }, 'JOBGET delayed');
    fields(asMap(driver, await call('JOBGET', c), 'JOBGET'), { state: 'scheduled', run_at: at }, 'JOBGET at');
  });

  await step('JOBSTART, JOBTOUCH, JOBGET, JOBACK', async () => {
    assert.ok(token, 'no reservation from the blocking step');
    assert.equal(await call('JOBSTART', token), 1);
    const exp = await call('JOBTOUCH', token, 60000);
    assert.ok(Number.isInteger(exp) && exp >= Date.now() + 50000, `JOBTOUCH: ${exp}`);
    fields(asMap(driver, await call('JOBGET', 'job:a'), 'JOBGET'), {
      id: 'job:a', queue: 'mail:out', handler: 'send', state: 'running', priority: 5,
      concurrency_key: 'tenant:a', rate_limit_key: 'api:x', attempt: 1, max_attempts: 3,
      worker: 'w1', expires_at: exp, last_error: null, blocked_by: null,
    }, 'JOBGET job:a');
    assert.equal(text(await call('JOBACK', token)), 'OK');
    fields(asMap(driver, await call('JOBGET', 'job:a'), 'JOBGET'), { state: 'succeeded', worker: null }, 'JOBGET job:a');
  });

  await step('JOBFAIL NORETRY, then JOBRETRY', async () => {
    const d = text(await call('JOBPUSH', 'mail:out', 'send', 'fails'));
    const got = await call('JOBRESERVE', 'w2', 30000, 'QUEUES', 'mail:out');
    assert.ok(Array.isArray(got) && got.length === 1, `reserve: ${JSON.stringify(got)}`);
    const r = asMap(driver, got[0], 'reservation');
    fields(r, { id: d }, 'reservation');
    assert.equal(text(await call('JOBFAIL', r.token, 'ERROR', 'boom', 'NORETRY')), 'failed');
    fields(asMap(driver, await call('JOBGET', d), 'JOBGET'), { state: 'failed', last_error: 'boom', attempt: 1 }, 'JOBGET failed');
    assert.equal(text(await call('JOBRETRY', d)), 'OK');
    fields(asMap(driver, await call('JOBGET', d), 'JOBGET'), { state: 'queued', attempt: 0 }, 'JOBGET retried');
  });

  await step('nulls: JOBGET of an unknown id, JOBRESERVE of an empty queue, POLICYGET of no policy', async () => {
    assert.equal(await call('JOBGET', 'no:such:job'), null);
    assert.equal(await call('JOBRESERVE', 'w3', 1000, 'QUEUES', 'empty:q'), null);
    assert.equal(await call('POLICYGET', 'CONCURRENCY', 'no:such:key'), null);
  });

  await step('QUEUESTATS', async () => {
    fields(asMap(driver, await call('QUEUESTATS', 'mail:out'), 'QUEUESTATS'), {
      queue: 'mail:out', status: 'active', queued: 1, scheduled: 2, reserved: 0, running: 0,
      retry_pending: 0, failed: 0, paused: zero, pushed_total: 4, succeeded_total: 1, failed_total: 1,
    }, 'QUEUESTATS mail:out');
  });

  await step('POLICYGET and POLICYLIST', async () => {
    fields(asMap(driver, await call('POLICYGET', 'CONCURRENCY', 'tenant:a'), 'POLICYGET'), {
      kind: 'concurrency', key: 'tenant:a', limit: 2, period: null, active: 0, waiting: 0, next_free_at: null,
    }, 'POLICYGET CONCURRENCY tenant:a');
    fields(asMap(driver, await call('POLICYGET', 'RATELIMIT', 'api:x'), 'POLICYGET'), {
      kind: 'ratelimit', key: 'api:x', limit: 100, period: 60000, active: 1, waiting: 0, next_free_at: null,
    }, 'POLICYGET RATELIMIT api:x');
    const list = await call('POLICYLIST');
    assert.ok(Array.isArray(list) && list.length === 2, `POLICYLIST: ${JSON.stringify(list)}`);
    fields(asMap(driver, list[0], 'POLICYLIST[0]'), { kind: 'concurrency', key: 'tenant:a' }, 'POLICYLIST[0]');
    fields(asMap(driver, list[1], 'POLICYLIST[1]'), { kind: 'ratelimit', key: 'api:x' }, 'POLICYLIST[1]');
  });

  await step('[MULTI] a transaction of three pushes', async () => {
    const replies = await driver.multi([
      ['JOBPUSH', 'batch:q', 'h', 'one'],
      ['JOBPUSH', 'batch:q', 'h', 'two', 'PRIORITY', '1'],
      ['JOBPUSH', 'batch:q', 'h', 'three', 'ID', 'batch:3'],
    ]);
    assert.ok(Array.isArray(replies) && replies.length === 3, `EXEC: ${JSON.stringify(replies)}`);
    const ids = replies.map(text);
    assert.equal(ids[2], 'batch:3');
    assert.equal(new Set(ids).size, 3, `ids: ${ids}`);
    assert.equal(await call('QUEUELEN', 'batch:q'), 3);
  });

  await step('[IDEMPOTENCY] a push with every option, and its retry, answer the same id', async () => {
    const at = Date.now() + 600000;
    const push = [
      ['JOBPUSH', 'idem:q', 'send', 'p1', 'ID', 'job:e', 'PRIORITY', '-3', 'CONCURRENCY', 'tenant:a',
        'RATELIMIT', 'api:x', 'DELAY', '600000', 'MAXATTEMPTS', '2', 'BACKOFF', '50', 'IDEMPOTENCY', 'order:1'],
      ['JOBPUSH', 'idem:q', 'send', 'p2', 'PRIORITY', '7', 'CONCURRENCY', 'tenant:a',
        'RATELIMIT', 'api:x', 'AT', String(at), 'MAXATTEMPTS', '4', 'BACKOFF', '60', 'IDEMPOTENCY', 'order:2'],
    ];
    const e = text(await driver.call(push[0]));
    assert.equal(e, 'job:e');
    const f = text(await driver.call(push[1]));
    assert.equal(text(await driver.call(push[0])), e, 'the retry of the push with ID');
    assert.equal(text(await driver.call(push[1])), f, 'the retry of the push without ID');
    fields(asMap(driver, await call('JOBGET', e), 'JOBGET'), {
      state: 'scheduled', priority: -3, concurrency_key: 'tenant:a', rate_limit_key: 'api:x', max_attempts: 2,
    }, 'JOBGET job:e');
    fields(asMap(driver, await call('JOBGET', f), 'JOBGET'), {
      state: 'scheduled', priority: 7, run_at: at, max_attempts: 4,
    }, 'JOBGET ' + f);
    fields(asMap(driver, await call('QUEUESTATS', 'idem:q'), 'QUEUESTATS'), { scheduled: 2, pushed_total: 2 }, 'QUEUESTATS idem:q');
  });

  await step('[WORKFLOWS] a unique key, a dependency, a result and JOBWAIT, a batch, JOBSCAN and JOBBULK', async () => {
    const id = text(await call('JOBPUSH', 'wf:q', 'h', 'p', 'UNIQUE', 'wf:k', 'ON-DUPLICATE', 'reject'));
    let dup = null;
    try {
      await call('JOBPUSH', 'wf:q', 'h', 'p', 'UNIQUE', 'wf:k', 'ON-DUPLICATE', 'reject');
    } catch (e) {
      dup = e;
    }
    assert.ok(dup && String(dup.message).startsWith(`DUPKEY key wf:k is held by job ${id}`), `the duplicate: ${dup}`);
    const dep = text(await call('JOBPUSH', 'wf:q', 'h', 'then', 'AFTER', 1, id));
    fields(asMap(driver, await call('JOBGET', dep), 'JOBGET'), { state: 'waiting' }, 'JOBGET of a dependent');
    assert.equal(await call('JOBWAIT', id, 50), null, 'JOBWAIT that times out');
    const r = asMap(driver, (await call('JOBRESERVE', 'w9', 30000, 'QUEUES', 'wf:q'))[0], 'reservation');
    assert.equal(r.id, id);
    assert.equal(text(await call('JOBACK', r.token, 'RESULT', '{"n":1}')), 'OK');
    fields(asMap(driver, await call('JOBWAIT', id), 'JOBWAIT'),
      { id, state: 'succeeded', result: '{"n":1}', last_error: null }, 'JOBWAIT');
    fields(asMap(driver, await call('JOBGET', dep), 'JOBGET'), { state: 'queued' }, 'JOBGET of the released dependent');
    assert.equal(text(await call('BATCHOPEN', 'wf:b')), 'OK');
    const b1 = text(await call('JOBPUSH', 'wf:bq', 'h', 'x', 'BATCH', 'wf:b'));
    assert.equal(text(await call('BATCHCLOSE', 'wf:b')), 'OK');
    fields(asMap(driver, await call('BATCHGET', 'wf:b'), 'BATCHGET'),
      { id: 'wf:b', state: 'closed', total: 1, pending: 1 }, 'BATCHGET');
    const t = asMap(driver, (await call('JOBRESERVE', 'w9', 30000, 'QUEUES', 'wf:bq'))[0], 'reservation').token;
    assert.equal(text(await call('JOBFAIL', t, 'ERROR', 'wf boom', 'NORETRY')), 'failed');
    fields(asMap(driver, await call('BATCHGET', 'wf:b'), 'BATCHGET'), { state: 'done', failed: 1, pending: 0 }, 'BATCHGET done');
    let cursor = '0';
    const found = [];
    do {
      const [next, ids] = await call('JOBSCAN', cursor, 'QUEUE', 'wf:bq', 'STATE', 'failed');
      cursor = text(next);
      found.push(...ids.map(text));
    } while (cursor !== '0');
    assert.deepStrictEqual(found, [b1], 'JOBSCAN');
    const bulk = asMap(driver, await call('JOBBULK', 'RETRY', 'QUEUE', 'wf:bq'), 'JOBBULK');
    assert.equal(bulk.changed, 1, `JOBBULK: ${JSON.stringify(bulk)}`);
    fields(asMap(driver, await call('JOBGET', b1), 'JOBGET'), { state: 'queued' }, 'JOBGET after JOBBULK RETRY');
  });

  await step('INFO queues and policies, names with \':\'', async () => {
    const q = parseInfo(await driver.info('queues'));
    const mail = q['queue_mail%3Aout'];
    assert.ok(mail, `no queue_mail%3Aout in ${JSON.stringify(q)}`);
    fields(mail, { status: 'active', queued: '1', scheduled: '2' }, 'INFO queue_mail%3Aout');
    const names = Object.keys(q).filter((k) => k.startsWith('queue_')).map((k) => decodeURIComponent(k.slice(6)));
    assert.ok(names.includes('mail:out'), `queues in INFO: ${names}`);
    assert.equal(q.queues, String(names.length), `queues:${q.queues} but ${names.length} queue_ fields`);
    const p = parseInfo(await driver.info('policies'));
    fields(p, {
      policies: '2',
      'policy_concurrency_tenant%3Aa': (v) => v && v.limit === '2' && v.active === '0',
      'policy_ratelimit_api%3Ax': (v) => v && v.limit === '100' && v.period === '60000',
    }, 'INFO policies');
  });

  console.log(failures.length === 0 ? `${driver.name}: all ${steps} steps ok` : `${driver.name}: ${failures.length} of ${steps} steps failed: ${failures.join('; ')}`);
  return failures.length === 0;
}

module.exports = { run, parseInfo };
