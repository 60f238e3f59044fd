'use strict';
// A graph built in Python, run from Node on the same server: both name it by the same content digest,
// so the server, which received it from Python, never needs its nodes from Node.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Client, graphFromBytes } = require('../src');
const { startServer, runPython } = require('./helpers');

test('a graph built and run in Python runs from Node under the same digest', async (t) => {
  const server = await startServer();
  const client = new Client(server.target);
  t.after(async () => {
    client.close();
    await server.stop();
  });
  const fixture = JSON.parse(runPython(['client/node/test/fixtures/python_graph.py', server.target]));
  const graph = graphFromBytes(Buffer.from(fixture.graph_def, 'base64'));
  assert.equal(graph.digest(), fixture.digest);

  const session = await client.session(graph);
  await session.run(graph.operation(fixture.init));
  assert.equal(session.lastUpload.graphMissing, false, 'the server already held the graph Python uploaded');
  assert.equal(session.lastUpload.nodesSent, 0);
  assert.equal(session.lastUpload.digest, fixture.digest);

  const x = { data: Float32Array.from(fixture.feed.values), shape: fixture.feed.shape };
  const [out, total] = await session.run(fixture.fetches.map((name) => graph.tensor(name)), { feeds: { [fixture.feed.name]: x } });
  // x @ arange(6).reshape(3, 2) + [0.5, -1], times 2.5, summed over rows; and the mean of that.
  assert.deepEqual(out, { dtype: 'float32', shape: [2], data: new Float32Array([93.75, 206.25]) });
  assert.deepEqual(total, { dtype: 'float32', shape: [], data: new Float32Array([150]) });
  assert.deepEqual([[...out.data], total.data[0]], fixture.expected);
  await session.close();
});
