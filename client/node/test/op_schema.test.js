'use strict';
// The ops this client builds (src/ops.js) against the server's op schema (`python -m graphexec.ops --json`):
// every op exists there, takes as many inputs, and declares every attr this client sets, with its type.
const test = require('node:test');
const assert = require('node:assert/strict');
const { OPS, parseAttrType } = require('../src/ops');
const { Graph } = require('../src');
const { runPython } = require('./helpers');

/** Assertion failures where the client's `spec` of op `name` disagrees with the schema's `declared` op. */
function checkAgainstSchema(name, spec, declared) {
  assert.equal(declared.compiler_only, false, `${name} is compiler-internal; clients may not send it`);
  const fixed = declared.inputs.filter((input) => !input.variadic).length;
  const variadic = declared.inputs.some((input) => input.variadic);
  assert.ok(variadic ? spec.inputs.length >= fixed : spec.inputs.length === fixed,
    `${name}: the client sends ${spec.inputs.length} inputs, the schema declares ${declared.inputs.map((i) => i.name).join(', ') || 'none'}`);
  const attrs = new Map(declared.attrs.map((a) => [a.name, a]));
  for (const [key, text] of Object.entries(spec.attrs)) {
    const declaredAttr = attrs.get(key);
    assert.ok(declaredAttr, `${name}: the client sets attr '${key}', which the schema does not declare`);
    const { type, nullable } = parseAttrType(text);
    assert.equal(type, declaredAttr.type, `${name}: attr '${key}' type`);
    assert.ok(!nullable || declaredAttr.nullable, `${name}: the client may send None for '${key}', the schema does not allow it`);
  }
  for (const required of declared.attrs.filter((a) => a.required)) {
    assert.ok(required.name in spec.attrs, `${name}: the schema requires attr '${required.name}', which the client does not set`);
  }
}

test('every op the client builds matches the server op schema', async (t) => {
  const schema = new Map(JSON.parse(runPython(['-m', 'graphexec.ops', '--json'])).ops.map((op) => [op.name, op]));
  for (const [name, spec] of Object.entries(OPS)) {
    const declared = schema.get(name);
    await t.test(name, () => {
      assert.ok(declared, `${name} is not an op of the server`);
      checkAgainstSchema(name, spec, declared);
    });
  }
});

test('the graph builder refuses nodes that do not match the op table', () => {
  const g = new Graph();
  const x = g.placeholder('float32');
  assert.throws(() => g.addNode('NoSuchOp'), /no op NoSuchOp/);
  assert.throws(() => g.addNode('Add', { inputs: [x] }), /Add takes 2 inputs/);
  assert.throws(() => g.addNode('MatMul', { inputs: [x, x], attrs: { transpose_c: { b: true } } }), /no attr 'transpose_c'/);
  assert.throws(() => g.addNode('MatMul', { inputs: [x, x], attrs: { transpose_a: { i: '1' } } }), /must be bool, got i/);
  assert.throws(() => g.addNode('Sum', { inputs: [x], attrs: { keepdims: { none: true } } }), /must be bool/);
});

test('every builder method makes nodes the op table accepts', () => {
  const g = new Graph();
  const x = g.placeholder('float32', { shape: [null, 2], name: 'x' });
  const v = g.variable([[1, 2], [3, 4]], { dtype: 'float32' });
  const ops = [g.add(x, 1), g.subtract(x, 1), g.multiply(x, 2), g.divide(x, 2), g.matmul(x, v.value, { transposeB: true }),
    g.reshape(x, [-1]), v.assign(g.constant([[0, 0], [0, 0]], { dtype: 'float32' })), v.assignAdd([[1, 1], [1, 1]]),
    v.assignSub([[1, 1], [1, 1]]), g.reduceSum(x), g.reduceMean(x, { axis: 1 }), g.reduceMax(x, { axis: [0, 1] }),
    g.reduceMin(x, { keepdims: true }), g.reduceProd(x), g.globalVariablesInitializer()];
  assert.equal(ops.length, 15);
  assert.deepEqual(new Set(g.nodes.map((n) => n.op)), new Set(Object.keys(OPS)));
});
