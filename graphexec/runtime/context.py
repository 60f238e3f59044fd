"""Execution contexts: what a kernel sees besides its inputs (array module, variables, RNG, deadline)."""
from __future__ import annotations

import time

import numpy as np

from graphexec import errors


class ExecContext:
    """Per-run state handed to kernels. `xp` is numpy or cupy; the same kernels serve both."""

    __slots__ = ("xp", "variables", "rngs", "seed", "deadline", "cancelled", "device", "printed", "stats",
                 "spares", "on_final")

    def __init__(self, xp=np, variables=None, rngs=None, seed=None, deadline=None, device="/cpu:0", printed=None):
        self.xp = xp
        self.variables = variables if variables is not None else {}
        self.rngs = rngs if rngs is not None else {}  # the session's kernel state: RNGs, tf.Print counts
        self.printed = printed if printed is not None else []  # text printing ops wrote, for the client
        self.seed = seed
        self.deadline = deadline  # time.monotonic() value, or None
        self.cancelled = False
        self.device = device
        self.stats = None  # the run's NodeStats list when traced (sub-plans of If/While append to it too)
        self.spares = None  # variable name -> its previous value's buffer, for updates to write into (numpy only)
        self.on_final = None  # called with variables the run wrote for the last time (executor.LoadedPlan)

    def check_interrupt(self) -> None:
        """Called between steps: stop a cancelled or expired run at the op boundary."""
        if self.cancelled:
            raise errors.CancelledError(None, None, "Run was cancelled")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise errors.DeadlineExceededError(None, None, "Deadline exceeded before the run finished")

    def read_variable(self, name: str, dtype=None, shape=None):
        """The value of variable `name`; with the graph's `dtype` (and `shape`, an ir.ShapeAttr) for it,
        FAILED_PRECONDITION unless the stored value has them (see check_declared)."""
        try:
            value = self.variables[name]
        except KeyError:
            raise errors.FailedPreconditionError(
                None, None, f"Attempting to use uninitialized value {name}") from None
        if dtype is not None:
            check_declared(name, value, dtype, shape, "read")
        return value

    def to_host(self, array):
        return on_host(array)

    def from_host(self, array):
        return on_device(self.xp, array)


def on_device(xp, value):
    """`value` in `xp`'s memory; tf.string values (object arrays) stay on the host, where their ops run."""
    if xp is np or getattr(value, "dtype", None) == object:
        return value
    return xp.asarray(value)


# A GPU value of at least this many bytes comes back through page-locked memory from CuPy's pool: the
# bus copies it at full speed, and a training step's copies (every updated variable, for the commit)
# reuse the blocks the step before freed instead of faulting in fresh pages.
PINNED_MIN_BYTES = 1 << 20
# Freed page-locked blocks CuPy's pool may keep for reuse; beyond it they go back to the system (page-locked
# memory is memory no other process can have).
MAX_FREE_PINNED_BLOCKS = 64


def on_host(value):
    """`value` in host memory: numpy values as they are, a CuPy array copied back."""
    if isinstance(value, (np.ndarray, np.generic)) or not hasattr(value, "get"):
        return value
    if value.nbytes < PINNED_MIN_BYTES:
        return value.get()
    import cupyx  # noqa: PLC0415 - only GPU values get here

    if not value.flags.c_contiguous:
        value = value.copy()  # on the device, so that one bus copy moves it
    host = cupyx.empty_pinned(value.shape, value.dtype)
    value.get(out=host)
    return host


def trim_pinned_pool(xp) -> None:
    """Give CuPy's cached free page-locked blocks back to the system once there are many."""
    pool = xp.get_default_pinned_memory_pool()
    if pool.n_free_blocks() > MAX_FREE_PINNED_BLOCKS:
        pool.free_all_blocks()


def check_declared(name: str, value, dtype, shape, action: str) -> None:
    """FAILED_PRECONDITION naming the variable, both types and both shapes unless `value` (the stored
    value) has the graph's `dtype` and fits its `shape` (unknown dims and ranks fit anything). Variables
    are shared by name within a container, so a stored value of another type belongs to another program."""
    dims = None if shape is None else shape.dims
    if value.dtype == dtype.np and (dims is None or dims == value.shape or (len(dims) == value.ndim and all(
            d is None or d == s for d, s in zip(dims, value.shape)))):
        return
    declared = "[" + ",".join("?" if d is None else str(d) for d in dims) + "]" if dims is not None else "[...]"
    stored = "[" + ",".join(str(s) for s in value.shape) + "]"
    raise errors.FailedPreconditionError(
        None, None, f"Cannot {action} variable '{name}': this graph declares it {dtype.name}{declared}, but the "
                    f"container holds a {value.dtype.name}{stored} value under that name (another program's "
                    f"variable of the same name: use another name or container, or Reset it)")


_BUILD_TIME = ExecContext()


def build_time_context() -> ExecContext:
    """A context for evaluating small pure ops while building (constant-value propagation)."""
    return _BUILD_TIME
