"""Ops that only the compiler creates: Feed (a value supplied by the run) and Fused (an elementwise chain)."""
from __future__ import annotations

from graphexec.ops.registry import NOT_DIFFERENTIABLE, attr, op


def _compiler_only(ctx, *args, **attrs):
    raise AssertionError("executed by the runtime directly")


Feed = op("Feed", shape=lambda args, attrs: None, dtype=lambda args, attrs: attrs["dtype"], kernel=_compiler_only,
          grad=NOT_DIFFERENTIABLE, stateful=True, compiler_only=True, is_feed=True, inputs=(),
          attrs={"dtype": attr("type")})
Fused = op("Fused", shape=lambda args, attrs: None, dtype=lambda args, attrs: attrs["program"][-1][3].dtype,
           kernel=_compiler_only, grad=NOT_DIFFERENTIABLE, compiler_only=True, is_fused=True)
