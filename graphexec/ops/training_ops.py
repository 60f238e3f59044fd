"""Optimizer updates as stateful graph ops (TF's ApplyAdam family).

Each op names its variable in the `var` attr and the optimizer's slot variables (Adam's m and v,
momentum's accumulator...) in `slots`, reads them from the run's variable store (`ctx.variables`,
keyed by name: the session's dict or the server's store), writes the new values back and outputs
the variable's new value. Inputs are the gradient and the hyperparameters as scalar tensors (so a
learning rate can be a placeholder or a decayed tensor). The update formulas are TF's kernels'.

A new value never overwrites the committed one (a run that fails later must leave it untouched), but
the common optimizers compute it without allocating: into the buffer that held the value before the
committed one (`ctx.spares`, filled by the worker after each commit), once nothing references that
buffer any more (`workspace.reusable`). Operations keep TF's order, so results are bit-identical.

Large variables are updated a block at a time (`_blockwise`): every operation of the update runs over
one block while it is in the cache, so a dense layer's Adam step reads and writes memory about once per
operand instead of once per operation (Adam on W10's 3.2M-weight layer: 33-38 -> 20-23 ms a step on a
2-vCPU machine), and groups of blocks run on the intra-op threads (7.1 -> 4.8 ms on another day). Each
element still goes through the same operations in the same order.

With numba installed, momentum's, Adam's and RMSProp's updates of 4096 elements or more are one compiled
pass instead (the `*_loop` functions below, runtime/compiled.py): the same operations in the same order,
so the same bits (W10's Adam step, 3.2M weights: ~6 -> ~3.3 ms).
"""
from __future__ import annotations

import numpy as np

from graphexec.ops import interruptible, rules, workspace
from graphexec.ops.registry import NOT_DIFFERENTIABLE, Aval, ShapeError, attr, op
from graphexec.runtime import compiled, intra_op, streamed_stores


def _write(ctx, name, value):
    """Store a freshly computed array; fetches copy it, so nobody can modify the stored value."""
    if ctx.xp is np:
        value.setflags(write=False)
    ctx.variables[name] = value
    return value


def _read(ctx, var, grad, dtype, shape):
    value = ctx.read_variable(var, dtype, shape)
    if grad.shape != value.shape:
        raise ValueError(f"gradient of shape {list(grad.shape)} does not match variable '{var}' of shape "
                         f"{list(value.shape)}")
    return value


def _buffer(ctx, name, like):
    """A writable array for `name`'s new value, shaped like `like`: its spare buffer when nothing else
    references it any more and it starts on a cache line, else a new one (that does).

    Why the cache line: a variable's first value (an initializer's numpy array) starts 16 or 32 bytes
    past one, and as a spare it was the output of every other step, where Adam's streamed stores need
    all three outputs at the same offset in their lines (W10's 3.2M-weight update: 3.1-3.8 ms a step
    with aligned outputs, 5.2-6.1 on the other steps, Intel AVX-512, 4 Dec). Dropping such a spare once
    leaves two aligned buffers taking turns."""
    spares = ctx.spares
    if spares is not None:
        spare = spares.pop(name, None)
        if (spare is not None and workspace.reusable(spare, like)
                and spare.ctypes.data % workspace.ALIGNMENT == 0):
            spare.setflags(write=True)
            return spare
    if ctx.xp is np:  # on a cache line: Adam's streamed stores write whole lines (runtime/streamed_stores.py)
        return workspace.aligned_empty(like.shape, like.dtype)
    return ctx.xp.empty(like.shape, dtype=like.dtype)


# Elements per block: the ~8 float32 operands of an Adam block (4 MB) stay in the L3 cache, and the
# 12 numpy calls per block cost little beside the block's work. Adam on W10's 3.2M-weight layer, 2
# threads (Zen 4, 1 MB L2 a core, 1 Dec): 32K blocks 5.5-9.0 ms, 128K 4.8-5.1, 1M 5.4-6.9, 4M 9.6-10.3.
BLOCK_ELEMENTS = 131072


