"""10,000 random-byte and mutated requests across every RPC: only clean error statuses, server alive."""
from __future__ import annotations

import random

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import graphexec as tf
from graphexec import digest
from graphexec.proto.v1 import service_pb2 as spb
from graphexec.rpc import codec, convert
from graphexec.rpc.tensors import numpy_dtype_enum

pytestmark = pytest.mark.timeout(180)
TOTAL = 10_000
STREAM_SHARE = 0.05  # streams cost more per call; a twentieth of the requests go to Run
# Statuses a correct server may answer with. UNKNOWN and INTERNAL mean an unhandled exception;
# DEADLINE_EXCEEDED would mean a hang.
UNCLEAN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED}


def _call(channel, method, data):
    return channel.unary_unary(f"/graphexec.v1.GraphExecService/{method}")(data, timeout=10)


def _valid_requests(channel) -> dict[str, list[bytes]]:
    """One or more well-formed requests per RPC, against a real session, to mutate."""
    graph = tf.Graph()
    with graph.as_default():
        x = tf.placeholder(tf.float32, [None, 3], name="x")
        w = tf.Variable(tf.ones([3, 2]), name="w")
        tf.reduce_sum(tf.matmul(x, w), axis=1, name="y")
        update = w.assign_add(tf.ones([3, 2]) * 0.5)
    nodes = graph.nodes()
    chain = digest.chain(digest.CHAIN_START, nodes)
    segment = spb.GraphSegment(node_count=len(nodes), chain=chain, nodes=convert.graph_to_proto(nodes))
    created = spb.CreateSessionResponse.FromString(_call(channel, "CreateSession", spb.CreateSessionRequest(
        graph=segment).SerializeToString()))
    handle = created.session_handle
    _call(channel, "RunStep", codec.encode_tensor_message(spb.RunStepRequest(session_handle=handle, targets=[
        "w/Assign"]), "feeds", []))
    made = spb.MakeCallableResponse.FromString(_call(channel, "MakeCallable", spb.MakeCallableRequest(
        session_handle=handle, feeds=["x:0"], fetches=["y:0"]).SerializeToString()))
    feeds = [np.ones((2, 3), np.float32)]
    run = spb.RunCallableRequest(session_handle=handle, callable_handle=made.callable_handle, request_id=5)
    stream_run = codec.encode_tensor_message(run.SerializeToString(), "feeds", feeds, message_class=spb.RunRequest)
    part = spb.RunRequest(part=spb.TensorPart(index=0, offset=0, dtype=numpy_dtype_enum(np.float32),
                                                      shape=[2, 3]))
    return {
        "CreateSession": [spb.CreateSessionRequest(config=spb.SessionConfig(container="fuzz")).SerializeToString(),
                          spb.CreateSessionRequest(graph=segment).SerializeToString()],
        "ExtendSession": [spb.ExtendSessionRequest(session_handle=handle, graph=segment).SerializeToString()],
        "RunStep": [codec.encode_tensor_message(spb.RunStepRequest(session_handle=handle, feed_names=["x:0"],
                                                                   fetches=["y:0"], targets=[update.op.name]),
                                                "feeds", feeds)],
        "MakeCallable": [spb.MakeCallableRequest(session_handle=handle, feeds=["x:0"], fetches=["y:0"],
                                                 targets=[update.op.name]).SerializeToString()],
        "RunCallable": [codec.encode_tensor_message(run, "feeds", feeds)],
        "ReleaseCallable": [spb.ReleaseCallableRequest(session_handle=handle,
                                                       callable_handle=made.callable_handle).SerializeToString()],
        "ListDevices": [spb.ListDevicesRequest(session_handle=handle).SerializeToString()],
        "CloseSession": [spb.CloseSessionRequest(session_handle="not-" + handle).SerializeToString()],
        "Reset": [spb.ResetRequest(containers=["fuzz"]).SerializeToString()],
        "Run": [stream_run,
                codec.encode_tensor_message(part, "feeds", raw_field="part_data", raw=feeds[0].tobytes()),
                b"".join(codec.message_field(spb.RunRequest, "batch", stream_run) for _ in range(2))],  # a batch of two
    }


def _mutate(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(6)
    if kind == 0 or not data:
        return rng.randbytes(rng.randrange(0, 256))
    data = bytearray(data)
    if kind == 1:  # flip bits
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == 2:  # truncate
        del data[rng.randrange(len(data)):]
    elif kind == 3:  # overwrite a run with random bytes
        i = rng.randrange(len(data))
        data[i:i + 4] = rng.randbytes(4)
    elif kind == 4:  # splice random bytes in
        i = rng.randrange(len(data) + 1)
        data[i:i] = rng.randbytes(rng.randrange(1, 16))
    else:  # set a byte to an extreme value (lengths, varints)
        data[rng.randrange(len(data))] = rng.choice([0x00, 0x7F, 0x80, 0xFF])
    return bytes(data)


def test_random_and_mutated_requests_get_clean_statuses(embedded):
    rng = random.Random(1234)
    unclean = []
    with grpc.insecure_channel(embedded.removeprefix("grpc://")) as channel:
        valid = _valid_requests(channel)
        unary = [m for m in valid if m != "Run"]
        stream = channel.stream_stream("/graphexec.v1.GraphExecService/Run")
        for i in range(TOTAL):
            if rng.random() < STREAM_SHARE:
                frames = [_mutate(rng, rng.choice(valid["Run"])) for _ in range(rng.randrange(1, 4))]
                try:
                    for reply in stream(iter(frames), timeout=10):
                        spb.RunResponse.FromString(reply)
                except grpc.RpcError as exc:
                    if exc.code() in UNCLEAN:
                        unclean.append(("Run", exc.code(), exc.details()))
                continue
            method = unary[i % len(unary)]
            try:
                _call(channel, method, _mutate(rng, rng.choice(valid[method])))
            except grpc.RpcError as exc:
                if exc.code() in UNCLEAN:
                    unclean.append((method, exc.code(), exc.details()))
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert not unclean, unclean[:10]
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    with tf.Graph().as_default():
        with tf.Session(embedded) as sess:  # and it still runs graphs
            assert sess.run(tf.constant(2.0) * 3.0) == 6.0
