'use strict';
// Sentinel discovery against one sluice node, with each library's own
// Sentinel support and no sluice code: the node is given as the only
// sentinel, "sluice" as the master name; the library asks it for the
// master, connects there and runs a push, a reservation and an ack.
// Usage: node sentinel.js ioredis|node-redis PORT
const { field, main } = require('./sentinel-common');

const lib = process.argv[2];
const port = Number(process.argv[3]);

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

main(lib, [port], lifecycle, 30);
