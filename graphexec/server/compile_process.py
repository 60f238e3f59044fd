"""A compile process: decodes and compiles large graphs away from the server's threads.

Decoding a graph (inferring every node's types) and compiling it are pure Python and hold the GIL:
in the server's own process a 2e5-node graph took seconds, during which every other tenant's runs
waited for the interpreter (their median latency rose tenfold). graphexec.server.compile_pool runs
them here instead, in a few child processes of `graphexec serve`, and kills one that runs past the
compile deadline.

Protocol (stdin -> stdout), frames of a u64 little-endian length and that many bytes; no pickle.
The process first writes {"ready": true} once it has imported what it needs; then, per request:
  request: a JSON header {"op": "check" | "compile", "segments": N, ...}, then N frames, each a
           graph segment as stored ("segment" blobs, oldest first: the graph's whole chain)
    check:   decode and verify the last segment over the ones before it (its digest, its types)
    compile: also {"chain", "feeds", "fetches", "targets", "seed", "graph_digest", "memory_budget"}:
             compile the signature over the graph with that chain
  answer:  a JSON header {"ok": true, "node_count": N} (check), or {"ok": true} and one frame: the
           plan as the plan cache stores it (graphexec.rpc.convert.plan_to_bytes);
           or {"ok": false, "code": gRPC status number, "message": ...}
Decoded graphs stay cached here (bounded, graphexec.server.graphs), so compiling several signatures
of one graph, or a graph extended by a few nodes, decodes it once.
"""
from __future__ import annotations

import json
import logging
import struct
import sys

from graphexec import errors, ir
from graphexec.compiler.pipeline import compile_program
from graphexec.compiler.plan import Plan
from graphexec.rpc import convert, status
from graphexec.runtime.store import MemoryStore
from graphexec.server import limits as server_limits
from graphexec.server.graphs import GraphLibrary, StoredGraph

_LENGTH = struct.Struct("<Q")
READY = json.dumps({"ready": True}).encode()
log = logging.getLogger("graphexec.compile")


def compile_signature(graph: StoredGraph, feeds, fetches, targets, seed, graph_digest: str,
                      memory_budget: int) -> Plan:
    """The plan of a signature of `graph`, after checking that the names exist; the same in the server
    (small graphs) and in a compile process."""
    for what, names in (("feed", feeds), ("fetch", fetches)):
        for name in names:
            if name not in graph.types.avals:
                raise errors.InvalidArgumentError(None, None, f"Cannot {what} '{name}': it is not a tensor of the "
                                                              f"graph")
    for name in targets:
        if name not in graph.types.output_counts:
            raise errors.InvalidArgumentError(None, None, f"Cannot run '{name}': it is not an op of the graph")
    program = ir.Program(graph.nodes, tuple(feeds), tuple(fetches), tuple(targets), seed)
    plan = compile_program(program, graph_digest)
    server_limits.check_plan_memory(plan, memory_budget)
    return plan


def write_frame(stream, data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)


def read_frame(stream) -> bytes | None:
    """The next frame, or None at the end of the stream."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def answer(library: GraphLibrary, header: dict, blobs: list[bytes]) -> tuple[dict, bytes | None]:
    """(answer header, plan bytes or None) of one request."""
    segments = [convert.segment_from_bytes(blob) for blob in blobs]
    for segment, blob in zip(segments[:-1], blobs):  # the prefix was verified when it was uploaded
        library.store.put_blob("segment", segment.chain.hex(), blob)
    if header["op"] == "check":
        graph = library.add(segments[-1])
        return {"ok": True, "node_count": len(graph.nodes)}, None
    library.store.put_blob("segment", segments[-1].chain.hex(), blobs[-1])
    graph = library.get(bytes.fromhex(header["chain"]))
    plan = compile_signature(graph, header["feeds"], header["fetches"], header["targets"], header["seed"],
                             header["graph_digest"], header["memory_budget"])
    return {"ok": True}, convert.plan_to_bytes(plan)


def main() -> None:
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    library = GraphLibrary(MemoryStore())
    write_frame(sink, READY)
    sink.flush()
    while True:
        data = read_frame(source)
        if data is None:
            return  # the server closed the pipe (or died): nothing more to do
        header = json.loads(data)
        blobs = [read_frame(source) for _ in range(header["segments"])]
        if any(blob is None for blob in blobs):
            return
        try:
            reply, plan = answer(library, header, blobs)
        except Exception as exc:  # answered with its status like the server's own failures (a bug is logged)
            code, message = status.failure_status(exc, "a compile process")
            reply, plan = {"ok": False, "code": code.value[0], "message": message}, None
        write_frame(sink, json.dumps(reply).encode())
        if plan is not None:
            write_frame(sink, plan)
        sink.flush()


if __name__ == "__main__":
    main()
