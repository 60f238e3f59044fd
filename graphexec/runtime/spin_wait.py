"""Waits that spin without the GIL, compiled by numba (runtime/compiled.py), for the intra-op threads.

Why: on a VM a vCPU with nothing to run halts, and waking the thread that sleeps there costs 50-230 us
(AMD EPYC family 25 model 17, 2 vCPUs; 20-40 us on some kinds). W3's two products take ~0.55 ms each on
one core, so a helper woken for half of one arrives when the caller is nearly done with its own half: split,
they took 0.52-0.57 ms against 0.58-0.63 whole. A helper that spins a little after its last part is on its
vCPU when the next part comes. The spin runs in compiled code without the GIL, so the thread that will post
the next part keeps running Python meanwhile; it reads the CPU's cycle counter, so it stops after its
budget whatever happens (a spin costs at most that much CPU); and it yields the CPU at every turn
(sched_yield), so a thread that is ready to run there (the client of a server on the same machine, a
neighbour) runs first. How long they spin: --intra-op-spin-us (runtime/intra_op.py).

`wait_for_change(flags, seen, seconds)` returns True as soon as flags[0] differs from `seen` (another
thread stored to it), False after `seconds` or when no compiled spin is available yet (numba missing,
still compiling, or `--compiled-kernels numpy`): callers then block as before.
"""
from __future__ import annotations

import platform
import threading
import time

import numpy as np

from graphexec.runtime import compiled

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
CALIBRATION_CYCLES = 2_000_000  # ~1 ms at 2 GHz: long enough to time against perf_counter

_load_acquire = _cycles = _yield_cpu = None  # numba intrinsics, bound before the loop compiles (_import_intrinsics)
_cycles_per_second = 0.0  # 0: not measured yet; -1: the cycle counter cannot be used
_calibration_lock = threading.Lock()


def _intrinsics(numba):
    """`load_acquire(array)` (array[0], loaded atomically: a store by another thread is seen, and the load
    is never hoisted out of a loop) and `cycles()` (the CPU's cycle counter, after a pause hint on x86)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def load_acquire(typingctx, array):
        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            return builder.load_atomic(data, "acquire", 8)
        return types.int64(array), codegen

    @intrinsic
    def cycles(typingctx):
        def codegen(context, builder, signature, args):
            if _X86:
                pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                       "llvm.x86.sse2.pause")
                builder.call(pause, [])
            counter = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(64), []),
                                                     "llvm.readcyclecounter")
            return builder.call(counter, [])
        return types.int64(), codegen

    @intrinsic
    def yield_cpu(typingctx):
        def codegen(context, builder, signature, args):
            sched_yield = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []),
                                                         "sched_yield")
            builder.call(sched_yield, [])
            return context.get_dummy_value()
        return types.none(), codegen

    return load_acquire, cycles, yield_cpu


def _spin_loop(flags, seen, budget):
    """Cycles spun until flags[0] != seen, or -1 once `budget` cycles have passed (or the counter went
    back, as it may when a thread moves between CPUs whose counters differ)."""
    start = _cycles()
    while _load_acquire(flags) == seen:
        _yield_cpu()
        spent = _cycles() - start
        if spent >= budget or spent < 0:
            return -1
    return _cycles() - start


def _signatures(types):
    return {"int64": types.int64(types.Array(types.int64, 1, "C"), types.int64, types.int64)}


def _import_intrinsics():
    """Bind the intrinsics as module globals for `_spin_loop` (numba reads them when it compiles)."""
    global _load_acquire, _cycles, _yield_cpu
    numba = compiled._import()
    if numba is not None:
        _load_acquire, _cycles, _yield_cpu = _intrinsics(numba)


class _SpinLoop(compiled.Loop):
    def _compile(self, numba, dtype: str) -> None:
        _import_intrinsics()
        super()._compile(numba, dtype)


SPIN = _SpinLoop(_spin_loop, _signatures)


def _calibrated(spin) -> float:
    """Cycles a second of the counter the spin reads, timed once against perf_counter (-1 if unusable)."""
    global _cycles_per_second
    if _cycles_per_second:
        return _cycles_per_second
    with _calibration_lock:
        if _cycles_per_second == 0.0:
            flags = np.zeros(1, np.int64)
            spin(flags, 0, 1)  # the first call's dispatch is not timed
            started = time.perf_counter()
            result = spin(flags, 0, CALIBRATION_CYCLES)
            elapsed = time.perf_counter() - started
            rate = CALIBRATION_CYCLES / elapsed if result == -1 and elapsed > 0 else -1.0
            # A counter far from any clock rate (none at all, or a fixed low-rate one) is not used.
            _cycles_per_second = rate if 1e8 <= rate <= 1e11 else -1.0
        return _cycles_per_second


def prepare(wait: bool = False) -> bool:
    """Start compiling the spin on the compiler thread, and with `wait` wait for it and measure its counter;
    returns whether it can spin now."""
    SPIN.get("int64")
    if wait:
        SPIN.wait("int64")
    return available()


def available() -> bool:
    """Whether wait_for_change can spin now (it is compiled and its counter measured)."""
    spin = SPIN.get("int64")
    return spin is not None and _calibrated(spin) > 0


def wait_for_change(flags: np.ndarray, seen: int, seconds: float) -> bool:
    """Spin without the GIL until flags[0] != seen (True) or `seconds` pass (False). flags: a C-contiguous
    int64 array that other threads store to. False at once when no compiled spin is available."""
    spin = SPIN.get("int64")
    if spin is None:
        return False
    rate = _calibrated(spin)
    if rate <= 0:
        return False
    return spin(flags, seen, int(seconds * rate)) >= 0
