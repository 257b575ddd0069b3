'use strict';
// The lifecycle with node-redis (the `redis` package) and its defaults:
// createClient({url}) asks for RESP3 (HELLO 3) and gives maps as objects.
// Usage: node node-redis.js PORT
const { createClient } = require('redis');
const { run } = require('./lifecycle');

// SLUICE_TLS_DIR (ca.crt, client.crt, client.key) turns TLS on (rediss://)
// with that client certificate; SLUICE_USER and SLUICE_PASS log in as that
// user.
const tlsDir = process.env.SLUICE_TLS_DIR;
const user = process.env.SLUICE_USER;
const auth = user ? `${encodeURIComponent(user)}:${encodeURIComponent(process.env.SLUICE_PASS || '')}@` : '';
const url = `${tlsDir ? 'rediss' : 'redis'}://${auth}127.0.0.1:${process.argv[2]}`;
const options = { url };
if (tlsDir) {
  const fs = require('fs');
  const read = (f) => fs.readFileSync(`${tlsDir}/${f}`);
  options.socket = { tls: true, ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') };
}

async function connect() {
  const c = createClient(options);
  // node-redis reconnects for ever when the handshake fails: the first
  // error before the connection is ready ends the script instead.
  const failed = new Promise((resolve, reject) => c.once('error', reject));
  try {
    await Promise.race([c.connect(), failed]);
  } catch (e) {
    c.destroy();
    throw e;
  }
  c.on('error', (e) => console.log(`node-redis error event: ${e.message}`));
  return c;
}

async function main() {
  let client;
  try {
    client = await connect();
  } catch (e) {
    console.log(`FAIL connect with the defaults (RESP3): ${e.message}`);
    process.exit(1);
  }
  const ok = await run({
    name: 'node-redis ' + require('redis/package.json').version,
    proto: 3,
    mapShape: 'object',
    call: (args) => client.sendCommand(args),
    multi: (cmds) => {
      const m = client.multi();
      for (const c of cmds) m.addCommand(c);
      return m.exec();
    },
    info: (section) => client.info(section),
    second: async () => {
      const c = await connect();
      return { call: (args) => c.sendCommand(args), close: () => c.close() };
    },
  });
  await client.close();
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
