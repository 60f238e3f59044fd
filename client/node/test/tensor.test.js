'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { toArray, toTensorProto, fromTensorProto } = require('../src/tensor');

const roundTrip = (value, dtype) => fromTensorProto(toTensorProto(value, dtype));

test('typed arrays keep their dtype and become 1-D unless given a shape', () => {
  assert.deepEqual(roundTrip(new Float64Array([1.5, -2])), { dtype: 'float64', shape: [2], data: new Float64Array([1.5, -2]) });
  assert.deepEqual(roundTrip({ data: new Int16Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] }).shape, [2, 3]);
  assert.deepEqual(roundTrip(new BigInt64Array([2n ** 62n])).data, new BigInt64Array([2n ** 62n]));
});

test('plain values take TF default dtypes: int32, float32, bool', () => {
  assert.equal(roundTrip(3).dtype, 'int32');
  assert.equal(roundTrip([1, 2.5]).dtype, 'float32');
  assert.deepEqual(roundTrip([[true, false]]), { dtype: 'bool', shape: [1, 2], data: new Uint8Array([1, 0]) });
  assert.deepEqual(roundTrip([[1, 2], [3, 4]], 'float64'), { dtype: 'float64', shape: [2, 2], data: new Float64Array([1, 2, 3, 4]) });
  assert.deepEqual(roundTrip(7, 'int64').data, new BigInt64Array([7n]));
});

test('content is little-endian bytes, row-major', () => {
  const proto = toTensorProto({ data: new Int32Array([1, 256]), shape: [2] });
  assert.equal(proto.dtype, 'DATA_TYPE_INT32');
  assert.deepEqual([...proto.content], [1, 0, 0, 0, 0, 1, 0, 0]);
});

test('decoding copies unaligned bytes into an aligned typed array', () => {
  const bytes = Buffer.concat([Buffer.from([0]), Buffer.from(new Float32Array([1, 2]).buffer)]).subarray(1);
  assert.deepEqual(fromTensorProto({ dtype: 'DATA_TYPE_FLOAT32', shape: ['2'], content: bytes }).data, new Float32Array([1, 2]));
});

test('bad input is rejected before it reaches the wire', () => {
  assert.throws(() => toArray({ data: new Float32Array(3), shape: [2, 2] }), /needs 4 elements, got 3/);
  assert.throws(() => toArray([[1], [2, 3]]), /ragged/);
  assert.throws(() => toArray(new Float32Array(2), 'int32'), /dtype int32 needs Int32Array data/);
  assert.throws(() => toArray(['text', 1]), /cannot convert string/);
  assert.throws(() => fromTensorProto({ dtype: 'DATA_TYPE_FLOAT32', shape: ['3'], content: Buffer.alloc(8) }), /has 8 bytes, expected 12/);
});

test('strings travel as u32 little-endian lengths then bytes, and come back as Buffers', () => {
  const proto = toTensorProto([['ab', ''], ['é', Buffer.from([0, 255])]]);
  assert.equal(proto.dtype, 'DATA_TYPE_STRING');
  assert.deepEqual(proto.shape, [2, 2]);
  assert.deepEqual([...proto.content], [2, 0, 0, 0, 97, 98, 0, 0, 0, 0, 2, 0, 0, 0, 0xc3, 0xa9, 2, 0, 0, 0, 0, 255]);
  const back = fromTensorProto(proto);
  assert.equal(back.dtype, 'string');
  assert.deepEqual(back.data.map((b) => [...b]), [[97, 98], [], [0xc3, 0xa9], [0, 255]]);
  assert.equal(roundTrip('Hello, TensorFlow!').data[0].toString(), 'Hello, TensorFlow!');
  assert.throws(() => fromTensorProto({ dtype: 'DATA_TYPE_STRING', shape: ['2'], content: Buffer.from([1, 0, 0, 0, 97]) }), /ends after 1 of 2/);
  assert.throws(() => fromTensorProto({ dtype: 'DATA_TYPE_STRING', shape: ['1'], content: Buffer.from([9, 0, 0, 0, 97]) }), /runs past the end/);
  assert.throws(() => toArray(['a', 1], 'string'), /must be a string or Buffer/);
});
