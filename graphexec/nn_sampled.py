"""tf.nn's embedding lookups and sampled losses (nce_loss, sampled_softmax_loss), as TF1 composes them.

A sharded embedding (a list of parameter tensors) is read as one table: with the "div" strategy ids are
contiguous per shard, so the table is their concatenation; with "mod" id i lives in shard i % n at row
i // n, so the table is the shards stacked side by side and flattened (shorter shards padded by a row
that no valid id reaches). The gradient is then the dense gradient of a gather.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import name_scope
from graphexec.ops.array_ops import expand_dims, identity, reshape, stop_gradient, zeros_like
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.indexing_ops import gather
from graphexec.ops.joining_ops import concat, stack
from graphexec.ops.math_ops import (abs, add, cast, equal, exp, log, log1p, matmul, maximum, minimum,  # noqa: A004
                                    multiply, rsqrt, subtract, where)
from graphexec.ops.random_ops import log_uniform_candidate_sampler
from graphexec.ops.reduction_ops import reduce_any, reduce_sum
from graphexec.ops.slicing_ops import pad, slice  # noqa: A004

__all__ = ["embedding_lookup", "nce_loss", "sampled_softmax_loss", "compute_accidental_hits"]


def _table(params, partition_strategy):
    if not isinstance(params, (list, tuple)):
        return convert_to_tensor(params)
    shards = [convert_to_tensor(p) for p in params]
    if len(shards) == 1:
        return shards[0]
    if partition_strategy == "div":
        return concat(shards, 0)
    if partition_strategy != "mod":
        raise ValueError(f"partition_strategy must be 'mod' or 'div', got {partition_strategy!r}")
    rows = [s.shape.dims[0] if s.shape.ndims else None for s in shards]
    if None in rows:
        raise ValueError("the 'mod' strategy needs the number of rows of every shard to be known")
    longest = max(rows)
    if min(rows) < longest - 1 or rows != sorted(rows, reverse=True):
        raise ValueError(f"shards of a 'mod' partition have sizes that differ by at most one, largest first; got "
                         f"{rows}")
    padded = [s if r == longest else pad(s, [[0, 1]] + [[0, 0]] * (s.shape.ndims - 1)) for s, r in zip(shards, rows)]
    width = [-1] + [int(d) for d in shards[0].shape.dims[1:]]
    return reshape(stack(padded, axis=1), width)


def embedding_lookup(params, ids, partition_strategy="mod", name=None, validate_indices=True, max_norm=None):
    """Rows `ids` of the embedding `params` (a tensor, or a list of shards split by `partition_strategy`).
    With `max_norm`, rows whose L2 norm is larger are scaled down to it."""
    with name_scope(name, "embedding_lookup") as scope:
        table = _table(params, partition_strategy)
        rows = gather(table, convert_to_tensor(ids))
        if max_norm is None:
            return identity(rows, name=scope)
        norms_squared = reduce_sum(multiply(rows, rows), axis=_row_axes(rows, ids), keepdims=True)
        ratio = multiply(max_norm, rsqrt(maximum(norms_squared, 1e-30)))
        return multiply(rows, minimum(ratio, 1.0), name=scope)


def _row_axes(rows, ids):
    """The axes of one embedding row in the gathered result (after the dims of ids)."""
    ids_rank = convert_to_tensor(ids).shape.ndims
    return list(range(ids_rank, rows.shape.ndims))


def compute_accidental_hits(true_classes, sampled_candidates, num_true, seed=None, name=None,
                            dtype=dtypes.float32):
    """The sampled candidates equal to one of a row's true classes, as a [batch, num_sampled] mask: the
    lowest float32 (-FLT_MAX, TF's weight) where they are, else 0 (graphexec's form of TF's
    (indices, ids, weights) triple, ready to add to the sampled logits)."""
    with name_scope(name, "compute_accidental_hits"):
        true_classes = cast(true_classes, dtypes.int64)
        sampled = cast(sampled_candidates, dtypes.int64)
        hits = reduce_any(equal(expand_dims(true_classes, -1), reshape(sampled, [1, 1, -1])), axis=1)
        zeros = zeros_like(cast(hits, dtype))
        return where(hits, add(zeros, float(np.finfo(np.float32).min)), zeros)


def _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true, sampled_values,
                    subtract_log_q, remove_accidental_hits, partition_strategy, seed):
    """(logits [batch, num_true + num_sampled], labels: 1 / num_true for the true classes, 0 for the sampled)."""
    inputs = convert_to_tensor(inputs)
    labels = cast(labels, dtypes.int64)
    labels_flat = reshape(labels, [-1])
    if sampled_values is None:
        sampled_values = log_uniform_candidate_sampler(labels, num_true, num_sampled, True, num_classes, seed=seed)
    sampled, true_expected, sampled_expected = (stop_gradient(convert_to_tensor(v)) for v in sampled_values)
    sampled = cast(sampled, dtypes.int64)
    true_count = reshape(emit("Size", labels_flat, out_type=dtypes.int32), [1])
    all_ids = concat([labels_flat, sampled], 0)
    all_w = embedding_lookup(weights, all_ids, partition_strategy)
    true_w = slice(all_w, [0, 0], concat([true_count, [-1]], 0))
    sampled_w = slice(all_w, concat([true_count, [0]], 0), [-1, -1])
    all_b = embedding_lookup(biases, all_ids, partition_strategy)
    true_b, sampled_b = slice(all_b, [0], true_count), slice(all_b, true_count, [-1])
    # each example's input dotted with the weights of its num_true classes
    dim = slice(emit("Shape", inputs, out_type=dtypes.int32), [1], [1])
    true_w = reshape(true_w, concat([[-1, num_true], dim], 0))
    true_logits = add(reduce_sum(multiply(expand_dims(inputs, 1), true_w), axis=2), reshape(true_b, [-1, num_true]))
    sampled_logits = add(matmul(inputs, sampled_w, transpose_b=True), sampled_b)
    if remove_accidental_hits:
        sampled_logits = add(sampled_logits, compute_accidental_hits(labels, sampled, num_true, dtype=inputs.dtype))
    if subtract_log_q:
        true_logits = subtract(true_logits, log(cast(true_expected, inputs.dtype)))
        sampled_logits = subtract(sampled_logits, log(cast(sampled_expected, inputs.dtype)))
    logits = concat([true_logits, sampled_logits], 1)
    targets = concat([zeros_like(true_logits) + 1.0 / num_true, zeros_like(sampled_logits)], 1)
    return logits, targets


def nce_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1, sampled_values=None,
             remove_accidental_hits=False, partition_strategy="mod", name="nce_loss", seed=None):
    """Noise-contrastive estimation loss per example: sigmoid cross-entropies of the true classes (label
    1 / num_true) and of `num_sampled` sampled classes (label 0), logits corrected by log Q."""
    with name_scope(name, "nce_loss"):
        logits, targets = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                                          sampled_values, True, remove_accidental_hits, partition_strategy, seed)
        # TF's stable sigmoid cross-entropy: max(x, 0) - x * z + log(1 + exp(-|x|))
        losses = add(subtract(emit("Relu", logits), multiply(logits, targets)), log1p(exp(-abs(logits))))
        return reduce_sum(losses, axis=1, name="sampled_losses")


def sampled_softmax_loss(weights, biases, labels, inputs, num_sampled, num_classes, num_true=1, sampled_values=None,
                         remove_accidental_hits=True, partition_strategy="mod", name="sampled_softmax_loss",
                         seed=None):
    """Softmax cross-entropy over the true classes and `num_sampled` sampled ones (logits corrected by
    log Q; sampled classes that are true classes removed), per example."""
    with name_scope(name, "sampled_softmax_loss"):
        logits, targets = _sampled_logits(weights, biases, labels, inputs, num_sampled, num_classes, num_true,
                                          sampled_values, True, remove_accidental_hits, partition_strategy, seed)
        return emit("SoftmaxCrossEntropyWithLogits", logits, stop_gradient(targets))[0]
