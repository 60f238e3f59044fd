"""Importing this module registers every op of every family (a decoding server must know them all,
not just those its own imports happened to define)."""
from graphexec.ops import (array_ops, control_ops, conv_ops, convert, debug_ops, indexing_ops,  # noqa: F401
                           internal_ops, joining_ops, linalg_ops, math_ops, nn_ops, pool_ops, random_ops, reduction_ops,
                           scan_ops, scatter_ops, segment_ops, slicing_ops, state_ops, string_ops, summary_ops,
                           training_ops)
from graphexec.ops import control_flow_ops, functional_ops, loop_ops, tensor_array_ops  # noqa: F401
from graphexec.ops import parsing_ops  # noqa: F401
from graphexec.ops.registry import REGISTRY, schema  # noqa: F401
