'use strict';
// The Node client against a real `graphexec serve` (embedded worker, in-memory state).
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { Client, Graph, GraphexecError, InvalidArgumentError, UnavailableError } = require('../src');
const { startServer } = require('./helpers');

let server;
let client;

test.before(async () => {
  server = await startServer();
  client = new Client(server.target);
});

test.after(async () => {
  client?.close();
  await server?.stop();
});

test('the quickstart in JavaScript: constants, add, reshape, placeholders', async () => {
  const g = new Graph();
  const z = g.add(g.constant([3, 5, 7]), g.constant([1, 2, 3]));
  const reshaped = g.reshape(g.constant([[3, 5, 7], [4, 6, 8]]), [3, 2]);
  const a = g.placeholder('int16');
  const b = g.placeholder('int16');
  const sum = g.add(a, b);
  const session = await client.session(g);
  assert.deepEqual(await session.run(z), { dtype: 'int32', shape: [3], data: new Int32Array([4, 7, 10]) });
  assert.deepEqual(await session.run(reshaped), { dtype: 'int32', shape: [3, 2], data: new Int32Array([3, 5, 7, 4, 6, 8]) });
  assert.deepEqual(await session.run(sum, { feeds: new Map([[a, 2], [b, 3]]) }), { dtype: 'int16', shape: [], data: new Int16Array([5]) });
  await session.close();
});

test('typed arrays in, typed arrays out: matmul and reductions match known values', async () => {
  const g = new Graph();
  const x = g.placeholder('float64', { shape: [null, 3], name: 'x' });
  const w = g.constant([[1, 2], [3, 4], [5, 6]], { dtype: 'float64' });
  const y = g.matmul(x, w);
  const rowSums = g.reduceSum(y, { axis: 1 });
  const mean = g.reduceMean(y);
  const colMax = g.reduceMax(y, { axis: 0, keepdims: true });
  const session = await client.session(g);
  const feeds = { x: { data: new Float64Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] } };
  const [product, sums, average, maxima] = await session.run([y, rowSums, mean, colMax], { feeds });
  assert.deepEqual(product, { dtype: 'float64', shape: [2, 2], data: new Float64Array([22, 28, 49, 64]) });
  assert.deepEqual(sums.data, new Float64Array([50, 113]));
  assert.deepEqual(average, { dtype: 'float64', shape: [], data: new Float64Array([40.75]) });
  assert.deepEqual(maxima, { dtype: 'float64', shape: [1, 2], data: new Float64Array([49, 64]) });
  await session.close();
});

test('fetches the server pads onto 8-byte boundaries (Tensor.padding) decode to their values', async () => {
  const g = new Graph();
  const x = g.placeholder('float64', { name: 'x' });
  const doubled = g.multiply(x, 2);
  const tripled = g.multiply(x, 3);
  const session = await client.session(g);
  for (const count of [3, 9, 100, 5001]) { // under and over the padding's 64 bytes, and a walked message
    const data = Float64Array.from({ length: count }, (_, i) => i + 0.5);
    const [twice, thrice] = await session.run([doubled, tripled], { feeds: { x: data } });
    assert.deepEqual(twice, { dtype: 'float64', shape: [count], data: data.map((v) => 2 * v) });
    assert.deepEqual(thrice.data, data.map((v) => 3 * v));
  }
  await session.close();
});

test('variables: initialize, update in place, read back', async () => {
  const g = new Graph();
  const counter = g.variable(new Int32Array([10, 20]), { name: 'counter' });
  const step = counter.assignAdd([1, 2]);
  const init = g.globalVariablesInitializer();
  const session = await client.session(g, { container: `node-test-${process.pid}` });
  assert.equal(await session.run(init), null);
  await session.run(step);
  const after = await session.run(step);
  assert.deepEqual(after.data, new Int32Array([12, 24]));
  assert.deepEqual((await session.run(counter)).data, new Int32Array([12, 24]));
  await session.close();
});

