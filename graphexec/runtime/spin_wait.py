"""Waits that spin without the GIL, compiled by numba (runtime/compiled.py), for the intra-op threads, and
product parts those threads run without the GIL.

Why: on a VM a vCPU with nothing to run halts, and waking the thread that sleeps there costs 50-230 us
(AMD EPYC family 25 model 17, 2 vCPUs; 20-40 us on some kinds). W3's two products take ~0.55 ms each on
one core, so a helper woken for half of one arrives when the caller is nearly done with its own half: split,
they took 0.52-0.57 ms against 0.58-0.63 whole. A helper that spins a little after its last part is on its
vCPU when the next part comes. The spin runs in compiled code without the GIL, so the thread that will post
the next part keeps running Python meanwhile; it reads the CPU's cycle counter, so it stops after its
budget whatever happens (a spin costs at most that much CPU); and it yields the CPU at every turn
(sched_yield), so a thread that is ready to run there (the client of a server on the same machine, a
neighbour) runs first. How long they spin: --intra-op-spin-us (runtime/intra_op.py).

Spinning alone still left a helper 40-70 us behind its caller: to run Python it must take the GIL, which the
caller holds until its own BLAS call lets go of it, and a thread that waits for the GIL sleeps (a futex), so
the hand-over costs a wake-up. So a float32 product's parts go to helpers as cblas_sgemm's arguments in a
slot (`fill`), and the helper's compiled loop calls numpy's own sgemm itself (blas.sgemm_address) without
ever taking the GIL; the caller runs its own part the same way (`finish` on a slot no helper watches),
then any part no helper took yet, or spins until the helper's is done. The arguments are the ones
numpy's matmul passes for the same arrays, so the bits are numpy's (checked on a test product before
first use: `products_available`). A part may carry an epilogue that the same thread applies to its block
right after the product, while the block is in its cache (`_epilogue`: + a row vector, then ReLU or not;
or a gradient-descent step), with the operations of the numpy kernels it stands for, in their order
(checked with the products).

`wait_for_change(flags, seen, seconds)` returns True as soon as flags[0] differs from `seen` (another
thread stored to it), False after `seconds` or when no compiled spin is available yet (numba missing,
still compiling, or `--compiled-kernels numpy`): callers then block as before.
"""
from __future__ import annotations

import platform
import threading
import time

import numpy as np

from graphexec.runtime import blas, compiled

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
CALIBRATION_CYCLES = 2_000_000  # ~1 ms at 2 GHz: long enough to time against perf_counter

# numba intrinsics, bound before the loops compile (_import_intrinsics)
_load_acquire = _cycles = _yield_cpu = _load_at = _store_at = _swap_if = _sgemm = None
_f32_pointer = _f32_from_bits = _carray = _epilogue = None
_cycles_per_second = 0.0  # 0: not measured yet; -1: the cycle counter cannot be used
_calibration_lock = threading.Lock()


