"""The one map between failures and gRPC statuses, used by the server, the worker and the client.

tf.errors classes carry their status code (errors.OpError.error_code is the gRPC code number), so
the map is an identity on numbers: an OpError travels as its own code and comes back as the same
class. MemoryError is RESOURCE_EXHAUSTED; anything else is a bug, logged and answered INTERNAL.
"""
from __future__ import annotations

import functools
import logging

import grpc

from graphexec import errors
from graphexec.proto.v1 import service_pb2 as spb

_STATUS_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}
# Statuses a client retries: every unary call is idempotent (see graphexec.client.retry).
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
log = logging.getLogger("graphexec.rpc")
# Trailing metadata of a failed unary call whose run printed text: a serialized Status with it. gRPC
# limits metadata (8 KiB by default), so only the last MAX_TRAILING_PRINTED characters travel there.
STATUS_METADATA_KEY = "graphexec-status-bin"
MAX_TRAILING_PRINTED = 4096


def status_code(error: BaseException) -> grpc.StatusCode:
    """The gRPC status a failure travels as."""
    return failure_status(error, log_bugs=False)[0]


def failure_status(error: BaseException, where: str = "a handler", log_bugs: bool = True
                   ) -> tuple[grpc.StatusCode, str]:
    """(status code, message) a failure is answered with; a bug is logged with its traceback."""
    if isinstance(error, errors.OpError):
        return _STATUS_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN), error.message
    if isinstance(error, MemoryError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, "out of memory"
    if log_bugs:
        log.error("internal error in %s", where, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(error).__name__}: {error}"


def failure_message(error: BaseException, where: str = "a handler") -> spb.Status:
    """The Status message a failure is answered with in a body, with the text its run printed."""
    code, message = failure_status(error, where)
    return spb.Status(code=code.value[0], message=message, printed=getattr(error, "printed", ()))


def failure_bytes(error: BaseException, where: str = "a handler") -> bytes:
    """failure_message serialized: how a failure travels in a frame of a worker's direct link."""
    return failure_message(error, where).SerializeToString()


def error_from_failure_bytes(data: bytes) -> errors.OpError:
    """The tf.errors instance of a serialized Status (failure_bytes)."""
    answer = spb.Status.FromString(data)
    return error_from_status(answer.code, answer.message, answer.printed)


def error_from_status(code, message: str, printed=()) -> errors.OpError:
    """The tf.errors instance for a gRPC status (a grpc.StatusCode or its number)."""
    number = code.value[0] if isinstance(code, grpc.StatusCode) else int(code)
    error = errors.from_code(number, message)
    if printed:
        error.printed = list(printed)
    return error


def error_from_rpc(error: grpc.RpcError) -> errors.OpError:
    """The tf.errors instance for a failed call, with the server's message and the text its run printed."""
    printed = ()
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == STATUS_METADATA_KEY:
            printed = spb.Status.FromString(value).printed
    return error_from_status(error.code(), error.details() or str(error), printed)


def _last_printed(printed) -> list[str]:
    """The end of the printed text, within MAX_TRAILING_PRINTED characters, saying what was dropped."""
    total = sum(len(text) for text in printed)
    if total <= MAX_TRAILING_PRINTED:
        return list(printed)
    tail = "".join(printed)[-MAX_TRAILING_PRINTED:]
    return [f"[graphexec: {total - len(tail)} earlier characters of printed output were dropped]\n", tail]


def answers_failures(handler):
    """A unary handler (..., request bytes, context) whose failures become its call's status, never a crash."""

    @functools.wraps(handler)
    def answered(*args):
        try:
            return handler(*args)
        except Exception as exc:  # the handler boundary: a bug is answered INTERNAL and the server keeps serving
            answer = failure_message(exc, handler.__name__)
            if answer.printed:  # what the failed run printed still reaches the user
                details = spb.Status(code=answer.code, printed=_last_printed(answer.printed))
                args[-1].set_trailing_metadata(((STATUS_METADATA_KEY, details.SerializeToString()),))
            args[-1].abort(_STATUS_BY_NUMBER[answer.code], answer.message)

    return answered
