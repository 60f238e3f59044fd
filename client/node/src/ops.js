'use strict';
// The ops this client builds: their inputs and the attrs it sets, with the server's attr types (the names
// `python -m graphexec.ops --json` uses; "T or None" where None is a value). Graph.addNode checks every
// node against this table, and test/op_schema.test.js checks the table against the server's op schema,
// so a node this client builds is one the server accepts.
const { attrKind, attrMatches } = require('./attrs');

const BINARY = { inputs: ['x', 'y'], attrs: {} };
const VARIABLE_ATTRS = { var: 'string', dtype: 'type', shape: 'shape' };
const REDUCTION = { inputs: ['input'], attrs: { axis: 'list(int) or None', keepdims: 'bool' } };

const OPS = Object.freeze({
  Const: { inputs: [], attrs: { value: 'tensor', dtype: 'type' } },
  Placeholder: { inputs: [], attrs: { dtype: 'type', shape: 'shape' } },
  ReadVariable: { inputs: [], attrs: VARIABLE_ATTRS },
  Assign: { inputs: ['value'], attrs: { ...VARIABLE_ATTRS, validate_shape: 'bool' } },
  AssignAdd: { inputs: ['delta'], attrs: VARIABLE_ATTRS },
  AssignSub: { inputs: ['delta'], attrs: VARIABLE_ATTRS },
  NoOp: { inputs: [], attrs: {} },
  Add: BINARY,
  Sub: BINARY,
  Mul: BINARY,
  RealDiv: BINARY,
  MatMul: { inputs: ['a', 'b'], attrs: { transpose_a: 'bool', transpose_b: 'bool' } },
  Reshape: { inputs: ['tensor', 'shape'], attrs: {} },
  Sum: REDUCTION,
  Mean: REDUCTION,
  Max: REDUCTION,
  Min: REDUCTION,
  Prod: REDUCTION,
});

/** {type, nullable} of a table entry such as 'list(int) or None'. */
function parseAttrType(text) {
  const nullable = text.endsWith(' or None');
  return { type: nullable ? text.slice(0, -' or None'.length) : text, nullable };
}

/** Throws a TypeError when a node does not match this client's table (a bug in this client, not the user's). */
function checkNode(op, inputCount, attrs) {
  const spec = OPS[op];
  if (!spec) throw new TypeError(`graphexec client: no op ${op} in src/ops.js`);
  if (inputCount !== spec.inputs.length) {
    throw new TypeError(`graphexec client: ${op} takes ${spec.inputs.length} inputs (${spec.inputs.join(', ')}), got ${inputCount}`);
  }
  for (const [key, value] of Object.entries(attrs)) {
    if (!(key in spec.attrs)) throw new TypeError(`graphexec client: ${op} has no attr '${key}' in src/ops.js`);
    const { type, nullable } = parseAttrType(spec.attrs[key]);
    if (!attrMatches(value, type, nullable)) {
      throw new TypeError(`graphexec client: attr '${key}' of ${op} must be ${spec.attrs[key]}, got ${attrKind(value)}`);
    }
  }
}

module.exports = { OPS, parseAttrType, checkNode };
