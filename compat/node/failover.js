'use strict';
// Failover of a three-node sluice group with each library's own Sentinel
// support and no sluice code: the three nodes are the sentinels, "sluice"
// the master name. The script runs a lifecycle on the leader and prints
// READY; the test kills the leader and writes GO; the script pushes again,
// retrying on errors for up to 30 s as an application would, prints
// "WROTE id" once a push is answered, reserves and acks that job on the
// new leader, checks the jobs pushed before the kill, and prints "ok ..."
// or "FAIL ..." (exit status 1).
// Usage: node failover.js ioredis|node-redis PORT,PORT,PORT
const readline = require('readline');
const { field, main } = require('./sentinel-common');

const lib = process.argv[2];
const ports = process.argv[3].split(',').map(Number);

const lines = readline.createInterface({ input: process.stdin });
const go = new Promise((resolve, reject) => {
  lines.on('line', (l) => { if (l.trim() === 'GO') resolve(); });
  lines.on('close', () => reject(new Error('stdin closed before GO')));
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function reserveAck(call, name, queue, id) {
  const res = await call(['JOBRESERVE', 'w1', '30000', 'QUEUES', queue]);
  if (!Array.isArray(res) || res.length !== 1) throw new Error(`${name}: JOBRESERVE answered ${JSON.stringify(res)}`);
  if (field(res[0], 'id') !== id) throw new Error(`${name}: reserved ${JSON.stringify(res[0])}, pushed ${id}`);
  const ack = String(await call(['JOBACK', field(res[0], 'token')]));
  if (ack !== 'OK') throw new Error(`${name}: JOBACK answered ${ack}`);
}

async function state(call, id) {
  return field(await call(['JOBGET', id]), 'state');
}

async function run(call, name) {
  const push = (queue, key) => call(['JOBPUSH', queue, 'send', 'hello', 'IDEMPOTENCY', key]).then(String);
  const before = await push('failover:before', 'failover-before');
  await reserveAck(call, name, 'failover:before', before);
  const kept = await push('failover:kept', 'failover-kept');
  console.log('READY');
  await go;

  const start = Date.now();
  let after; let tries = 0; let last;
  const seen = new Set();
  while (Date.now() - start < 30000) {
    tries++;
    try {
      after = await push('failover:after', 'failover-after');
      break;
    } catch (e) {
      last = e;
      seen.add(String(e && e.message ? e.message : e));
      await sleep(100);
    }
  }
  if (after === undefined) throw new Error(`${name}: no write within 30 s of GO (${tries} tries): ${last}`);
  console.log(`WROTE ${after}`);
  for (const msg of seen) console.log(`retried on ${msg}`);
  await reserveAck(call, name, 'failover:after', after);
  for (const [id, want] of [[before, 'succeeded'], [kept, 'queued'], [after, 'succeeded']]) {
    const got = await state(call, id);
    if (got !== want) throw new Error(`${name}: job ${id} is ${got}, want ${want}`);
  }
  const again = await push('failover:kept', 'failover-kept');
  if (again !== kept) throw new Error(`${name}: pushing again with the key pushed before the kill answered ${again}, want ${kept}`);
  console.log(`ok   ${name}: followed the failover in ${Date.now() - start} ms (${tries} tries), reserved and acked ${after} on the new leader, ${before} and ${kept} still there`);
}

main(lib, ports, run, 60);
