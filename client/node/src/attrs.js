'use strict';
// Attribute values (graphexec.v1.AttrValue as plain objects): building them, telling their kind, and
// matching them against the server's attr types ('int', 'list(int)', ...: see `python -m graphexec.ops`).
const { asDType } = require('./dtypes');

const attr = {
  bool: (b) => ({ b: Boolean(b) }),
  int: (i) => ({ i: String(i) }),
  string: (s) => ({ s: String(s) }),
  type: (dtype) => ({ type: asDType(dtype).wire }),
  none: () => ({ none: true }),
  ints: (values) => ({ ints: { values: values.map(String) } }),
  tensor: (proto) => ({ tensor: proto }),
  /** Dims may be null (unknown); `undefined` for the whole shape means unknown rank. */
  shape: (dims) => (dims === undefined || dims === null
    ? { shape: { dims: [], unknown_rank: true } }
    : { shape: { dims: dims.map((d) => String(d === null || d === undefined ? -1 : d)), unknown_rank: false } }),
};

/** Which field of an AttrValue is set (decoded messages name it in `value`; built ones set one key). */
function attrKind(attrValue) {
  return attrValue.value ?? Object.keys(attrValue).find((key) => key !== 'value' && attrValue[key] !== undefined);
}

// The AttrValue fields that carry each scalar attr type (an int is also a valid float, as in Python).
const SCALAR_KINDS = {
  int: ['i'], float: ['f', 'i'], bool: ['b'], string: ['s'], type: ['type'], shape: ['shape'], tensor: ['tensor'],
};
// The typed list fields that may carry each element type (an empty list, sent as `ints`, is valid for any).
const LIST_KINDS = { int: ['ints'], float: ['floats', 'ints'], string: ['strings'] };

/** Whether an AttrValue is a value of the server's attr type `type` (None only where `nullable`). */
function attrMatches(attrValue, type, nullable = false) {
  const kind = attrKind(attrValue);
  if (type === 'any') return true;
  if (kind === 'none') return nullable;
  const element = /^list\((.+)\)$/.exec(type)?.[1];
  if (element === undefined) return (SCALAR_KINDS[type] ?? []).includes(kind);
  const items = attrValue[kind]?.values ?? [];
  if (kind === 'list') return items.every((item) => attrMatches(item, element));
  return ['ints', 'floats', 'strings'].includes(kind) && (items.length === 0 || (LIST_KINDS[element] ?? []).includes(kind));
}

module.exports = { attr, attrKind, attrMatches };
