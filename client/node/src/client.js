'use strict';
// The gRPC client: a Client holds one channel to the service (all replicas, round-robin); a Session
// names a graph on the server by its content address and runs it.
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const { load } = require('./protos');
const { chainState } = require('./digest');
const { fromGrpcError, NotFoundError } = require('./errors');
const { Graph, Tensor, Operation, Variable } = require('./graph');
const { toTensorProto, fromTensorProto } = require('./tensor');
const { parseTarget, tlsCredentials, bearerToken, callMetadata } = require('./security');

// Spread calls over every address the resolver returns (all server replicas behind a dns:/// name).
const CHANNEL_OPTIONS = {
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  'grpc.max_send_message_length': -1,
  'grpc.max_receive_message_length': -1,
};

/**
 * The gRPC address in what users write: "grpc://host:port" or "grpcs://host:port" (as the Python client),
 * "host:port", or any gRPC name such as "dns:///graphexec-server.ns.svc:50051" or "ipv4:10.0.0.1:50051,10.0.0.2:50051".
 */
function grpcTarget(target) {
  return parseTarget(target).address;
}

/** A fresh id for one logical run: retries reuse it, so the server applies a variable update once. */
function newRequestId() {
  return crypto.randomBytes(8).readBigUInt64LE().toString();
}

class Client {
  /**
   * A grpcs:// target is dialled over TLS with the settings of GRAPHEXEC_TLS_CA/_CERT/_KEY (see
   * security.js); every call carries GRAPHEXEC_TOKEN (or GRAPHEXEC_TOKEN_FILE's token) as its bearer token.
   * @param {string} target see grpcTarget(); defaults to $GRAPHEXEC_TARGET
   * @param {{credentials?: grpc.ChannelCredentials, token?: string, channelOptions?: object}} options
   *   `credentials` and `token` replace what the target's scheme and the environment give
   */
  constructor(target = process.env.GRAPHEXEC_TARGET, { credentials = undefined, token = undefined, channelOptions = {} } = {}) {
    if (!target) throw new TypeError('no target: pass one (e.g. "grpc://localhost:50051") or set GRAPHEXEC_TARGET');
    const { address, secure } = parseTarget(target);
    this.target = address;
    this.secure = secure;
    const channelCredentials = credentials ?? (secure ? tlsCredentials() : grpc.credentials.createInsecure());
    this.metadata = callMetadata(token ?? bearerToken());
    const { service } = load();
    this.stub = new service(this.target, channelCredentials, { ...CHANNEL_OPTIONS, ...channelOptions });
  }

  /** Call a unary RPC; failures become GraphexecError subclasses. */
  call(method, request, { timeoutMs = undefined } = {}) {
    const options = timeoutMs ? { deadline: Date.now() + timeoutMs } : {};
    return new Promise((resolve, reject) => {
      this.stub[method](request, this.metadata.clone(), options,
        (error, response) => (error ? reject(fromGrpcError(error)) : resolve(response)));
    });
  }

  /** Open a session on `graph` (it is uploaded on first run, only if the server lacks it). */
  async session(graph, { container = '', allowSoftPlacement = false, defaultTimeoutMs = 0 } = {}) {
    const response = await this.call('CreateSession', {
      config: { container, allow_soft_placement: allowSoftPlacement, default_timeout_ms: String(defaultTimeoutMs) },
    });
    return new Session(this, graph, response.session_handle);
  }

  /** Devices of the live workers. */
  async listDevices() {
    return (await this.call('ListDevices', {})).devices;
  }

  close() {
    this.stub.close();
  }
}

class Session {
  constructor(client, graph, handle) {
    this.client = client;
    this.graph = graph;
    this.handle = handle;
    this.syncedNodes = 0; // nodes the server holds for this session
    this.syncedChain = undefined;
    this.lastUpload = undefined; // {nodesSent, graphMissing, digest} of the latest graph sync
  }

