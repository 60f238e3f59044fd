"""Ops that only the compiler creates: Feed (a value supplied by the run) and Fused (an elementwise chain)."""
from __future__ import annotations

from graphexec.ops.registry import NOT_DIFFERENTIABLE, attr, op


def _compiler_only(ctx, *args, **attrs):
    raise AssertionError("executed by the runtime directly")


Feed = op("Feed", shape=lambda args, attrs: None, dtype=lambda args, attrs: attrs["dtype"], kernel=_compiler_only,
          grad=NOT_DIFFERENTIABLE, stateful=True, compiler_only=True, is_feed=True, inputs=(),
          attrs={"dtype": attr("type")})
# `body` is an ir.Subprogram over the inputs; `covers` names the graph nodes it replaced (for errors and traces)
Fused = op("Fused", shape=lambda args, attrs: attrs["body"].result_type.shape,
           dtype=lambda args, attrs: attrs["body"].result_type.dtype, kernel=_compiler_only, grad=NOT_DIFFERENTIABLE,
           compiler_only=True, is_fused=True, inputs=("*inputs",),
           attrs={"body": attr("any"), "covers": attr("list(string)")})
