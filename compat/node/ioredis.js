'use strict';
// The lifecycle with ioredis and its defaults: new Redis(port). ioredis 6
// asks for RESP3 (HELLO 3, falling back to RESP2 on NOPROTO) and, with its
// default replyMapping "legacy", gives every reply in RESP2's shapes: maps
// as flat field/value arrays. HELLO shows which protocol the connection
// really speaks.
// Usage: node ioredis.js PORT
const Redis = require('ioredis');
const { run } = require('./lifecycle');

const port = Number(process.argv[2]);
// SLUICE_TLS_DIR (ca.crt, client.crt, client.key) turns TLS on with that
// client certificate; SLUICE_USER and SLUICE_PASS log in as that user.
const tlsDir = process.env.SLUICE_TLS_DIR;
const options = { port, host: '127.0.0.1' };
if (tlsDir) {
  const fs = require('fs');
  const read = (f) => fs.readFileSync(`${tlsDir}/${f}`);
  options.tls = { ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') };
}
if (process.env.SLUICE_USER) {
  options.username = process.env.SLUICE_USER;
  options.password = process.env.SLUICE_PASS;
}

async function connect() {
  const c = tlsDir || options.username ? new Redis(options) : new Redis(port);
  c.on('error', (e) => console.log(`ioredis error event: ${e.message}`));
  await new Promise((resolve, reject) => {
    c.once('ready', resolve);
    c.once('end', () => reject(new Error('connection ended before ready')));
  });
  return c;
}

async function main() {
  let client;
  try {
    client = await connect();
  } catch (e) {
    console.log(`FAIL connect with the defaults: ${e.message}`);
    process.exit(1);
  }
  const ok = await run({
    name: 'ioredis ' + require('ioredis/package.json').version,
    proto: 3,
    mapShape: 'flat',
    call: (args) => client.call(...args),
    multi: (cmds) => {
      const m = client.multi();
      for (const c of cmds) m.call(...c);
      // exec() answers [[err, reply], ...]; an error in a slot is thrown.
      return m.exec().then((res) => {
        if (res === null) throw new Error('EXEC answered null (transaction discarded)');
        return res.map(([err, reply]) => {
          if (err) throw err;
          return reply;
        });
      });
    },
    info: (section) => client.info(section),
    second: async () => {
      const c = await connect();
      return { call: (args) => c.call(...args), close: () => c.quit() };
    },
  });
  await client.quit();
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL ${e.stack || e}`);
  process.exit(1);
});
