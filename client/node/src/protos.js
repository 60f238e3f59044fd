'use strict';
// The project's .proto files, loaded at run time (no generated or hand-copied message code): the gRPC
// service through @grpc/proto-loader, standalone messages (a GraphDef written by another client)
// through protobufjs, both with the same conversion options.
const fs = require('node:fs');
const path = require('node:path');
const protoLoader = require('@grpc/proto-loader');
const grpc = require('@grpc/grpc-js');
const protobuf = require('protobufjs');

// A packed npm package carries a copy in ./protos (see "prepack"); in the repository, use the originals.
const PROTO_ROOT = [path.join(__dirname, '..', 'protos'), path.join(__dirname, '..', '..', '..', 'protos')]
  .find((dir) => fs.existsSync(path.join(dir, 'graphexec', 'v1', 'service.proto')));
if (!PROTO_ROOT) throw new Error('graphexec client: cannot find the protos/ directory');

const FILES = ['graphexec/v1/graph.proto', 'graphexec/v1/service.proto'];

// int64 as decimal strings (exact), enums by name, bytes as Buffers, oneofs named in `value`.
const CONVERSION = { keepCase: true, longs: String, enums: String, bytes: Buffer, defaults: false, oneofs: true, arrays: true };

let cached;

function load() {
  if (cached) return cached;
  const packageDefinition = protoLoader.loadSync(FILES, { ...CONVERSION, includeDirs: [PROTO_ROOT] });
  const grpcObject = grpc.loadPackageDefinition(packageDefinition);
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(PROTO_ROOT, target);
  root.loadSync(FILES, { keepCase: true });
  cached = { packageDefinition, service: grpcObject.graphexec.v1.GraphExecService, root };
  return cached;
}

/** Decode bytes of a graphexec.v1 message (e.g. 'GraphDef') to the plain-object form used here. */
function decodeMessage(typeName, bytes) {
  const type = load().root.lookupType(`graphexec.v1.${typeName}`);
  return type.toObject(type.decode(bytes), CONVERSION);
}

/** Encode a plain object as bytes of a graphexec.v1 message. */
function encodeMessage(typeName, object) {
  const type = load().root.lookupType(`graphexec.v1.${typeName}`);
  return Buffer.from(type.encode(type.fromObject(object)).finish());
}

module.exports = { load, decodeMessage, encodeMessage, PROTO_ROOT };
