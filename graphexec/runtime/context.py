"""Execution contexts: what a kernel sees besides its inputs (array module, variables, RNG, deadline)."""
from __future__ import annotations

import time

import numpy as np

from graphexec import errors


class ExecContext:
    """Per-run state handed to kernels. `xp` is numpy or cupy; the same kernels serve both."""

    __slots__ = ("xp", "variables", "rngs", "seed", "deadline", "cancelled", "device")

    def __init__(self, xp=np, variables=None, rngs=None, seed=None, deadline=None, device="/cpu:0"):
        self.xp = xp
        self.variables = variables if variables is not None else {}
        self.rngs = rngs if rngs is not None else {}
        self.seed = seed
        self.deadline = deadline  # time.monotonic() value, or None
        self.cancelled = False
        self.device = device

    def check_interrupt(self) -> None:
        """Called between steps: stop a cancelled or expired run at the op boundary."""
        if self.cancelled:
            raise errors.CancelledError(None, None, "Run was cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise errors.DeadlineExceededError(None, None, "Deadline exceeded before the run finished")

    def read_variable(self, name: str):
        try:
            return self.variables[name]
        except KeyError:
            raise errors.FailedPreconditionError(
                None, None, f"Attempting to use uninitialized value {name}") from None

    def to_host(self, array):
        return array.get() if hasattr(array, "get") and self.xp is not np else array

    def from_host(self, array):
        return on_device(self.xp, array)


def on_device(xp, value):
    """`value` in `xp`'s memory; tf.string values (object arrays) stay on the host, where their ops run."""
    if xp is np or getattr(value, "dtype", None) == object:
        return value
    return xp.asarray(value)


_BUILD_TIME = ExecContext()


def build_time_context() -> ExecContext:
    """A context for evaluating small pure ops while building (constant-value propagation)."""
    return _BUILD_TIME
