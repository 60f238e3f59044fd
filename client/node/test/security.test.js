'use strict';
// TLS, mutual TLS and bearer tokens against real `graphexec serve` processes, with certificates made for
// the test (a fresh CA): the client takes its settings from the same GRAPHEXEC_* variables as Python's.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client, Graph, UnauthenticatedError, UnavailableError, parseTarget } = require('../src');
const { startServer, makePki } = require('./helpers');

const SETTINGS = ['GRAPHEXEC_TLS_CA', 'GRAPHEXEC_TLS_CERT', 'GRAPHEXEC_TLS_KEY', 'GRAPHEXEC_TOKEN', 'GRAPHEXEC_TOKEN_FILE'];
const TIMEOUT_MS = 10_000; // a refused connection fails at once; this only bounds a hang

let pki;
let other; // a second CA, which the servers do not trust
let tlsServer; // TLS, tenants alice and bob
let mtlsServer; // the same, and clients must present a certificate of the CA

test.before(async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'graphexec-node-tls-'));
  pki = makePki(path.join(root, 'pki'));
  other = makePki(path.join(root, 'other'));
  const tls = ['--tls-cert', path.join(pki.folder, 'server.pem'), '--tls-key', path.join(pki.folder, 'server.key'),
    '--auth-tokens', path.join(pki.folder, 'tokens')];
  [tlsServer, mtlsServer] = await Promise.all([
    startServer(...tls), startServer(...tls, '--tls-client-ca', path.join(pki.folder, 'ca.pem'))]);
});

test.after(async () => {
  await Promise.all([tlsServer?.stop(), mtlsServer?.stop()]);
});

/** Run `fn` with exactly these GRAPHEXEC_* client settings in the environment (the rest unset). */
async function withSettings(values, fn) {
  const saved = Object.fromEntries(SETTINGS.map((name) => [name, process.env[name]]));
  try {
    for (const name of SETTINGS) {
      if (values[name] === undefined) delete process.env[name];
      else process.env[name] = values[name];
    }
    return await fn();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** A Client made under `settings` runs w*2+1 on `target`; resolves to the fetched values. */
function runOn(target, settings) {
  return withSettings(settings, async () => {
    const g = new Graph();
    const y = g.add(g.multiply(g.constant([1, 2, 3], { dtype: 'float32' }), 2), 1);
    const client = new Client(target);
    try {
      const session = await client.session(g);
      const { data } = await session.run(y, { timeoutMs: TIMEOUT_MS, retries: 0 });
      await session.close();
      return data;
    } finally {
      client.close();
    }
  });
}

const file = (name) => path.join(pki.folder, name);

test('targets: grpcs:// is TLS, grpc:// and bare gRPC names are plaintext', () => {
  assert.deepEqual(parseTarget('grpcs://localhost:7470'), { address: 'localhost:7470', secure: true });
  assert.deepEqual(parseTarget('grpc://dns:///server:7470'), { address: 'dns:///server:7470', secure: false });
  assert.deepEqual(parseTarget('ipv4:127.0.0.1:1,127.0.0.1:2'), { address: 'ipv4:127.0.0.1:1,127.0.0.1:2', secure: false });
  assert.throws(() => parseTarget('grpcs://'), /grpcs:\/\/host:port/);
});

test('over TLS with a tenant token (as a value or a file) runs, and the answer is right', async () => {
  assert.match(tlsServer.target, /^grpcs:\/\/127\.0\.0\.1:\d+$/);
  const expected = new Float32Array([3, 5, 7]);
  assert.deepEqual(await runOn(tlsServer.target, { GRAPHEXEC_TLS_CA: file('ca.pem'), GRAPHEXEC_TOKEN: pki.aliceToken }), expected);
  const tokenFile = path.join(pki.folder, 'token-bob');
  fs.writeFileSync(tokenFile, `${pki.bobToken}\n`); // bob's is stored hashed in the tokens file
  assert.deepEqual(await runOn(tlsServer.target, { GRAPHEXEC_TLS_CA: file('ca.pem'), GRAPHEXEC_TOKEN_FILE: tokenFile }), expected);
});

test('a wrong or missing token is UNAUTHENTICATED, naming no tenant', async () => {
  for (const token of ['not-a-token', undefined]) {
    const failure = await runOn(tlsServer.target, { GRAPHEXEC_TLS_CA: file('ca.pem'), GRAPHEXEC_TOKEN: token })
      .then(() => assert.fail('ran without a valid token'), (error) => error);
    assert.ok(failure instanceof UnauthenticatedError, String(failure));
    assert.equal(failure.codeName, 'UNAUTHENTICATED');
    assert.match(failure.details, /missing or invalid credentials/);
    assert.doesNotMatch(failure.details, /alice|bob/);
  }
});

test('a plaintext client of a TLS server is refused (UNAVAILABLE)', async () => {
  const plaintext = tlsServer.target.replace('grpcs://', 'grpc://');
  await assert.rejects(runOn(plaintext, { GRAPHEXEC_TOKEN: pki.aliceToken }), UnavailableError);
});

test('a client that does not trust the server\'s CA is refused (UNAVAILABLE)', async () => {
  await assert.rejects(runOn(tlsServer.target, { GRAPHEXEC_TLS_CA: path.join(other.folder, 'ca.pem'), GRAPHEXEC_TOKEN: pki.aliceToken }),
    UnavailableError);
});

test('mutual TLS admits only clients presenting a certificate of the CA', async () => {
  const base = { GRAPHEXEC_TLS_CA: file('ca.pem'), GRAPHEXEC_TOKEN: pki.aliceToken };
  assert.deepEqual(await runOn(mtlsServer.target, { ...base, GRAPHEXEC_TLS_CERT: file('client.pem'), GRAPHEXEC_TLS_KEY: file('client.key') }),
    new Float32Array([3, 5, 7]));
  await assert.rejects(runOn(mtlsServer.target, base), UnavailableError); // no certificate
  await assert.rejects(runOn(mtlsServer.target, {
    ...base, GRAPHEXEC_TLS_CERT: path.join(other.folder, 'client.pem'), GRAPHEXEC_TLS_KEY: path.join(other.folder, 'client.key'),
  }), UnavailableError); // a certificate of another CA
});

test('bad TLS settings fail when the client is made, naming the setting or file', async () => {
  await withSettings({ GRAPHEXEC_TLS_CERT: file('client.pem') }, () => {
    assert.throws(() => new Client(tlsServer.target), /needs both GRAPHEXEC_TLS_CERT and GRAPHEXEC_TLS_KEY/);
  });
  await withSettings({ GRAPHEXEC_TLS_CA: file('tokens') }, () => {
    assert.throws(() => new Client(tlsServer.target), /TLS CA .*tokens is not a PEM file/);
  });
  await withSettings({ GRAPHEXEC_TLS_CA: file('missing.pem') }, () => {
    assert.throws(() => new Client(tlsServer.target), /cannot read TLS CA .*missing\.pem: ENOENT/);
  });
});
