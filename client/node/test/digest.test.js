'use strict';
// The content digest is the same in JavaScript and Python: every shared test vector, and graphs built on
// either side.
const fs = require('node:fs');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');
const { graphDigest, chainState, nodeBytes, canonicalAttr, CHAIN_START } = require('../src/digest');
const { decodeMessage } = require('../src/protos');
const { Graph, graphFromBytes, graphToBytes } = require('../src');
const { runPython, REPO_ROOT } = require('./helpers');

const VECTORS = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'tests', 'vectors', 'digest_vectors.json'), 'utf8'));

test('the chain starts from the v2 domain tag', () => {
  assert.equal(CHAIN_START.toString('hex'), VECTORS.chain_start);
});

for (const vector of VECTORS.vectors) {
  test(`digest vector: ${vector.name}`, () => {
    const graphDef = decodeMessage('GraphDef', Buffer.from(vector.graph_def, 'base64'));
    const nodes = graphDef.nodes ?? [];
    assert.deepEqual(nodes.map((n) => n.name), vector.nodes.map((n) => n.name));
    nodes.forEach((node, i) => assert.equal(nodeBytes(node).toString('hex'), vector.nodes[i].bytes, `node ${node.name}`));
    assert.equal(chainState(nodes).toString('hex'), vector.chain);
    assert.equal(graphDef.seed ?? null, vector.seed);
    assert.equal(graphDigest(graphDef), vector.digest);
  });
}

test('canonical values by hand', () => {
  const nan = '03000000000000f87f';
  assert.equal(canonicalAttr({ none: true }).toString('hex'), '00');
  assert.equal(canonicalAttr({ b: false }).toString('hex'), '0100');
  assert.equal(canonicalAttr({ i: '-2' }).toString('hex'), '02feffffffffffffff');
  assert.equal(canonicalAttr({ f: -0 }).toString('hex'), '030000000000000080');
  assert.equal(canonicalAttr({ f: NaN }).toString('hex'), nan);
  const otherNaN = new Float64Array(new BigUint64Array([0xfff8000000000001n]).buffer)[0];
  assert.equal(canonicalAttr({ f: otherNaN }).toString('hex'), nan, 'every NaN is the canonical one');
  assert.equal(canonicalAttr({ s: 'é' }).toString('hex'), '0402000000c3a9');
  assert.equal(canonicalAttr({ shape: { dims: [], unknown_rank: true } }).toString('hex'), '060100000000');
  assert.equal(canonicalAttr({ ints: { values: [] } }).toString('hex'), '0800000000');
  assert.throws(() => canonicalAttr({ i: (2n ** 63n).toString() }), RangeError);
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
    'import sys', 'from graphexec import digest', 'from graphexec.rpc import convert', 'from graphexec.rpc.graph_types import GraphTypes', 'from graphexec.proto.v1 import graph_pb2',
    'g = graph_pb2.GraphDef.FromString(sys.stdin.buffer.read())',
    'nodes = convert.nodes_from_proto(g, GraphTypes())',
    'print(digest.graph_digest(nodes, g.seed if g.HasField("seed") else None))',
  ].join('\n');
  assert.equal(runPython(['-c', script], { input: graphToBytes(g) }).trim(), g.digest());
  assert.equal(graphDigest(g.toGraphDef()), g.digest());
});
