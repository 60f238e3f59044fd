'use strict';
// The graph content digest of graphexec/digest.py, computed from a GraphDef: a sha256 chain over the
// canonical JSON of each node, then the seed. Graphs built in any language hash alike, so a graph built
// in Python and one loaded or rebuilt in JavaScript share plans cached under the same digest.
const crypto = require('node:crypto');
const { asDType } = require('./dtypes');
const { floatRepr, pythonJson, RawJson } = require('./pyrepr');

const CHAIN_START = sha256(Buffer.from('graphexec-graph-v1'));

function sha256(...parts) {
  const hash = crypto.createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

const integer = (value) => new RawJson(BigInt(value).toString());

/** Which field of an AttrValue is set (decoded messages name it in `value`; built ones set one key). */
function attrKind(attrValue) {
  return attrValue.value ?? Object.keys(attrValue).find((key) => key !== 'value' && attrValue[key] !== undefined);
}

/** canonical_attr() of graphexec/digest.py, from a graphexec.v1.AttrValue. */
function canonicalAttr(attrValue) {
  const kind = attrKind(attrValue);
  const value = attrValue[kind];
  switch (kind) {
    case 'b': return Boolean(value);
    case 's': return String(value);
    case 'none': return null;
    case 'i': return ['i', integer(value)];
    case 'f': return ['f', floatRepr(Number(value))];
    case 'type': return ['dtype', asDType(value).name];
    case 'shape': return ['shape', value.unknown_rank ? null : (value.dims ?? []).map((d) => (Number(d) < 0 ? null : integer(d)))];
    case 'tensor': return ['tensor', asDType(value.dtype).name, (value.shape ?? []).map(integer),
      sha256(value.content ?? Buffer.alloc(0)).toString('hex')];
    case 'ints': return ['list', (value.values ?? []).map((v) => ['i', integer(v)])];
    case 'floats': return ['list', (value.values ?? []).map((v) => ['f', floatRepr(Number(v))])];
    case 'strings': return ['list', (value.values ?? []).map(String)];
    case 'list': return ['list', (value.values ?? []).map(canonicalAttr)];
    default: throw new TypeError(`attribute value with no field set: ${JSON.stringify(attrValue)}`);
  }
}

/** The IR's "file:line" source string from a SourceLocation (as graphexec/wire.py reads it). */
function sourceText(source) {
  if (!source) return '';
  return Number(source.line) ? `${source.file ?? ''}:${source.line}` : source.file ?? '';
}

/** node_bytes() of graphexec/digest.py. */
function nodeBytes(node) {
  const attrs = Object.keys(node.attrs ?? {}).sort().map((key) => [key, canonicalAttr(node.attrs[key])]);
  const doc = [node.name, node.op, node.inputs ?? [], node.control_inputs ?? [], attrs, node.device ?? '', sourceText(node.source)];
  return Buffer.from(pythonJson(doc), 'ascii');
}

/** chain() of graphexec/digest.py: the 32-byte state after folding `nodes` into `start`. */
function chainState(nodes, start = CHAIN_START) {
  let state = start;
  for (const node of nodes) state = sha256(state, nodeBytes(node));
  return state;
}

/** Hex digest of a GraphDef (plain object as built here or decoded by protobufjs/proto-loader). */
function graphDigest(graphDef) {
  const seed = graphDef.seed === undefined || graphDef.seed === null ? 'None' : BigInt(graphDef.seed).toString();
  return sha256(chainState(graphDef.nodes ?? []), Buffer.from(seed)).toString('hex');
}

module.exports = { graphDigest, chainState, nodeBytes, canonicalAttr, CHAIN_START };