def _blockwise(body, *arrays) -> None:
    """`body(*blocks)` over consecutive blocks of the flattened `arrays` (all of one size), spread over
    the intra-op threads in groups of consecutive blocks. Arrays that `body` writes must be
    C-contiguous (so that their flat blocks are views)."""
    flat = [a.reshape(-1) for a in arrays]
    size = flat[0].size
    if size <= BLOCK_ELEMENTS:
        body(*flat)
        return
    starts = range(0, size, BLOCK_ELEMENTS)
    ways = intra_op.ways_for_elements(size)
    groups = intra_op.groups(len(starts), ways)

    def group(part):
        for start in starts[groups[part]]:
            stop = start + BLOCK_ELEMENTS
            body(*[f[start:stop] for f in flat])

    intra_op.run_timed((body.__code__, size), len(groups), group, ways)  # elementwise: the bits never change


# From this many elements Adam's compiled loop stores its results non-temporally (runtime/streamed_stores.py):
# 4 MB of float32 a buffer, three new buffers a step, are more than a core's L2 and its share of L3 keep
# until the next step reads them, so caching those writes only costs the reads before them.
STREAMED_MIN_ELEMENTS = 1 << 20


def _compiled_parts(loop, outputs, arrays, scalars, flags=()) -> bool:
    """`loop(*flat arrays, *scalars, *flags)` over contiguous parts of the flattened `arrays` (the first `outputs`
    written, the rest read) on the intra-op threads, where the loop applies (`compiled.loop_for`) and every
    scalar has the arrays' dtype (so it computes what numpy would); False, with nothing done, otherwise (the
    caller's numpy kernel runs)."""
    dtype = arrays[0].dtype
    if any(np.asarray(s).dtype != dtype for s in scalars):
        return False
    kernel = compiled.loop_for(loop, *arrays)
    if kernel is None:
        return False
    flat = [a.reshape(-1) for a in arrays[:outputs]] + [compiled.read_only(a.reshape(-1)) for a in arrays[outputs:]]
    scalars = [dtype.type(s) for s in scalars]
    size = flat[0].size
    ways = intra_op.ways_for_elements(size)
    parts = intra_op.split(size, intra_op.GROUPS_PER_THREAD * ways if ways > 1 else 1)
    intra_op.run_timed((loop.function.__code__, size), len(parts), lambda part: kernel(
        *[f[parts[part]] for f in flat], *scalars, *flags), ways)
    return True


def _fits(value, grad):
    """Whether the allocation-free path applies: same-typed contiguous numpy operands (else the plain
    expressions below, e.g. on CuPy)."""
    return type(value) is np.ndarray and type(grad) is np.ndarray and value.dtype == grad.dtype


# One-pass loops (runtime/compiled.py): each does its numpy kernel's operations in the same order.
# Gradient descent keeps numpy's two passes: one pass would save ~30 us a step on W3's 200K weights, less
# than what the loop's compile (~1 s holding the GIL, on a background thread) costs the steps it overlaps.
def _momentum_loop(accum, new, old, grad, value, lr, momentum):
    for i in range(new.size):
        a = old[i] * momentum + grad[i]
        accum[i] = a
        new[i] = value[i] - a * lr


