"""Adam's update of one cache line, written with non-temporal (streaming) stores: a numba intrinsic for the
compiled Adam loop (ops/training_ops.py).

Why: an update writes its new values into buffers that are not in the cache (a large variable's spare
buffers, ~13 MB each for W10's 3.2M-weight layer), and an ordinary store first reads each line it writes
(W10's Adam step moves ~10 arrays' worth of memory instead of the 7 it reads and writes). Non-temporal
stores of whole lines skip that read: on that layer, one thread, Zen 5: 1.86 -> 1.36 ms, two threads 1.60 ->
1.31. numba has no vector type, so the line's operations are written here in LLVM IR: the same IEEE
operations in the same order as the scalar loop, with no fast-math flag (nothing contracted into a
multiply-add, nothing reordered), so every lane has the scalar loop's bits. The stores say the line is
64-byte aligned: callers pass an index where the outputs' lines start.
"""
from __future__ import annotations

LINE_BYTES = 64


def adam_line(numba):
    """The intrinsic `adam_line(new_m, new_v, new, m, v, grad, value, at, keep_m, keep_v, epsilon, lr_t)`:
    the elements of one line from `at` (64 bytes of the arrays' dtype, float32 or float64) updated as
    training_ops._adam_loop does, the three outputs stored non-temporally."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def adam_line_intrinsic(typingctx, new_m, new_v, new, m, v, grad, value, at, keep_m, keep_v, epsilon, lr_t):
        scalar = new_m.dtype

        def codegen(context, builder, signature, args):
            element = context.get_value_type(scalar)
            lanes = LINE_BYTES // context.get_abi_sizeof(element)
            vector = ir.VectorType(element, lanes)

            def line(k):
                data = context.make_array(signature.args[k])(context, builder, args[k]).data
                return builder.bitcast(builder.gep(data, [args[7]]), vector.as_pointer())

            def splat(x):
                undefined = ir.Constant(vector, ir.Undefined)
                first = builder.insert_element(undefined, x, ir.Constant(ir.IntType(32), 0))
                return builder.shuffle_vector(first, undefined, ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                                            [0] * lanes))

            keep_m, keep_v, epsilon, lr_t = (splat(a) for a in args[8:12])
            m, v, g, value = (builder.load(line(k), align=context.get_abi_sizeof(element)) for k in (3, 4, 5, 6))
            a = builder.fadd(builder.fmul(builder.fsub(g, m), keep_m), m)
            b = builder.fadd(builder.fmul(builder.fsub(builder.fmul(g, g), v), keep_v), v)
            sqrt = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vector, [vector]),
                                                  f"llvm.sqrt.v{lanes}{'f32' if lanes == 16 else 'f64'}")
            new = builder.fsub(value, builder.fdiv(builder.fmul(a, lr_t), builder.fadd(builder.call(sqrt, [b]),
                                                                                       epsilon)))
            streaming = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
            for k, result in ((0, a), (1, b), (2, new)):
                builder.store(result, line(k), align=LINE_BYTES).set_metadata("nontemporal", streaming)
            return context.get_dummy_value()

        return types.none(new_m, new_v, new, m, v, grad, value, at, keep_m, keep_v, epsilon, lr_t), codegen

    return adam_line_intrinsic
