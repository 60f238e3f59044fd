'use strict';
// A small graph builder: constants, placeholders, variables and a handful of ops, producing the same
// GraphDef (graphexec.v1) that the Python client sends. Shapes and dtypes are checked by the server,
// whose errors name the op and the line of JavaScript that built it.
const path = require('node:path');
const { asDType } = require('./dtypes');
const { toArray, toTensorProto } = require('./tensor');
const { graphDigest } = require('./digest');
const { attr } = require('./attrs');
const { checkNode } = require('./ops');

const FORMAT_VERSION = 1;
const SRC_DIR = __dirname + path.sep;

/** One output of a node: what `run` fetches and feeds. */
class Tensor {
  constructor(graph, node, index, dtype) {
    this.graph = graph;
    this.node = node;
    this.index = index;
    this.dtype = dtype; // a dtype name, or undefined when only the server knows it
  }

  get name() {
    return `${this.node}:${this.index}`;
  }

  toString() {
    return `Tensor(${this.name}${this.dtype ? `, ${this.dtype}` : ''})`;
  }
}

/** A node run for its effect (an initializer, an assignment group): a `run` target. */
class Operation {
  constructor(graph, name) {
    this.graph = graph;
    this.name = name;
  }
}

/** A variable: its value lives on the server; `value` reads it, `initializer` sets its initial value. */
class Variable {
  constructor(graph, name, value, initializer, attrs) {
    this.graph = graph;
    this.name = name;
    this.value = value;
    this.initializer = initializer;
    this.attrs = attrs;
  }

  get dtype() {
    return this.value.dtype;
  }

  assign(value, options) {
    return this.graph._update('Assign', this, value, options);
  }

  assignAdd(delta, options) {
    return this.graph._update('AssignAdd', this, delta, options);
  }

  assignSub(delta, options) {
    return this.graph._update('AssignSub', this, delta, options);
  }
}