  /**
   * Bring the server's copy of the graph up to date: first name it by content only; send the new
   * nodes only when the server answers that it lacks them (another client may have uploaded them).
   */
  async syncGraph() {
    const nodes = this.graph.nodes;
    if (nodes.length === this.syncedNodes) return;
    const chain = chainState(nodes.slice(this.syncedNodes), this.syncedChain);
    const segment = {
      base_node_count: String(this.syncedNodes),
      base_chain: this.syncedChain ?? Buffer.alloc(0),
      node_count: String(nodes.length),
      chain,
    };
    if (this.graph.seed !== undefined) segment.seed = String(this.graph.seed);
    let response = await this.extend(segment);
    const graphMissing = Boolean(response.graph_missing);
    let nodesSent = 0;
    if (graphMissing) {
      try {
        response = await this.extend({ ...segment, nodes: { format_version: 1, nodes: nodes.slice(this.syncedNodes) } });
        nodesSent = nodes.length - this.syncedNodes;
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
        // The server lost the prefix (e.g. restarted without Redis): send the whole graph.
        response = await this.extend({ ...segment, base_node_count: '0', base_chain: Buffer.alloc(0), nodes: { format_version: 1, nodes } });
        nodesSent = nodes.length;
      }
    }
    this.syncedNodes = nodes.length;
    this.syncedChain = chain;
    this.lastUpload = { graphMissing, nodesSent, digest: response.graph_digest };
  }

  extend(segment) {
    return this.client.call('ExtendSession', { session_handle: this.handle, graph: segment });
  }

  /**
   * Run the graph. `fetches`: a Tensor, Operation, Variable or tensor name, or an array of them
   * (Operations run as targets and yield null). `feeds`: a Map keyed by Tensor or name, or an object
   * keyed by name; values as tensor.js accepts (typed arrays, {data, shape}, numbers, nested arrays).
   * Resolves to {dtype, shape, data} values in the shape of `fetches`.
   */
  async run(fetches, { feeds = {}, targets = [], timeoutMs = 0, retries = 2 } = {}) {
    const list = Array.isArray(fetches) ? fetches : [fetches];
    const fetchNames = [];
    const targetNames = targets.map((t) => (t instanceof Operation ? t.name : String(t)));
    for (const item of list) {
      if (item instanceof Operation) targetNames.push(item.name);
      else fetchNames.push(tensorName(item));
    }
    const [feedNames, feedValues] = this.encodeFeeds(feeds);
    await this.syncGraph();
    const request = {
      session_handle: this.handle, feed_names: feedNames, feeds: feedValues, fetches: fetchNames,
      targets: targetNames, options: { timeout_ms: String(timeoutMs) }, request_id: newRequestId(),
      graph_node_count: String(this.syncedNodes),
    };
    const response = await this.callWithRetries('RunStep', request, { timeoutMs, retries });
    const values = (response.fetches ?? []).map(fromTensorProto);
    const results = list.map((item) => (item instanceof Operation ? null : values.shift()));
    return Array.isArray(fetches) ? results : results[0];
  }

  encodeFeeds(feeds) {
    const entries = feeds instanceof Map ? [...feeds.entries()] : Object.entries(feeds);
    const names = [];
    const values = [];
    for (const [key, value] of entries) {
      names.push(tensorName(key));
      values.push(toTensorProto(value, key instanceof Tensor ? key.dtype : undefined));
    }
    return [names, values];
  }

  /** UNAVAILABLE is retried with the same request id: the server never applies one run twice. */
  async callWithRetries(method, request, { timeoutMs, retries }) {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.client.call(method, request, { timeoutMs: timeoutMs || undefined });
      } catch (error) {
        if (error.codeName !== 'UNAVAILABLE' || attempt >= retries) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  async close() {
    await this.client.call('CloseSession', { session_handle: this.handle });
  }
}

function tensorName(item) {
  if (item instanceof Tensor) return item.name;
  if (item instanceof Variable) return item.value.name;
  if (typeof item === 'string') return item.includes(':') ? item : `${item}:0`;
  throw new TypeError(`cannot fetch or feed ${String(item)}: expected a Tensor, Variable or tensor name`);
}

module.exports = { Client, Session, grpcTarget, parseTarget, Graph };
