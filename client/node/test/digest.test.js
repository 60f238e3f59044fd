'use strict';
// The content digest is the same in JavaScript and Python, on every attribute kind.
const test = require('node:test');
const assert = require('node:assert/strict');
const { floatRepr, pythonJson } = require('../src/pyrepr');
const { graphDigest } = require('../src/digest');
const { Graph, graphFromBytes, graphToBytes } = require('../src');
const { runPython } = require('./helpers');

test('floatRepr and pythonJson spell values exactly as Python does', () => {
  const floats = [0, 1, 0.1, 1e-5, 1e-4, 1e16, 1.5e16, 123456789.125, 5e-324, 1.7976931348623157e308, NaN, Infinity, -Infinity];
  for (let i = 0; i < 200; i += 1) floats.push((Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 40 - 20));
  const strings = ['plain', 'quote " backslash \\ slash /', 'tab\tnew\nline\u0001\u007f', 'é ü ß', '中文', 'emoji 😀', '\u2028'];
  const script = 'import json,sys; d=json.load(sys.stdin); '
    + 'print(json.dumps([repr(float(x)) for x in d["floats"]])); '
    + 'print(json.dumps(json.dumps(d["strings"], separators=(",", ":"), ensure_ascii=True)))';
  const input = JSON.stringify({ floats: floats.map((x) => (Number.isFinite(x) ? x : String(x))), strings })
    .replace(/"NaN"|"Infinity"|"-Infinity"/g, (m) => m.slice(1, -1));
  const [pythonFloats, pythonStrings] = runPython(['-c', script], { input }).trim().split('\n').map((line) => JSON.parse(line));
  assert.deepEqual(floats.map(floatRepr), pythonFloats);
  assert.equal(floatRepr(-0), '-0.0'); // JSON cannot carry -0 to Python; repr(-0.0) is '-0.0'
  assert.equal(pythonJson(strings), pythonStrings);
});

test('a graph built in Python has the digest Python gives it', () => {
  const fixture = JSON.parse(runPython(['client/node/test/fixtures/python_graph.py']));
  const graph = graphFromBytes(Buffer.from(fixture.graph_def, 'base64'));
  assert.equal(graph.digest(), fixture.digest);
});

test('a graph built in JavaScript has the digest Python gives it after decoding', () => {
  const g = new Graph({ seed: 99 });
  const x = g.placeholder('float64', { shape: [null, 3], name: 'x' });
  const w = g.variable([[0.5, 1e-7], [3, -4], [1e20, 6]], { dtype: 'float64', name: 'weights' });
  const y = g.matmul(g.reshape(x, [-1, 3]), w.value, { transposeB: false });
  g.reduceMean(g.add(y, 0.1), { axis: [0, 1], keepdims: true });
  g.reduceSum(g.multiply(y, 2));
  g.globalVariablesInitializer();
  const script = [
    'import sys', 'from graphexec import digest, wire', 'from graphexec.proto.v1 import graph_pb2',
    'g = graph_pb2.GraphDef.FromString(sys.stdin.buffer.read())',
    'nodes = wire.nodes_from_proto(g, wire.GraphTypes())',
    'print(digest.graph_digest(nodes, g.seed if g.HasField("seed") else None))',
  ].join('\n');
  assert.equal(runPython(['-c', script], { input: graphToBytes(g) }).trim(), g.digest());
  assert.equal(graphDigest(g.toGraphDef()), g.digest());
});