/** file:line of the innermost caller outside this package, so server errors point at the user's code. */
function userSource() {
  const holder = {};
  Error.captureStackTrace(holder, userSource);
  for (const line of holder.stack.split('\n').slice(1)) {
    const match = /\(?((?:file:\/\/)?[^\s()]+):(\d+):\d+\)?$/.exec(line.trim());
    if (match && !match[1].startsWith(SRC_DIR) && !match[1].startsWith('node:')) {
      return { file: match[1].replace(/^file:\/\//, ''), line: Number(match[2]) };
    }
  }
  return undefined;
}

class Graph {
  constructor({ seed = undefined } = {}) {
    this.nodes = [];
    this.seed = seed;
    this.variables = [];
    this._namesInUse = new Map();
  }

  /** TF's unique names: "Add", "Add_1", ... (case-insensitive, as in Python). */
  uniqueName(name) {
    const key = name.toLowerCase();
    let count = this._namesInUse.get(key) ?? 0;
    this._namesInUse.set(key, count + 1);
    if (count === 0) return name;
    let candidate = `${name}_${count}`;
    while (this._namesInUse.has(candidate.toLowerCase())) candidate = `${name}_${++count}`;
    this._namesInUse.set(candidate.toLowerCase(), 1);
    return candidate;
  }

  /** Append a node; returns its name. */
  addNode(op, { inputs = [], controlInputs = [], attrs = {}, name = undefined, device = '' } = {}) {
    checkNode(op, inputs.length, attrs);
    const nodeName = this.uniqueName(name ?? op);
    const node = { name: nodeName, op, inputs: inputs.map((t) => t.name), control_inputs: controlInputs.map(String), attrs, device };
    const source = userSource();
    if (source) node.source = source;
    this.nodes.push(node);
    return nodeName;
  }

  _output(op, options, dtype) {
    return new Tensor(this, this.addNode(op, options), 0, dtype);
  }

  /** A Tensor of this graph, or a constant made from a JavaScript value (of `dtype` when given). */
  asTensor(value, dtype = undefined) {
    if (value instanceof Tensor) {
      if (value.graph !== this) throw new Error(`${value} belongs to another graph`);
      return value;
    }
    if (value instanceof Variable) return this.asTensor(value.value);
    return this.constant(value, { dtype });
  }

  /** Two operands, constants converted to the dtype of the other side (as TF's convert_pair). */
  _pair(x, y) {
    const known = (v) => (v instanceof Tensor ? v.dtype : v instanceof Variable ? v.dtype : undefined);
    const a = this.asTensor(x, known(y));
    return [a, this.asTensor(y, a.dtype)];
  }

  // -- sources ------------------------------------------------------------------------------------
  constant(value, { dtype = undefined, shape = undefined, name = undefined } = {}) {
    const array = toArray(shape === undefined ? value : { data: value, shape }, dtype);
    const attrs = { value: attr.tensor(toTensorProto(array)), dtype: attr.type(array.dtype) };
    return this._output('Const', { attrs, name: name ?? 'Const' }, array.dtype.name);
  }

  /** `shape`: undefined for any shape, or dims with null for unknown ones, e.g. [null, 3]. */
  placeholder(dtype, { shape = undefined, name = undefined } = {}) {
    const d = asDType(dtype);
    return this._output('Placeholder', { attrs: { dtype: attr.type(d), shape: attr.shape(shape) }, name: name ?? 'Placeholder' }, d.name);
  }

  /** A variable initialized from `initialValue` (any value `constant` takes, or a Tensor). */
  variable(initialValue, { dtype = undefined, shape = undefined, name = 'Variable' } = {}) {
    const init = initialValue instanceof Tensor ? initialValue : this.constant(initialValue, { dtype, shape, name: `${name}/initial_value` });
    if (!init.dtype) throw new TypeError('a variable initialized from a tensor of unknown dtype needs `dtype`');
    const varName = this.uniqueName(name);
    const declared = shape ?? (initialValue instanceof Tensor ? undefined : toArray(initialValue, dtype).shape);
    const attrs = { var: attr.string(varName), dtype: attr.type(init.dtype), shape: attr.shape(declared) };
    const initializer = new Operation(this, this.addNode('Assign', {
      inputs: [init], attrs: { ...attrs, validate_shape: attr.bool(true) }, name: `${varName}/Assign`,
    }));
    const value = this._output('ReadVariable', { attrs, name: `${varName}/read` }, init.dtype);
    const variable = new Variable(this, varName, value, initializer, attrs);
    this.variables.push(variable);
    return variable;
  }

  _update(op, variable, value, { name = undefined } = {}) {
    const input = this.asTensor(value, variable.dtype);
    return this._output(op, { inputs: [input], attrs: variable.attrs, name: name ?? op }, variable.dtype);
  }

  /** One target that runs every variable's initializer (tf.global_variables_initializer). */
  globalVariablesInitializer({ name = 'init' } = {}) {
    return new Operation(this, this.addNode('NoOp', { controlInputs: this.variables.map((v) => v.initializer.name), name }));
  }

  // -- ops ----------------------------------------------------------------------------------------
  _binary(op, x, y, name) {
    const [a, b] = this._pair(x, y);
    return this._output(op, { inputs: [a, b], name: name ?? op }, a.dtype);
  }

  add(x, y, { name } = {}) {
    return this._binary('Add', x, y, name);
  }

  subtract(x, y, { name } = {}) {
    return this._binary('Sub', x, y, name);
  }

  multiply(x, y, { name } = {}) {
    return this._binary('Mul', x, y, name);
  }

  /** Floating-point division (RealDiv). */
  divide(x, y, { name } = {}) {
    return this._binary('RealDiv', x, y, name);
  }

  matmul(a, b, { transposeA = false, transposeB = false, name = undefined } = {}) {
    const [x, y] = this._pair(a, b);
    const attrs = { transpose_a: attr.bool(transposeA), transpose_b: attr.bool(transposeB) };
    return this._output('MatMul', { inputs: [x, y], attrs, name: name ?? 'MatMul' }, x.dtype);
  }

  /** `shape` is an array of ints (one may be -1) or an int32 Tensor. */
  reshape(x, shape, { name = undefined } = {}) {
    const input = this.asTensor(x);
    const target = shape instanceof Tensor ? shape : this.constant(Int32Array.from(shape), { name: `${name ?? 'Reshape'}/shape` });
    return this._output('Reshape', { inputs: [input, target], name: name ?? 'Reshape' }, input.dtype);
  }

  _reduce(op, x, { axis = undefined, keepdims = false, name = undefined } = {}) {
    const input = this.asTensor(x);
    const axes = axis === undefined || axis === null ? attr.none() : attr.ints([].concat(axis));
    return this._output(op, { inputs: [input], attrs: { axis: axes, keepdims: attr.bool(keepdims) }, name: name ?? op }, input.dtype);
  }

  reduceSum(x, options) {
    return this._reduce('Sum', x, options);
  }

  reduceMean(x, options) {
    return this._reduce('Mean', x, options);
  }

  reduceMax(x, options) {
    return this._reduce('Max', x, options);
  }

  reduceMin(x, options) {
    return this._reduce('Min', x, options);
  }

  reduceProd(x, options) {
    return this._reduce('Prod', x, options);
  }

  // -- wire ---------------------------------------------------------------------------------------
  /** graphexec.v1.GraphDef as a plain object. */
  toGraphDef() {
    const graphDef = { format_version: FORMAT_VERSION, nodes: this.nodes };
    if (this.seed !== undefined) graphDef.seed = String(this.seed);
    return graphDef;
  }

  /** The content digest (graphexec/digest.py): equal graphs have equal digests in every language. */
  digest() {
    return graphDigest(this.toGraphDef());
  }

  /** The tensor named "node:index" (or "node" for output 0), e.g. of a graph loaded with fromGraphDef. */
  tensor(name) {
    const match = /^(.*):(\d+)$/.exec(name);
    const [node, index] = match ? [match[1], Number(match[2])] : [name, 0];
    if (!this.nodes.some((n) => n.name === node)) throw new Error(`no node named '${node}' in the graph`);
    return new Tensor(this, node, index, undefined);
  }

  /** The operation named `name`, as a run target. */
  operation(name) {
    if (!this.nodes.some((n) => n.name === name)) throw new Error(`no node named '${name}' in the graph`);
    return new Operation(this, name);
  }

  /** A Graph holding the nodes of a decoded GraphDef (e.g. one written by the Python client). */
  static fromGraphDef(graphDef) {
    const graph = new Graph({ seed: graphDef.seed ?? undefined });
    for (const node of graphDef.nodes ?? []) {
      graph.nodes.push(node);
      graph._namesInUse.set(node.name.toLowerCase(), 1);
    }
    return graph;
  }
}

module.exports = { Graph, Tensor, Operation, Variable, attr };
