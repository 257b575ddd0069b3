'use strict';
// Sentinel discovery against one sluice node, with each library's own
// Sentinel support and no sluice code: the node is given as the only
// sentinel, "sluice" as the master name; the library asks it for the
// master, connects there and runs a push, a reservation and an ack.
// Usage: node sentinel.js ioredis|node-redis PORT
const lib = process.argv[2];
const port = Number(process.argv[3]);

// field finds a map reply's field, whether the library gives maps as
// objects or as flat field/value arrays.
function field(m, name) {
  if (Array.isArray(m)) {
    for (let i = 0; i + 1 < m.length; i += 2) if (String(m[i]) === name) return String(m[i + 1]);
    return undefined;
  }
  if (m instanceof Map) return m.get(name);
  return m[name];
}

async function lifecycle(call, name) {
  const id = String(await call(['JOBPUSH', 'sentinel:q', 'send', 'hello']));
  const res = await call(['JOBRESERVE', 'w1', '30000', 'QUEUES', 'sentinel:q']);
  if (!Array.isArray(res) || res.length !== 1) throw new Error(`${name}: JOBRESERVE answered ${JSON.stringify(res)}`);
  if (field(res[0], 'id') !== id) throw new Error(`${name}: reserved ${JSON.stringify(res[0])}, pushed ${id}`);
  const ack = String(await call(['JOBACK', field(res[0], 'token')]));
  if (ack !== 'OK') throw new Error(`${name}: JOBACK answered ${ack}`);
  const state = field(await call(['JOBGET', id]), 'state');
  if (state !== 'succeeded') throw new Error(`${name}: job ${id} is ${state}`);
  console.log(`ok   ${name}: found the master through SENTINEL, pushed, reserved and acked ${id}`);
}

async function ioredis() {
  const Redis = require('ioredis');
  const c = new Redis({ sentinels: [{ host: '127.0.0.1', port }], name: 'sluice' });
  c.on('error', (e) => console.log(`ioredis error event: ${e.message}`));
  try {
    await new Promise((resolve, reject) => {
      c.once('ready', resolve);
      c.once('end', () => reject(new Error('connection ended before ready')));
    });
    await lifecycle((args) => c.call(...args), 'ioredis ' + require('ioredis/package.json').version);
  } finally {
    c.disconnect();
  }
}

async function nodeRedis() {
  const { createSentinel } = require('redis');
  const s = createSentinel({ name: 'sluice', sentinelRootNodes: [{ host: '127.0.0.1', port }] });
  const failed = new Promise((resolve, reject) => s.once('error', reject));
  await Promise.race([s.connect(), failed]);
  s.on('error', (e) => console.log(`node-redis error event: ${e}`));
  try {
    await lifecycle((args) => s.sendCommand(false, args), 'node-redis ' + require('redis/package.json').version);
  } finally {
    s.destroy();
  }
}

const main = lib === 'ioredis' ? ioredis : nodeRedis;
const timer = setTimeout(() => {
  console.log(`FAIL ${lib}: no answer within 30 s`);
  process.exit(1);
}, 30000);
main().then(() => {
  clearTimeout(timer);
  process.exit(0);
}, (e) => {
  console.log(`FAIL ${lib}: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
