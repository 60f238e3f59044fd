"""The compiler pipeline: the passes, in order, then planning. Set GRAPHEXEC_DEBUG=1 to verify the IR
after every pass.

Dead code is removed to a fixpoint: `prune` is listed once, and reruns after any pass in
`LEAVES_DEAD_CODE` that changed the program (prune is idempotent, so once is enough).
"""
from __future__ import annotations

import os

from graphexec import ir
from graphexec.compiler.cse import eliminate_common_subexpressions
from graphexec.compiler.feeds import bind_feeds, require_feeds
from graphexec.compiler.fold import fold_constants
from graphexec.compiler.functions import attach_functions
from graphexec.compiler.fuse import fuse_elementwise
from graphexec.compiler.fuse_conv import fuse_conv_epilogues
from graphexec.compiler.fuse_products import fuse_product_epilogues
from graphexec.compiler.plan import Plan, build_plan
from graphexec.compiler.pool_indices import keep_pool_indices
from graphexec.compiler.prune import prune
from graphexec.compiler.schedule import schedule_updates_early
from graphexec.compiler.simplify import simplify
from graphexec.compiler.verify import verify

PASSES = (
    bind_feeds,
    prune,
    require_feeds,  # after pruning: only placeholders the run needs must be fed
    fold_constants,
    simplify,  # before CSE: a collapsed chain leaves its many constants dead, so CSE never sees them
    eliminate_common_subexpressions,
    fuse_conv_epilogues,  # before elementwise fusion would take the bias and the Relu into a chain
    fuse_product_epilogues,  # likewise
    keep_pool_indices,
    fuse_elementwise,
    schedule_updates_early,  # last: only the order changes
)
# Passes whose rewrites can leave nodes without users (folded inputs, collapsed chains, merged duplicates).
LEAVES_DEAD_CODE = frozenset({fold_constants, simplify, eliminate_common_subexpressions})


def debug_enabled() -> bool:
    return os.environ.get("GRAPHEXEC_DEBUG", "") not in ("", "0")


def optimize(program: ir.Program, passes=None, check: bool | None = None) -> ir.Program:
    passes = PASSES if passes is None else passes
    check = debug_enabled() if check is None else check
    if check:
        verify(program, "input")
    for compiler_pass in passes:
        result = compiler_pass(program)
        if check:
            verify(result, compiler_pass.__name__)
        if compiler_pass in LEAVES_DEAD_CODE and result is not program:
            result = prune(result)
            if check:
                verify(result, f"prune after {compiler_pass.__name__}")
        program = result
    return program


def compile_program(program: ir.Program, graph_digest: str, check: bool | None = None, depth: int = 0) -> Plan:
    """The program's plan. Functional nodes (If, While) first get their functions' sub-plans, compiled
    here the same way, before pruning drops the function bodies from the outer program."""
    def compile_function(sub: ir.Program, name: str) -> Plan:
        return compile_program(sub, f"{graph_digest}/{name}", check, depth + 1)

    program = attach_functions(program, compile_function, depth)
    return build_plan(optimize(program, check=check), graph_digest)
