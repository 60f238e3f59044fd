'use strict';
// Values in and out: JavaScript values <-> graphexec.v1.Tensor (dtype, shape, little-endian bytes).
// In: a typed array (1-D unless a shape is given), {data, shape, dtype}, a number/boolean/bigint scalar,
// or nested arrays of them. Out: {dtype, shape, data} with `data` a typed array of the dtype.
// Strings (dtype 'string'): JavaScript strings (UTF-8 encoded) or Buffers in, an Array of Buffers out.
const os = require('node:os');
const { asDType, dtypeOfArray, DTYPES } = require('./dtypes');

if (os.endianness() !== 'LE') {
  // Typed arrays use the host's byte order and the wire is little-endian: refuse rather than corrupt.
  throw new Error('graphexec client: big-endian hosts are not supported');
}

const product = (shape) => shape.reduce((a, b) => a * b, 1);

function isTypedArray(value) {
  return ArrayBuffer.isView(value) && !(value instanceof DataView);
}

/** The dtype TF gives plain JavaScript elements: booleans bool, bigints int64, integers int32, else float32. */
function defaultDType(elements) {
  if (elements.length && elements.every((e) => typeof e === 'string' || Buffer.isBuffer(e))) return DTYPES.string;
  for (const e of elements) {
    if (!['boolean', 'bigint', 'number'].includes(typeof e)) throw new TypeError(`cannot convert ${typeof e} ${String(e)} to a tensor element`);
  }
  if (elements.length && elements.every((e) => typeof e === 'boolean')) return DTYPES.bool;
  if (elements.length && elements.every((e) => typeof e === 'bigint')) return DTYPES.int64;
  return elements.length && elements.every((e) => Number.isInteger(e)) ? DTYPES.int32 : DTYPES.float32;
}

/** Shape and row-major elements of nested arrays; throws on ragged input. */
function flatten(nested) {
  if (!Array.isArray(nested)) return { shape: [], elements: [nested] };
  const parts = nested.map(flatten);
  const inner = parts.length ? parts[0].shape : [];
  for (const part of parts) {
    if (part.shape.join() !== inner.join()) throw new TypeError('ragged nested array: every row must have the same shape');
  }
  return { shape: [nested.length, ...inner], elements: parts.flatMap((p) => p.elements) };
}

function fromElements(elements, dtype) {
  if (dtype === DTYPES.string) return elements.map(asBuffer);
  if (dtype === DTYPES.int64) return BigInt64Array.from(elements, (e) => BigInt(e));
  if (dtype === DTYPES.bool) return Uint8Array.from(elements, (e) => (e ? 1 : 0));
  return dtype.ArrayType.from(elements, Number);
}

/**
 * Normalize any accepted input to {dtype, shape, data}. `dtype` (optional) is the dtype wanted, e.g. a
 * placeholder's; numbers are converted to it, a typed array must already match it.
 */
function toArray(value, dtype = undefined) {
  const wanted = dtype === undefined ? undefined : asDType(dtype);
  if (isTypedArray(value)) return toArray({ data: value }, wanted);
  if (value && typeof value === 'object' && !Array.isArray(value) && 'data' in value) {
    const data = value.data;
    const given = value.dtype !== undefined ? asDType(value.dtype) : wanted;
    if (!isTypedArray(data)) {
      const { shape, elements } = flatten(data);
      const chosen = given ?? defaultDType(elements);
      return checked({ dtype: chosen, shape: value.shape ?? shape, data: fromElements(elements, chosen) });
    }
    const chosen = given ?? dtypeOfArray(data);
    if (!(data instanceof chosen.ArrayType)) {
      throw new TypeError(`a tensor of dtype ${chosen.name} needs ${chosen.ArrayType.name} data, got ${data.constructor.name}`);
    }
    return checked({ dtype: chosen, shape: value.shape ?? [data.length], data });
  }
  const { shape, elements } = flatten(value);
  const chosen = wanted ?? defaultDType(elements);
  return checked({ dtype: chosen, shape, data: fromElements(elements, chosen) });
}

function checked(array) {
  if (array.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new TypeError(`invalid shape [${array.shape}]`);
  if (product(array.shape) !== array.data.length) {
    throw new TypeError(`shape [${array.shape}] needs ${product(array.shape)} elements, got ${array.data.length}`);
  }
  return array;
}

function asBuffer(element) {
  if (Buffer.isBuffer(element)) return element;
  if (typeof element === 'string') return Buffer.from(element, 'utf8');
  throw new TypeError(`a string tensor element must be a string or Buffer, got ${typeof element} ${String(element)}`);
}

/** The wire content of string elements: per element a u32 little-endian byte length, then the bytes. */
function stringContent(elements) {
  const parts = [];
  for (const element of elements) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(element.length);
    parts.push(length, element);
  }
  return Buffer.concat(parts);
}

function stringsFromContent(content, count) {
  const out = [];
  let pos = 0;
  for (let i = 0; i < count; i += 1) {
    if (pos + 4 > content.length) throw new TypeError(`string tensor content ends after ${i} of ${count} elements`);
    const length = content.readUInt32LE(pos);
    pos += 4;
    if (pos + length > content.length) throw new TypeError(`string element ${i} of ${length} bytes runs past the end of the content`);
    out.push(Buffer.from(content.subarray(pos, pos + length)));
    pos += length;
  }
  if (pos !== content.length) throw new TypeError(`string tensor content has ${content.length - pos} bytes after its ${count} elements`);
  return out;
}

/** A graphexec.v1.Tensor message (plain object for @grpc/proto-loader) from any accepted input. */
function toTensorProto(value, dtype = undefined) {
  const { dtype: d, shape, data } = toArray(value, dtype);
  if (d === DTYPES.string) return { dtype: d.wire, shape, content: stringContent(data) };
  return { dtype: d.wire, shape, content: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
}

/** {dtype, shape, data} from a decoded graphexec.v1.Tensor; the bytes are copied into aligned memory. */
function fromTensorProto(tensor) {
  const dtype = asDType(tensor.dtype);
  const shape = (tensor.shape || []).map(Number);
  const content = tensor.content || Buffer.alloc(0);
  if (dtype === DTYPES.string) return { dtype: dtype.name, shape, data: stringsFromContent(Buffer.from(content), product(shape)) };
  if (content.length !== product(shape) * dtype.itemsize) {
    throw new TypeError(`tensor content has ${content.length} bytes, expected ${product(shape) * dtype.itemsize} for ${dtype.name}[${shape}]`);
  }
  const aligned = new Uint8Array(content).buffer;
  return { dtype: dtype.name, shape, data: new dtype.ArrayType(aligned, 0, product(shape)) };
}

module.exports = { toArray, toTensorProto, fromTensorProto, isTypedArray };
