'use strict';
// What sentinel.js and failover.js share: reading map replies, a client of
// each library configured with Sentinel only (the given ports as
// sentinels, "sluice" as the master name), and the script's end.

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

async function withIoredis(ports, run) {
  const Redis = require('ioredis');
  const c = new Redis({ sentinels: ports.map((port) => ({ host: '127.0.0.1', port })), name: 'sluice' });
  c.on('error', (e) => console.error(`ioredis error event: ${e.message}`));
  try {
    await new Promise((resolve, reject) => {
      c.once('ready', resolve);
      c.once('end', () => reject(new Error('connection ended before ready')));
    });
    await run((args) => c.call(...args), 'ioredis ' + require('ioredis/package.json').version);
  } finally {
    c.disconnect();
  }
}

async function withNodeRedis(ports, run) {
  const { createSentinel } = require('redis');
  const s = createSentinel({ name: 'sluice', sentinelRootNodes: ports.map((port) => ({ host: '127.0.0.1', port })) });
  const failed = new Promise((resolve, reject) => s.once('error', reject));
  await Promise.race([s.connect(), failed]);
  s.on('error', (e) => console.error(`node-redis error event: ${e}`));
  try {
    await run((args) => s.sendCommand(false, args), 'node-redis ' + require('redis/package.json').version);
  } finally {
    s.destroy();
  }
}

// main runs run(call, name) with lib's client and exits: 0 when it
// returned, 1 with a FAIL line when it threw or took more than seconds.
function main(lib, ports, run, seconds) {
  const timer = setTimeout(() => {
    console.log(`FAIL ${lib}: not done within ${seconds} s`);
    process.exit(1);
  }, seconds * 1000);
  const withClient = lib === 'ioredis' ? withIoredis : withNodeRedis;
  withClient(ports, run).then(() => {
    clearTimeout(timer);
    process.exit(0);
  }, (e) => {
    console.log(`FAIL ${lib}: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
}

module.exports = { field, main };