test('a grown graph uploads only its new nodes', async () => {
  const g = new Graph();
  const x = g.placeholder('float32', { shape: [2], name: 'x' });
  const doubled = g.multiply(x, 2);
  const session = await client.session(g);
  assert.deepEqual((await session.run(doubled, { feeds: { x: new Float32Array([1, 2]) } })).data, new Float32Array([2, 4]));
  assert.equal(session.lastUpload.nodesSent, g.nodes.length);
  const before = g.nodes.length;
  const tripled = g.add(doubled, x);
  assert.deepEqual((await session.run(tripled, { feeds: { x: new Float32Array([1, 2]) } })).data, new Float32Array([3, 6]));
  assert.equal(session.lastUpload.nodesSent, g.nodes.length - before);
  assert.equal(session.lastUpload.digest, g.digest());
  await session.close();
});

test('server errors become Error subclasses with the gRPC status and the server message', async () => {
  const g = new Graph();
  const x = g.placeholder('float32', { shape: [null, 3], name: 'x' });
  const total = g.reduceSum(x);
  const session = await client.session(g);
  await assert.rejects(session.run(total), (error) => {
    assert.ok(error instanceof InvalidArgumentError && error instanceof GraphexecError && error instanceof Error);
    assert.equal(error.code, 3);
    assert.equal(error.codeName, 'INVALID_ARGUMENT');
    assert.match(error.message, /You must feed a value for placeholder tensor 'x'/);
    assert.equal(error.details, error.message);
    return true;
  });
  await session.close();
});

test('shape errors name the op and the line of JavaScript that built it', async () => {
  const g = new Graph();
  const a = g.constant([[1, 2, 3]], { dtype: 'float32' });
  const line = Number(new Error().stack.split('\n')[1].match(/:(\d+):\d+\)?$/)[1]) + 1;
  const product = g.matmul(a, a);
  const session = await client.session(g);
  await assert.rejects(session.run(product), (error) => {
    assert.ok(error instanceof InvalidArgumentError);
    assert.match(error.message, /MatMul/);
    assert.ok(error.message.includes(`client.test.js:${line}`), error.message);
    return true;
  });
});

test('an unreachable server is UnavailableError', async () => {
  const nowhere = new Client('grpc://127.0.0.1:1');
  await assert.rejects(nowhere.listDevices(), (error) => error instanceof UnavailableError && error.code === 14);
  nowhere.close();
});

/** ESTABLISHED TCP connections in this network namespace whose remote port is `port` (IPv4 and IPv6 tables). */
function connectionsTo(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  return ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((table) => fs.readFileSync(table, 'utf8').split('\n').slice(1))
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length > 3 && fields[2].endsWith(`:${hex}`) && fields[3] === '01').length;
}

test('one client round-robins over every address of its target', { skip: !fs.existsSync('/proc/net/tcp') }, async () => {
  const second = await startServer();
  const both = new Client(`ipv4:127.0.0.1:${server.port},127.0.0.1:${second.port}`);
  try {
    for (let i = 0; i < 4; i += 1) assert.ok((await both.listDevices()).length >= 1);
    assert.ok(connectionsTo(server.port) >= 1 && connectionsTo(second.port) >= 1,
      `connections: ${connectionsTo(server.port)}, ${connectionsTo(second.port)}`);
  } finally {
    both.close();
    await second.stop();
  }
});

test('string tensors: a constant, a fed placeholder and a variable come back as Buffers', async () => {
  const g = new Graph();
  const hello = g.constant('Hello, TensorFlow!');
  const words = g.placeholder('string', { shape: [null], name: 'words' });
  const names = g.variable(['a', 'é'], { name: 'names' });
  const session = await client.session(g, { container: `node-strings-${process.pid}` });
  await session.run(g.globalVariablesInitializer());
  const [greeting, echoed, stored] = await session.run([hello, words, names], { feeds: { words: ['x', Buffer.from([0, 255]), ''] } });
  assert.equal(greeting.dtype, 'string');
  assert.deepEqual(greeting.shape, []);
  assert.equal(greeting.data[0].toString(), 'Hello, TensorFlow!');
  assert.deepEqual(echoed.data.map((b) => [...b]), [[120], [0, 255], []]);
  assert.deepEqual(stored.data.map((b) => b.toString()), ['a', 'é']);
  await assert.rejects(session.run(words, { feeds: { words: [1, 2] } }), /dtype int32 .* which has dtype string/);
  await assert.rejects(session.run(words, { feeds: new Map([[words, [1, 2]]]) }), /must be a string or Buffer/);
  await session.close();
});