def _adam_loop(new_m, new_v, new, m, v, grad, value, keep_m, keep_v, epsilon, lr_t, streamed):
    # With `streamed` (a large update) and the outputs' lines at the same offsets, whole lines go through
    # _adam_line (runtime/streamed_stores.py: the same operations, stored non-temporally); the elements
    # before the first line and after the last take the plain loop.
    n, width = new.size, 64 // new.itemsize  # elements a line
    start = stop = n
    address = new.ctypes.data
    if streamed and (new_m.ctypes.data - address) % 64 == 0 and (new_v.ctypes.data - address) % 64 == 0:
        start = min(((-address) % 64) // new.itemsize, n)
        stop = start + (n - start) // width * width
    for at in range(start, stop, width):
        _adam_line(new_m, new_v, new, m, v, grad, value, at, keep_m, keep_v, epsilon, lr_t)
    for low, high in ((0, start), (stop, n)):  # the elements before the lines, then those after them
        for i in range(low, high):
            g = grad[i]
            a = (g - m[i]) * keep_m + m[i]
            b = (g * g - v[i]) * keep_v + v[i]
            new_m[i] = a
            new_v[i] = b
            new[i] = value[i] - a * lr_t / (np.sqrt(b) + epsilon)


def _rms_prop_loop(new_ms, mom, new, ms, old_mom, grad, value, keep, epsilon, lr, momentum):
    for i in range(new.size):
        g = grad[i]
        s = (g * g - ms[i]) * keep + ms[i]
        new_ms[i] = s
        step = g * lr / np.sqrt(s + epsilon) + old_mom[i] * momentum
        mom[i] = step
        new[i] = value[i] - step


MOMENTUM = compiled.Loop(_momentum_loop, compiled.elementwise(outputs=2, inputs=3, scalars=2))
class _AdamLoop(compiled.Loop):
    def _compile(self, numba, dtype: str) -> None:
        global _adam_line
        _adam_line = streamed_stores.adam_line(numba)  # a global of the loop's, read when it compiles
        super()._compile(numba, dtype)


def _adam_signatures(types):
    return {dtype: types.void(*signature.args, types.int64)
            for dtype, signature in compiled.elementwise(outputs=3, inputs=4, scalars=4)(types).items()}


_adam_line = None  # runtime/streamed_stores.adam_line, bound before ADAM compiles
ADAM = _AdamLoop(_adam_loop, _adam_signatures)
RMS_PROP = compiled.Loop(_rms_prop_loop, compiled.elementwise(outputs=3, inputs=4, scalars=4))


def _apply_gradient_descent(ctx, alpha, grad, var, slots, dtype, shape):
    value = _read(ctx, var, grad, dtype, shape)
    if not _fits(value, grad):
        return _write(ctx, var, value - alpha * grad)
    new = _buffer(ctx, var, value)

    def descend(new, grad, value):
        np.multiply(grad, alpha, out=new)
        np.subtract(value, new, out=new)

    _blockwise(descend, new, grad, value)
    return _write(ctx, var, new)


def _matmul_apply_gradient_descent(ctx, alpha, a, b, var, slots, dtype, shape, transpose_a, transpose_b, covers=()):
    """ApplyGradientDescent of the gradient a @ b (compiler/fuse_products.py): the product is written into the
    variable's new buffer and each block of it becomes value - block * alpha on the thread that computed it,
    while it is in the cache; no gradient array, and no pass of its own over memory."""
    a, b = interruptible.oriented(ctx.xp, a, b, transpose_a, transpose_b)
    value = ctx.read_variable(var, dtype, shape)
    if (a.shape[0], b.shape[1]) != value.shape:
        raise ValueError(f"gradient of shape {[a.shape[0], b.shape[1]]} does not match variable '{var}' of shape "
                         f"{list(value.shape)}")
    if not (_fits(value, a) and _fits(value, b) and value.ndim == 2):
        return _write(ctx, var, value - alpha * interruptible.matmul(ctx, a, b))
    new = _buffer(ctx, var, value)
    interruptible.matmul(ctx, a, b, out=new, epilogue=interruptible.Descend(value, alpha))
    return _write(ctx, var, new)


def _moving(new, old, grad, keep):
    """`old + (grad - old) * keep` (Adam's m, keep = 1 - decay) into `new`."""
    np.subtract(grad, old, out=new)
    new *= keep
    new += old


def _moving_square(new, old, grad, keep):
    """`old + (grad * grad - old) * keep` (Adam's v, RMSProp's ms) into `new`."""
    np.multiply(grad, grad, out=new)
    new -= old
    new *= keep
    new += old


def _apply_momentum(ctx, lr, grad, momentum, var, slots, dtype, shape, use_nesterov):
    value = _read(ctx, var, grad, dtype, shape)
    old = ctx.read_variable(slots[0])
    if use_nesterov or not _fits(value, grad) or old.dtype != grad.dtype:
        accum = _write(ctx, slots[0], old * momentum + grad)
        if use_nesterov:
            return _write(ctx, var, value - (grad * lr + accum * momentum * lr))
        return _write(ctx, var, value - lr * accum)
    accum, new = _buffer(ctx, slots[0], old), _buffer(ctx, var, value)
    if _compiled_parts(MOMENTUM, 2, (accum, new, old, grad, value), (lr, momentum)):
        _write(ctx, slots[0], accum)
        return _write(ctx, var, new)

    def step(accum, new, old, grad, value):
        np.multiply(old, momentum, out=accum)
        accum += grad
        np.multiply(accum, lr, out=new)
        np.subtract(value, new, out=new)

    _blockwise(step, accum, new, old, grad, value)
    _write(ctx, slots[0], accum)
    return _write(ctx, var, new)


def _apply_adam(ctx, beta1_power, beta2_power, lr, beta1, beta2, epsilon, grad, var, slots, dtype, shape):
    xp = ctx.xp
    value = _read(ctx, var, grad, dtype, shape)
    m, v = (ctx.read_variable(s) for s in slots)
    lr_t = lr * xp.sqrt(1 - beta2_power) / (1 - beta1_power)
    if not (_fits(value, grad) and m.dtype == v.dtype == grad.dtype):
        m = _write(ctx, slots[0], m + (grad - m) * (1 - beta1))
        v = _write(ctx, slots[1], v + (grad * grad - v) * (1 - beta2))
        return _write(ctx, var, value - lr_t * m / (xp.sqrt(v) + epsilon))
    new_m, new_v, new = _buffer(ctx, slots[0], m), _buffer(ctx, slots[1], v), _buffer(ctx, var, value)
    keep_m, keep_v = 1 - beta1, 1 - beta2
    streamed = int(value.size >= STREAMED_MIN_ELEMENTS)
    if _compiled_parts(ADAM, 3, (new_m, new_v, new, m, v, grad, value), (keep_m, keep_v, epsilon, lr_t), (streamed,)):
        _write(ctx, slots[0], new_m)
        _write(ctx, slots[1], new_v)
        return _write(ctx, var, new)
    denominator = workspace.scratch(np, value.shape, value.dtype)

    def step(new_m, new_v, new, denominator, m, v, grad, value):
        _moving(new_m, m, grad, keep_m)
        _moving_square(new_v, v, grad, keep_v)
        np.sqrt(new_v, out=denominator)
        denominator += epsilon
        np.multiply(new_m, lr_t, out=new)
        new /= denominator
        np.subtract(value, new, out=new)

    _blockwise(step, new_m, new_v, new, denominator, m, v, grad, value)
    _write(ctx, slots[0], new_m)
    _write(ctx, slots[1], new_v)
    return _write(ctx, var, new)


def _apply_rms_prop(ctx, lr, rho, momentum, epsilon, grad, var, slots, dtype, shape, centered):
    xp = ctx.xp
    value = _read(ctx, var, grad, dtype, shape)
    ms = ctx.read_variable(slots[0])
    old_mom = ctx.read_variable(slots[1])
    if not centered and _fits(value, grad) and ms.dtype == old_mom.dtype == grad.dtype:
        new_ms, mom, new = _buffer(ctx, slots[0], ms), _buffer(ctx, slots[1], old_mom), _buffer(ctx, var, value)
        keep = 1 - rho
        if _compiled_parts(RMS_PROP, 3, (new_ms, mom, new, ms, old_mom, grad, value), (keep, epsilon, lr, momentum)):
            _write(ctx, slots[0], new_ms)
            _write(ctx, slots[1], mom)
            return _write(ctx, var, new)
        scratch = workspace.scratch(np, value.shape, value.dtype)

        def step(new_ms, mom, new, scratch, ms, old_mom, grad, value):
            _moving_square(new_ms, ms, grad, keep)
            np.add(new_ms, epsilon, out=scratch)
            np.sqrt(scratch, out=scratch)
            np.multiply(grad, lr, out=mom)
            mom /= scratch
            mom += np.multiply(old_mom, momentum, out=scratch)
            np.subtract(value, mom, out=new)

        _blockwise(step, new_ms, mom, new, scratch, ms, old_mom, grad, value)
        _write(ctx, slots[0], new_ms)
        _write(ctx, slots[1], mom)
        return _write(ctx, var, new)
    ms = _write(ctx, slots[0], ms + (grad * grad - ms) * (1 - rho))
    if centered:
        mg = ctx.read_variable(slots[2])
        mg = _write(ctx, slots[2], mg + (grad - mg) * (1 - rho))
        denominator = (ms - mg * mg) + epsilon
    else:
        denominator = ms + epsilon
    mom = _write(ctx, slots[1], old_mom * momentum + lr * grad / xp.sqrt(denominator))
    return _write(ctx, var, value - mom)


def _apply_adagrad(ctx, lr, grad, var, slots, dtype, shape):
    xp = ctx.xp
    value = _read(ctx, var, grad, dtype, shape)
    accum = _write(ctx, slots[0], ctx.read_variable(slots[0]) + grad * grad)
    return _write(ctx, var, value - lr * grad / xp.sqrt(accum))


def _apply_adadelta(ctx, lr, rho, epsilon, grad, var, slots, dtype, shape):
    xp = ctx.xp
    value = _read(ctx, var, grad, dtype, shape)
    accum, accum_update = (ctx.read_variable(s) for s in slots)
    accum = _write(ctx, slots[0], accum * rho + grad * grad * (1 - rho))
    update = xp.sqrt(accum_update + epsilon) / xp.sqrt(accum + epsilon) * grad
    _write(ctx, slots[1], accum_update * rho + update * update * (1 - rho))
    return _write(ctx, var, value - update * lr)


def _apply_proximal_gradient_descent(ctx, alpha, l1, l2, grad, var, slots, dtype, shape):
    xp = ctx.xp
    moved = _read(ctx, var, grad, dtype, shape) - alpha * grad
    if l1 > 0:
        shrunk = xp.sign(moved) * xp.maximum(xp.abs(moved) - alpha * l1, 0)
        return _write(ctx, var, shrunk / (1 + alpha * l2))
    return _write(ctx, var, moved / (1 + alpha * l2))


def _apply_ftrl(ctx, grad, lr, l1, l2, l2_shrinkage, lr_power, var, slots, dtype, shape):
    """FTRL-Proximal as TF's ApplyFtrlV2 kernel (l2_shrinkage 0: ApplyFtrl)."""
    xp = ctx.xp
    value = _read(ctx, var, grad, dtype, shape)
    accum, linear = (ctx.read_variable(s) for s in slots)
    new_accum = accum + grad * grad
    if lr_power == -0.5:
        sigma = (xp.sqrt(new_accum) - xp.sqrt(accum)) / lr
        quadratic = xp.sqrt(new_accum) / lr + 2 * l2
    else:
        sigma = (new_accum ** -lr_power - accum ** -lr_power) / lr
        quadratic = new_accum ** -lr_power / lr + 2 * l2
    linear = _write(ctx, slots[1], linear + (grad + 2 * l2_shrinkage * value) - sigma * value)
    _write(ctx, slots[0], new_accum)
    shrunk = (l1 * xp.sign(linear) - linear) / quadratic
    return _write(ctx, var, xp.where(xp.abs(linear) > l1, shrunk, xp.zeros_like(shrunk)))


def _update_rule(grad_index: int):
    """Shape rule: scalar hyperparameters, a gradient shaped like the variable; outputs its new value."""
    def shape(args, attrs):
        declared = attrs["shape"].dims
        for i, a in enumerate(args):
            if i != grad_index and a.rank not in (None, 0):
                raise ShapeError(f"hyperparameter {i} must be a scalar, got shape {rules.fmt(a.shape)}")
        grad = args[grad_index].shape
        if declared is not None and grad is not None and (
                len(declared) != len(grad) or any(d is not None and g is not None and d != g
                                                  for d, g in zip(declared, grad))):
            raise ShapeError(f"gradient of shape {rules.fmt(grad)} does not match variable '{attrs['var']}' of shape "
                             f"{rules.fmt(declared)}")
        return declared if declared is not None else grad

    return shape


def _product_update_rule(args, attrs):
    """Shape rule of an update whose gradient is the product of inputs 1 and 2 (2-D, transposed as asked)."""
    if args[0].rank not in (None, 0):
        raise ShapeError(f"hyperparameter 0 must be a scalar, got shape {rules.fmt(args[0].shape)}")
    a, b = args[1].shape, args[2].shape
    declared = attrs["shape"].dims
    if a is None or b is None:
        return declared
    if len(a) != 2 or len(b) != 2:
        raise ShapeError(f"both factors must be matrices, got {rules.fmt(a)} and {rules.fmt(b)}")
    (m, k), (k2, n) = (a[::-1] if attrs["transpose_a"] else a), (b[::-1] if attrs["transpose_b"] else b)
    if k is not None and k2 is not None and k != k2:
        raise ShapeError(f"Dimensions must be equal, but are {k} and {k2}: the factors {rules.fmt(a)} and "
                         f"{rules.fmt(b)} of the gradient of '{attrs['var']}'")
    return _update_rule(1)([args[0], Aval(args[1].dtype, (m, n))], attrs)


def _update_dtype(args, attrs):
    for a in args:
        if a.dtype is not attrs["dtype"]:
            raise ShapeError(f"every input must be {attrs['dtype'].name} like variable '{attrs['var']}', "
                             f"got {', '.join(x.dtype.name for x in args)}")
    return attrs["dtype"]


# The updated variable (its store key, dtype and shape) and its slot variables' keys, in the order the kernel
# reads them.
UPDATE_ATTRS = {"var": attr("string"), "slots": attr("list(string)", ()), "dtype": attr("type"),
                "shape": attr("shape")}


def _declare(name, kernel, inputs, **attrs):
    return op(name, shape=_update_rule(inputs.index("grad")), dtype=_update_dtype, kernel=kernel, stateful=True,
              grad=NOT_DIFFERENTIABLE, inputs=inputs, attrs={**UPDATE_ATTRS, **attrs})


ApplyGradientDescent = _declare("ApplyGradientDescent", _apply_gradient_descent, ("alpha", "grad"))
MatMulApplyGradientDescent = op(
    "_MatMulApplyGradientDescent", shape=_product_update_rule, dtype=_update_dtype,
    kernel=_matmul_apply_gradient_descent, stateful=True, grad=NOT_DIFFERENTIABLE, compiler_only=True,
    inputs=("alpha", "a", "b"), attrs={**UPDATE_ATTRS, "transpose_a": attr("bool", False),
                                       "transpose_b": attr("bool", False), "covers": attr("list(string)")})
ApplyMomentum = _declare("ApplyMomentum", _apply_momentum, ("lr", "grad", "momentum"),
                         use_nesterov=attr("bool", False))
ApplyAdam = _declare("ApplyAdam", _apply_adam,
                     ("beta1_power", "beta2_power", "lr", "beta1", "beta2", "epsilon", "grad"))
ApplyRMSProp = _declare("ApplyRMSProp", _apply_rms_prop, ("lr", "rho", "momentum", "epsilon", "grad"),
                        centered=attr("bool", False))
ApplyAdagrad = _declare("ApplyAdagrad", _apply_adagrad, ("lr", "grad"))
ApplyAdadelta = _declare("ApplyAdadelta", _apply_adadelta, ("lr", "rho", "epsilon", "grad"))
ApplyProximalGradientDescent = _declare("ApplyProximalGradientDescent", _apply_proximal_gradient_descent,
                                        ("alpha", "l1", "l2", "grad"))
ApplyFtrlV2 = _declare("ApplyFtrlV2", _apply_ftrl, ("grad", "lr", "l1", "l2", "l2_shrinkage", "lr_power"))

UPDATE_OPS = frozenset({"ApplyGradientDescent", "ApplyMomentum", "ApplyAdam", "ApplyRMSProp", "ApplyAdagrad",
                        "ApplyAdadelta", "ApplyProximalGradientDescent", "ApplyFtrlV2", "_MatMulApplyGradientDescent"})


def touched_variables(attrs) -> tuple[str, ...]:
    """Names of every variable an update op reads and writes (its variable, then its slots)."""
    return (attrs["var"], *attrs.get("slots", ()))
