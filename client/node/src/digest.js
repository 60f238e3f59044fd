'use strict';
// The graph content digest of graphexec/digest.py (whose docstring specifies the bytes), computed from a
// GraphDef: a sha256 chain over the canonical bytes of each node, then the seed. Graphs built in any
// language hash alike, so a graph built in Python and one loaded or rebuilt in JavaScript share plans
// cached under the same digest. Checked against tests/vectors/digest_vectors.json.
const crypto = require('node:crypto');
const { asDType } = require('./dtypes');
const { attrKind } = require('./attrs');

const CHAIN_START = sha256(Buffer.from('graphexec-graph-v2'));
const KIND = { none: 0, bool: 1, int: 2, float: 3, string: 4, dtype: 5, shape: 6, tensor: 7, list: 8 };
const CANONICAL_NAN = Buffer.from('000000000000f87f', 'hex');

function sha256(...parts) {
  const hash = crypto.createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

/** Appends the little-endian primitives of the canonical encoding; `bytes()` joins them. */
class Writer {
  constructor() {
    this.parts = [];
  }

  byte(value) {
    this.parts.push(Buffer.of(value));
  }

  u32(value) {
    const out = Buffer.alloc(4);
    out.writeUInt32LE(value);
    this.parts.push(out);
  }

  /** int64 from a decimal string, number or bigint (RangeError outside int64). */
  i64(value) {
    const out = Buffer.alloc(8);
    out.writeBigInt64LE(BigInt(value));
    this.parts.push(out);
  }

  raw(bytes) {
    this.parts.push(bytes);
  }

  /** IEEE-754 binary64; every NaN as the canonical quiet NaN, -0 with its sign. */
  f64(value) {
    if (Number.isNaN(value)) {
      this.parts.push(CANONICAL_NAN);
      return;
    }
    const out = Buffer.alloc(8);
    out.writeDoubleLE(value);
    this.parts.push(out);
  }

  str(text) {
    const data = Buffer.from(text, 'utf8');
    this.u32(data.length);
    this.parts.push(data);
  }

  strs(texts) {
    this.u32(texts.length);
    for (const text of texts) this.str(text);
  }

  dims(dims) {
    this.u32(dims.length);
    for (const d of dims) this.i64(d);
  }

  bytes() {
    return Buffer.concat(this.parts);
  }
}

/** Writes one graphexec.v1.AttrValue: its kind byte and payload. */
function writeAttr(out, attrValue) {
  const kind = attrKind(attrValue);
  const value = attrValue[kind];
  const list = (items, writeItem) => {
    out.byte(KIND.list);
    out.u32(items.length);
    for (const item of items) writeItem(item);
  };
  switch (kind) {
    case 'none': return out.byte(KIND.none);
    case 'b': out.byte(KIND.bool); return out.byte(value ? 1 : 0);
    case 'i': out.byte(KIND.int); return out.i64(value);
    case 'f': out.byte(KIND.float); return out.f64(Number(value));
    case 's': out.byte(KIND.string); return out.str(String(value));
    case 'type': out.byte(KIND.dtype); return out.str(asDType(value).name);
    case 'shape':
      out.byte(KIND.shape);
      out.byte(value.unknown_rank ? 1 : 0);
      return out.dims(value.unknown_rank ? [] : value.dims ?? []);
    case 'tensor':
      out.byte(KIND.tensor);
      out.str(asDType(value.dtype).name);
      out.dims(value.shape ?? []);
      return out.raw(sha256(value.content ?? Buffer.alloc(0)));
    case 'ints': return list(value.values ?? [], (v) => { out.byte(KIND.int); out.i64(v); });
    case 'floats': return list(value.values ?? [], (v) => { out.byte(KIND.float); out.f64(Number(v)); });
    case 'strings': return list(value.values ?? [], (v) => { out.byte(KIND.string); out.str(String(v)); });
    case 'list': return list(value.values ?? [], (v) => writeAttr(out, v));
    default: throw new TypeError(`attribute value with no field set: ${JSON.stringify(attrValue)}`);
  }
}

/** The canonical bytes of one AttrValue (kind byte and payload). */
function canonicalAttr(attrValue) {
  const out = new Writer();
  writeAttr(out, attrValue);
  return out.bytes();
}

/** The IR's "file:line" source string from a SourceLocation (as graphexec/rpc/convert.py reads it). */
function sourceText(source) {
  if (!source) return '';
  return Number(source.line) ? `${source.file ?? ''}:${source.line}` : source.file ?? '';
}

/** Attribute keys in UTF-8 byte order (= code point order; JavaScript's default sort is UTF-16 order). */
function sortedKeys(attrs) {
  return Object.keys(attrs)
    .map((key) => [Buffer.from(key, 'utf8'), key])
    .sort(([a], [b]) => Buffer.compare(a, b))
    .map(([, key]) => key);
}

/** node_bytes() of graphexec/digest.py, from a NodeDef (plain object). */
function nodeBytes(node) {
  const out = new Writer();
  const attrs = node.attrs ?? {};
  out.str(node.name ?? '');
  out.str(node.op ?? '');
  out.strs(node.inputs ?? []);
  out.strs(node.control_inputs ?? []);
  const keys = sortedKeys(attrs);
  out.u32(keys.length);
  for (const key of keys) {
    out.str(key);
    writeAttr(out, attrs[key]);
  }
  out.str(node.device ?? '');
  out.str(sourceText(node.source));
  return out.bytes();
}

/** seed_bytes() of graphexec/digest.py: 00 for no seed, else 01 and the seed as int64. */
function seedBytes(seed) {
  if (seed === undefined || seed === null) return Buffer.of(0);
  const out = new Writer();
  out.byte(1);
  out.i64(seed);
  return out.bytes();
}

/** chain() of graphexec/digest.py: the 32-byte state after folding `nodes` into `start`. */
function chainState(nodes, start = CHAIN_START) {
  let state = start;
  for (const node of nodes) state = sha256(state, nodeBytes(node));
  return state;
}

/** Hex digest of a GraphDef (plain object as built here or decoded by protobufjs/proto-loader). */
function graphDigest(graphDef) {
  return sha256(chainState(graphDef.nodes ?? []), seedBytes(graphDef.seed)).toString('hex');
}

module.exports = { graphDigest, chainState, nodeBytes, canonicalAttr, seedBytes, CHAIN_START };
