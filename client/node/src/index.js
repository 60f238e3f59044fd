'use strict';
// @graphexec/client: build a graph, run it on a graphexec server.
//
//   const { Client, Graph } = require('@graphexec/client');
//   const g = new Graph();
//   const x = g.placeholder('float32', { shape: [null, 2] });
//   const y = g.reduceSum(g.matmul(x, g.constant([[1], [2]], { dtype: 'float32' })));
//   const client = new Client('grpc://localhost:50051');
//   const session = await client.session(g);
//   const { data } = await session.run(y, { feeds: new Map([[x, { data: new Float32Array([1, 2, 3, 4]), shape: [2, 2] }]]) });
const { Client, Session, grpcTarget, parseTarget } = require('./client');
const { Graph, Tensor, Operation, Variable } = require('./graph');
const { graphDigest } = require('./digest');
const { decodeMessage, encodeMessage } = require('./protos');
const { DTYPES } = require('./dtypes');
const errors = require('./errors');

/** A Graph from GraphDef bytes (e.g. written in Python with graphexec.rpc.convert.graph_to_proto). */
function graphFromBytes(bytes) {
  return Graph.fromGraphDef(decodeMessage('GraphDef', bytes));
}

/** GraphDef bytes of a Graph. */
function graphToBytes(graph) {
  return encodeMessage('GraphDef', graph.toGraphDef());
}

module.exports = {
  Client, Session, Graph, Tensor, Operation, Variable, DTYPES, graphDigest, graphFromBytes, graphToBytes, grpcTarget,
  parseTarget,   errors, ...errors,
};