def _intrinsics(numba):
    """The loops' primitives: atomic loads (`load_acquire(array)` of array[0], `load_at`: a store by another
    thread is seen, and the load is never hoisted out of a loop), `store_at` and `swap_if` (compare and
    swap), `cycles()` (the CPU's cycle counter, after a pause hint on x86), `yield_cpu()` (sched_yield) and
    `sgemm(address, slot)` (a call of cblas_sgemm with a slot's arguments)."""
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

    @intrinsic
    def load_at(typingctx, array, index):
        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            return builder.load_atomic(builder.gep(data, [args[1]]), "acquire", 8)
        return types.int64(array, index), codegen

    @intrinsic
    def store_at(typingctx, array, index, value):
        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            builder.store_atomic(args[2], builder.gep(data, [args[1]]), "release", 8)
            return context.get_dummy_value()
        return types.none(array, index, value), codegen

    @intrinsic
    def swap_if(typingctx, array, index, expected, new):
        """array[index] = new if it holds `expected` (atomically); whether it did."""
        def codegen(context, builder, signature, args):
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            result = builder.cmpxchg(builder.gep(data, [args[1]]), args[2], args[3], "acq_rel", "acquire")
            return builder.extract_value(result, 1)
        return types.boolean(array, index, expected, new), codegen

    @intrinsic
    def sgemm(typingctx, address, slot):
        """cblas_sgemm(order, trans a, trans b, m, n, k, 1, a, lda, b, ldb, 0, c, ldc) at `address` (64-bit
        integers), with the arguments in slot[1:13] (pointers as integers)."""
        def codegen(context, builder, signature, args):
            i32, i64, f32, pointer = ir.IntType(32), ir.IntType(64), ir.FloatType(), ir.IntType(8).as_pointer()
            kind = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, f32, pointer, i64, pointer, i64,
                                                   f32, pointer, i64])
            data = context.make_array(signature.args[1])(context, builder, args[1]).data
            field = [builder.load(builder.gep(data, [ir.Constant(i64, index)])) for index in range(1, 13)]
            order, trans_a, trans_b = (builder.trunc(value, i32) for value in field[:3])
            a, b, c = (builder.inttoptr(field[index], pointer) for index in (6, 8, 10))
            builder.call(builder.inttoptr(args[0], kind.as_pointer()),
                         [order, trans_a, trans_b, field[3], field[4], field[5], ir.Constant(f32, 1.0), a, field[7],
                          b, field[9], ir.Constant(f32, 0.0), c, field[11]])
            return context.get_dummy_value()
        return types.none(address, slot), codegen

    @intrinsic
    def f32_pointer(typingctx, address):
        """A float32 pointer from an address held as an integer."""
        kind = types.CPointer(types.float32)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(kind))
        return kind(address), codegen

    @intrinsic
    def f32_from_bits(typingctx, bits):
        """The float32 whose bits are the low 32 of `bits`."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.trunc(args[0], ir.IntType(32)), ir.FloatType())
        return types.float32(bits), codegen

    return load_acquire, cycles, yield_cpu, load_at, store_at, swap_if, sgemm, f32_pointer, f32_from_bits


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


# A product part's slot (int64[SLOT_SIZE]): its state, then cblas_sgemm's arguments (see `sgemm`), then its
# epilogue: kind, the address of the row vector or of the variable's value, and alpha's float32 bits.
IDLE, POSTED, TAKEN, DONE = 0, 1, 2, 3
SLOT_SIZE = 16
NO_EPILOGUE, ADD_ROW, ADD_ROW_RELU, DESCEND = 0, 1, 2, 3
NONE = (NO_EPILOGUE, 0, 0)


def _epilogue_rows(slot):
    """A part's epilogue over its block of rows (m by n, ldc apart): out + row (ADD_ROW), then ReLU as
    numpy's maximum(x, 0) (ADD_ROW_RELU: NaN passes, -0.0 gives 0.0), or value - out * alpha (DESCEND,
    gradient descent's two passes; the value's rows are ldc apart too). A row at a time, through arrays of
    that row alone: LLVM vectorizes these loops, not ones that index one array spanning every row (W3's
    388-row descent took ~85 us so, ~12 as numpy's passes take ~25)."""
    kind = slot[13]
    if kind == NO_EPILOGUE:
        return
    m, n, step = slot[4], slot[5], slot[12] * 4
    if kind == DESCEND:
        alpha = _f32_from_bits(slot[15])
        for i in range(m):
            out, value = _carray(_f32_pointer(slot[11] + i * step), n), _carray(_f32_pointer(slot[14] + i * step), n)
            for j in range(n):
                out[j] = value[j] - out[j] * alpha
        return
    row = _carray(_f32_pointer(slot[14]), n)
    zero = np.float32(0.0)
    for i in range(m):
        out = _carray(_f32_pointer(slot[11] + i * step), n)
        if kind == ADD_ROW:
            for j in range(n):
                out[j] = out[j] + row[j]
        else:
            for j in range(n):
                v = out[j] + row[j]
                out[j] = v if v > zero or v != v else zero


def _help_loop(posted, seen, slot, budget, address):
    """A helper's wait: run the product part posted in `slot` whenever one is (without the GIL), and return
    1 once posted[0] != seen (a job for Python), or -1 after `budget` cycles with neither."""
    start = _cycles()
    while True:
        if _load_acquire(posted) != seen:
            return 1
        if _load_at(slot, 0) == POSTED and _swap_if(slot, 0, POSTED, TAKEN):
            _sgemm(address, slot)
            _epilogue(slot)
            _store_at(slot, 0, DONE)
            start = _cycles()
            continue
        _yield_cpu()
        spent = _cycles() - start
        if spent >= budget or spent < 0:
            return -1


def _finish_loop(slot, address):
    """The poster's side: run the part itself if no helper took it yet (1), else wait until it is done (0)."""
    if _swap_if(slot, 0, POSTED, TAKEN):
        _sgemm(address, slot)
        _epilogue(slot)
        _store_at(slot, 0, DONE)
        return 1
    while _load_at(slot, 0) != DONE:
        _yield_cpu()
    return 0


def _addresses(a, b, out):
    """The three arrays' addresses: ~0.6 us compiled, where reading one through numpy's `ctypes` takes ~1.5."""
    return a.ctypes.data, b.ctypes.data, out.ctypes.data


def _addresses_signatures(types):
    matrix = types.Array(types.float32, 2, "A", readonly=True)  # any layout: a C or F array converts to it
    return {"float32": types.UniTuple(types.int64, 3)(matrix, matrix, matrix)}


def _signatures(types):
    return {"int64": types.int64(types.Array(types.int64, 1, "C"), types.int64, types.int64)}


def _help_signatures(types):
    slot = types.Array(types.int64, 1, "C")
    return {"int64": types.int64(slot, types.int64, slot, types.int64, types.int64)}


def _finish_signatures(types):
    return {"int64": types.int64(types.Array(types.int64, 1, "C"), types.int64)}


def _import_intrinsics():
    """Bind the intrinsics as module globals for the loops (numba reads them when it compiles)."""
    global _load_acquire, _cycles, _yield_cpu, _load_at, _store_at, _swap_if, _sgemm, _f32_pointer, _f32_from_bits
    global _carray, _epilogue
    numba = compiled._import()
    if numba is not None:
        (_load_acquire, _cycles, _yield_cpu, _load_at, _store_at, _swap_if, _sgemm, _f32_pointer,
         _f32_from_bits) = _intrinsics(numba)
        _carray = numba.carray
        if _epilogue is None:
            _epilogue = numba.njit(nogil=True, error_model="numpy", boundscheck=False)(_epilogue_rows)


class _SpinLoop(compiled.Loop):
    def _compile(self, numba, dtype: str) -> None:
        _import_intrinsics()
        super()._compile(numba, dtype)


SPIN = _SpinLoop(_spin_loop, _signatures)
HELP = _SpinLoop(_help_loop, _help_signatures)
FINISH = _SpinLoop(_finish_loop, _finish_signatures)
ADDRESSES = compiled.Loop(_addresses, _addresses_signatures)


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
    """Start compiling the loops on the compiler thread, and with `wait` wait for them, measure the counter
    and check the products; returns whether it can spin now."""
    for loop in (SPIN, HELP, FINISH):
        loop.get("int64")
    ADDRESSES.get("float32")
    if wait:
        for loop in (SPIN, HELP, FINISH):
            loop.wait("int64")
        ADDRESSES.wait("float32")
        products_available()
    return available()


_products: bool | None = None  # whether helpers run product parts: decided once, by products_available


def products_available() -> bool:
    """Whether helpers can run float32 product parts without the GIL: on x86 (whose stores are seen in
    order, so a part's arguments are in place before its state says POSTED), with the loops compiled,
    numpy's sgemm found (blas.sgemm_address) and giving numpy's bits on a test product."""
    global _products
    if _products is None:
        if not (_X86 and available() and HELP.get("int64") is not None and FINISH.get("int64") is not None):
            return False  # perhaps later: the loops may still be compiling
        _products = blas.sgemm_address() is not None and _same_bits_as_numpy()
    return _products


def _same_bits_as_numpy() -> bool:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((67, 131), np.float32), rng.standard_normal((131, 45), np.float32)
    row, value = rng.standard_normal(45, np.float32), rng.standard_normal((67, 45), np.float32)
    row[:3] = (np.nan, -np.inf, 0.0)  # NaN passes ReLU, -inf gives 0
    alpha = np.float32(0.37)
    cases = [(left, NONE, left @ b) for left in (a, np.asfortranarray(a), a[3:50])]
    cases += [(a, (ADD_ROW, row.ctypes.data, 0), a @ b + row),
              (a, (ADD_ROW_RELU, row.ctypes.data, 0), np.maximum(a @ b + row, np.float32(0))),
              (a, (DESCEND, value.ctypes.data, float32_bits(alpha)), value - (a @ b) * alpha)]
    for left, epilogue, expected in cases:
        out, slot = np.empty((left.shape[0], 45), np.float32), np.zeros(SLOT_SIZE, np.int64)
        if not fill(slot, left, b, out, epilogue):
            return False
        slot[0] = POSTED
        finish(slot)
        if not (np.array_equal(out, expected, equal_nan=True)
                and np.array_equal(np.signbit(out), np.signbit(expected))):
            return False
    return True


def float32_bits(value) -> int:
    """The bits of `value` as a float32, as an integer for a slot."""
    return int(np.asarray(value, np.float32).view(np.int32))


def _leading(array: np.ndarray, rows: int, columns: int) -> tuple[int, int] | None:
    """(CblasNoTrans or CblasTrans, leading dimension) for a float32 matrix of these strides, as numpy's
    matmul passes it to gemm; None where numpy would not use BLAS."""
    row, column = array.strides
    if column == 4 and row % 4 == 0 and row // 4 >= columns:
        return _NO_TRANS, row // 4
    if row == 4 and column % 4 == 0 and column // 4 >= rows:
        return _TRANS, column // 4
    return None


_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112  # cblas's enums


def fill(slot: np.ndarray, a: np.ndarray, b: np.ndarray, out: np.ndarray, epilogue: tuple = NONE) -> bool:
    """Put cblas_sgemm's arguments for out = a @ b into slot[1:13], as numpy's matmul would pass them, and the
    `epilogue` (kind, address, alpha's bits: see `_epilogue_rows`) into slot[13:16]; False
    (slot unchanged) where numpy would take another path: not float32 2-D, a side below 2 (gemv, dot), a
    layout BLAS cannot take, a product of a matrix and its own transpose (syrk), unaligned memory, an output
    that overlaps an operand."""
    return fill_parts((slot,), a, b, out, (slice(0, a.shape[0] if a.ndim == 2 else 0),), True, epilogue)


def fill_parts(slots, a: np.ndarray, b: np.ndarray, out: np.ndarray, cuts, by_rows: bool, epilogue: tuple = NONE,
               steps: tuple = (0, 0)) -> bool:
    """`fill` for the parts of one product cut into `cuts` (blocks of rows when `by_rows`, else of columns):
    slots[i] gets part i's arguments, as numpy's matmul would pass them for the views a[cut], b, out[cut]
    (or a, b[:, cut], out[:, cut]), and its epilogue, whose address moves `steps` (bytes a row, a column)
    with the block. The arrays are checked and their addresses read once, the blocks' found by adding
    offsets (reading an address costs ~1.5 us: per part, with the checks, this took ~11 us of W3's step).
    False, with no slot changed, wherever `fill` would refuse a part."""
    if not (a.dtype == b.dtype == out.dtype == np.float32 and a.ndim == b.ndim == out.ndim == 2):
        return False
    (m, k), n = a.shape, b.shape[1]
    if out.shape != (m, n) or not (a.flags.aligned and b.flags.aligned and out.flags.aligned):
        return False
    left, right, into = _leading(a, m, k), _leading(b, k, n), _leading(out, m, n)
    if left is None or right is None or into is None or into[0] != _NO_TRANS:
        return False
    if np.may_share_memory(out, a) or np.may_share_memory(out, b):  # numpy would copy first
        return False
    addresses = ADDRESSES.get("float32")
    start_a, start_b, start_out = (a.ctypes.data, b.ctypes.data, out.ctypes.data) if addresses is None else \
        addresses(a, b, out)
    if by_rows:
        steps_a, steps_b, steps_out, step_epilogue = a.strides[0], 0, out.strides[0], steps[0]
    else:
        steps_a, steps_b, steps_out, step_epilogue = 0, b.strides[1], out.strides[1], steps[1]
    fields = []
    for cut in cuts:
        start, stop = cut.start, cut.stop
        rows, columns = (stop - start, n) if by_rows else (m, stop - start)
        address_a, address_b = start_a + start * steps_a, start_b + start * steps_b
        if min(rows, k, columns) < 2:
            return False
        if address_a == address_b and rows == columns and left[0] != right[0]:
            return False
        fields.append((_ROW_MAJOR, left[0], right[0], rows, columns, k, address_a, left[1], address_b, right[1],
                       start_out + start * steps_out, into[1], epilogue[0], epilogue[1] + start * step_epilogue,
                       epilogue[2]))
    for slot, values in zip(slots, fields):
        slot[1:16] = values
    return True


def help_with_products(posted: np.ndarray, seen: int, slot: np.ndarray, seconds: float) -> bool:
    """A helper's spin: run the product part posted in `slot` whenever one is; True once posted[0] != seen,
    False after `seconds` with neither (or at once without the compiled loops)."""
    loop, budget = HELP.get("int64"), _cycles_for(seconds)
    if loop is None or budget is None or not products_available():
        return wait_for_change(posted, seen, seconds)
    return loop(posted, seen, slot, budget, blas.sgemm_address()) > 0


def finish(slot: np.ndarray) -> bool:
    """After posting `slot`: run its part here if no helper took it yet (True), else wait until it is done."""
    return FINISH.get("int64")(slot, blas.sgemm_address()) == 1


def available() -> bool:
    """Whether wait_for_change can spin now (it is compiled and its counter measured)."""
    spin = SPIN.get("int64")
    return spin is not None and _calibrated(spin) > 0


def wait_for_change(flags: np.ndarray, seen: int, seconds: float) -> bool:
    """Spin without the GIL until flags[0] != seen (True) or `seconds` pass (False). flags: a C-contiguous
    int64 array that other threads store to. False at once when no compiled spin is available."""
    spin, budget = SPIN.get("int64"), _cycles_for(seconds)
    return spin is not None and budget is not None and spin(flags, seen, budget) >= 0


def _cycles_for(seconds: float) -> int | None:
    """`seconds` in cycles of the counter the loops read; None while the spin is not compiled, or where the
    counter cannot be used."""
    spin = SPIN.get("int64")
    rate = _calibrated(spin) if spin is not None else -1
    return int(seconds * rate) if rate > 0 else None
