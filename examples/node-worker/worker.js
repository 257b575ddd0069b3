'use strict';
// A sluice worker in Node.js, written against a stock Redis client
// (ioredis). It runs the example "send_email" handler for jobs on the
// "emails" queue, the same jobs the Go producer pushes:
//
//   npm ci
//   node worker.js --addr 127.0.0.1:6390 --queues emails --concurrency 2
//
// Each executor owns one connection and loops: a blocking JOBRESERVE that
// asks only for the handlers defined here, JOBSTART, the handler (with a
// JOBTOUCH heartbeat at a third of the lease), then JOBACK, or JOBFAIL with
// the error. SIGINT/SIGTERM stop reserving; running jobs finish, jobs
// reserved but not started are released, and the process exits 0.
// It prints one line per job it completes: "sent <id> to <address> (attempt n)".

const os = require('os');
const Redis = require('ioredis');

function arg(name, def) {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const addr = arg('addr', '127.0.0.1:6390');
const host = addr.slice(0, addr.lastIndexOf(':'));
const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
const queues = arg('queues', 'emails').split(',');
const concurrency = Number(arg('concurrency', '2'));
const leaseMs = Number(arg('lease', '30000'));
const blockMs = 1000; // how soon a shutdown stops reserving
const workerId = `node-${os.hostname()}-${process.pid}`;

// A handler error of this class fails the job for good (JOBFAIL NORETRY).
class NoRetry extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const handlers = {
  async send_email(job) {
    let email;
    try {
      email = JSON.parse(job.payload);
    } catch (err) {
      throw new NoRetry(`bad payload: ${err.message}`);
    }
    if (!email.to) throw new NoRetry('no recipient');
    await sleep(20); // talking to the mail server
    console.log(`sent ${job.id} to ${email.to} (attempt ${job.attempt})`);
  },
};
const names = Object.keys(handlers);

// Replies that are maps come as flat [field, value, ...] arrays.
function toObject(flat) {
  const o = {};
  for (let i = 0; i < flat.length; i += 2) o[flat[i]] = flat[i + 1];
  return o;
}

// The first word of an error reply is its code (EXPIRED, WRONGSTATE, ...).
const code = (err) => String((err && err.message) || '').split(' ')[0];

let stopping = false;

async function run(redis, job) {
  try {
    job.attempt = await redis.call('JOBSTART', job.token);
  } catch (err) {
    console.error(`cannot start ${job.id}: ${err.message}`);
    return;
  }
  let lost = null; // why the lease ended under us, if it did
  const heartbeat = setInterval(() => {
    redis.call('JOBTOUCH', job.token, leaseMs).catch((err) => {
      if (['EXPIRED', 'NORESERVATION', 'WRONGSTATE'].includes(code(err))) {
        lost = err.message; // cancelled, or someone else's now: do not ack
        clearInterval(heartbeat);
      }
    });
  }, Math.max(10, Math.floor(leaseMs / 3)));

  let failure = null;
  try {
    await handlers[job.handler](job);
  } catch (err) {
    failure = err || new Error('handler failed');
  } finally {
    clearInterval(heartbeat);
  }
  if (lost) {
    console.error(`job ${job.id} abandoned: ${lost}`);
    return;
  }
  try {
    if (failure === null) {
      await redis.call('JOBACK', job.token);
    } else {
      const args = ['JOBFAIL', job.token, 'ERROR', String(failure.stack || failure)];
      if (failure instanceof NoRetry) args.push('NORETRY');
      const state = await redis.call(...args);
      console.error(`job ${job.id} failed (${state}): ${failure.message}`);
    }
  } catch (err) {
    console.error(`cannot settle ${job.id}: ${err.message}`);
  }
}

async function executor() {
  const redis = new Redis({ host, port, maxRetriesPerRequest: 1 });
  redis.on('error', (err) => console.error(`connection: ${err.message}`));
  try {
    while (!stopping) {
      let reply;
      try {
        reply = await redis.call('JOBRESERVE', workerId, leaseMs, 'BLOCK', blockMs,
          'HANDLERS', names.length, ...names, 'QUEUES', ...queues);
      } catch (err) {
        console.error(`reserve failed: ${err.message}`);
        await sleep(500);
        continue;
      }
      for (const flat of reply || []) {
        const job = toObject(flat);
        if (stopping) {
          await redis.call('JOBRELEASE', job.token).catch(() => {});
          continue;
        }
        await run(redis, job);
      }
    }
  } finally {
    await redis.quit().catch(() => redis.disconnect());
  }
}

function shutdown(signal) {
  if (stopping) return;
  console.error(`${signal}: finishing running jobs`);
  stopping = true;
  setTimeout(() => process.exit(1), 10000).unref(); // give up on stuck jobs
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);

Promise.all(Array.from({ length: concurrency }, executor)).then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
