'use strict';
// Element types: the wire enum (graphexec.v1.DataType), the Python name, and the typed array that holds
// the elements in JavaScript. float16 has no typed array in Node 20: its elements travel as raw IEEE
// half bits in a Uint16Array. string elements are Buffers in a plain Array (their wire content is, per
// element, a u32 little-endian byte length then the bytes: see graphexec.v1.Tensor).

/** @typedef {{name: string, wire: string, itemsize: number, ArrayType: Function, isFloat: boolean}} DType */

function dtype(name, ArrayType, isFloat = false) {
  return Object.freeze({
    name,
    wire: `DATA_TYPE_${name.toUpperCase()}`,
    itemsize: ArrayType.BYTES_PER_ELEMENT,
    ArrayType,
    isFloat,
  });
}

const DTYPES = Object.freeze({
  float16: dtype('float16', Uint16Array, true),
  float32: dtype('float32', Float32Array, true),
  float64: dtype('float64', Float64Array, true),
  int8: dtype('int8', Int8Array),
  int16: dtype('int16', Int16Array),
  int32: dtype('int32', Int32Array),
  int64: dtype('int64', BigInt64Array),
  uint8: dtype('uint8', Uint8Array),
  uint16: dtype('uint16', Uint16Array),
  bool: dtype('bool', Uint8Array),
  string: Object.freeze({ name: 'string', wire: 'DATA_TYPE_STRING', itemsize: 0, ArrayType: Array, isFloat: false }),
});

const BY_WIRE = new Map(Object.values(DTYPES).map((d) => [d.wire, d]));

// The dtype a typed array means when none is given (Uint16Array means uint16, never float16).
const BY_ARRAY_TYPE = new Map([
  [Float32Array, DTYPES.float32], [Float64Array, DTYPES.float64], [Int8Array, DTYPES.int8],
  [Int16Array, DTYPES.int16], [Int32Array, DTYPES.int32], [BigInt64Array, DTYPES.int64],
  [Uint8Array, DTYPES.uint8], [Uint16Array, DTYPES.uint16],
]);

/** A DType from a name ('float32'), a wire name ('DATA_TYPE_FLOAT32') or a DType. */
function asDType(value) {
  if (value && typeof value === 'object' && value.wire) return value;
  const found = DTYPES[value] || BY_WIRE.get(value);
  if (!found) throw new TypeError(`unknown dtype ${JSON.stringify(value)}; expected one of ${Object.keys(DTYPES).join(', ')}`);
  return found;
}

function dtypeOfArray(array) {
  const found = BY_ARRAY_TYPE.get(array.constructor);
  if (!found) throw new TypeError(`cannot infer a dtype from ${array.constructor.name}; pass {dtype, data, shape}`);
  return found;
}

module.exports = { DTYPES, asDType, dtypeOfArray };
