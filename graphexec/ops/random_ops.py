"""Random tensors (random_normal, random_uniform, truncated_normal) with TF1's seed semantics.

An op's `seed`/`seed2` attrs come from the graph seed (tf.set_random_seed) and the op seed:
both given, or only the graph seed (the op seed then derives from the graph's op count), make the
sequence reproducible across sessions and processes; neither makes it nondeterministic. Each run
draws the next numbers from a numpy Generator kept per node in the session's `ctx.rngs`. Numbers are
generated on the host and then moved, so CPU and GPU runs produce the same values.
"""
from __future__ import annotations

import numpy as np

from graphexec import dtypes
from graphexec.framework import Tensor, apply_op, get_default_graph, name_scope
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops import math_ops
from graphexec.ops.shape_inputs import (check_index_dtype, dims_shape, host_ints, int_tensor, is_tensorlike,
                                        with_known_elements)
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op

DEFAULT_GRAPH_SEED = 87654321  # TF's: used when only the op seed is set
_MAXINT32 = 2**31 - 1
TRUNCATE_AT = 2.0  # truncated_normal redraws values more than two standard deviations from the mean


def set_random_seed(seed):
    """The graph-level seed: makes every random op of the default graph reproducible."""
    get_default_graph().seed = None if seed is None else int(seed)


def get_seed(op_seed):
    """(seed, seed2) attrs for a random op, as TF1's random_seed.get_seed; (0, 0) is nondeterministic."""
    graph = get_default_graph()
    if graph.seed is not None:
        seeds = (graph.seed % _MAXINT32, (graph._last_id if op_seed is None else int(op_seed)) % _MAXINT32)
    elif op_seed is not None:
        seeds = (DEFAULT_GRAPH_SEED, int(op_seed) % _MAXINT32)
    else:
        return 0, 0
    return (0, _MAXINT32) if seeds == (0, 0) else seeds  # (0, 0) would read as "unseeded"


# -- kernels -----------------------------------------------------------------------------------
def _generator(ctx, node, seed, seed2) -> np.random.Generator:
    rng = ctx.rngs.get(node)
    if rng is None:
        entropy = [seed, seed2] if (seed or seed2) else None  # None: fresh OS entropy
        rng = ctx.rngs[node] = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
    return rng


def _float_type(dtype):
    """numpy's Generator draws float32/float64 only; float16 is drawn as float32 and rounded."""
    return np.float64 if dtype is dtypes.float64 else np.float32


def _normal(ctx, shape, seed, seed2, dtype, mean, stddev, node):
    rng = _generator(ctx, node, seed, seed2)
    values = rng.standard_normal(host_ints(ctx, shape), dtype=_float_type(dtype))
    return ctx.from_host((values * stddev + mean).astype(dtype.np, copy=False))


def _truncated_normal(ctx, shape, seed, seed2, dtype, mean, stddev, node):
    rng = _generator(ctx, node, seed, seed2)
    values = rng.standard_normal(host_ints(ctx, shape), dtype=_float_type(dtype))
    outside = np.abs(values) > TRUNCATE_AT
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()), dtype=values.dtype)
        outside = np.abs(values) > TRUNCATE_AT
    return ctx.from_host((values * stddev + mean).astype(dtype.np, copy=False))


def _uniform(ctx, shape, seed, seed2, dtype, minval, maxval, node):
    rng = _generator(ctx, node, seed, seed2)
    values = rng.random(host_ints(ctx, shape), dtype=_float_type(dtype))
    return ctx.from_host((values * (maxval - minval) + minval).astype(dtype.np, copy=False))


def _uniform_int(ctx, shape, seed, seed2, dtype, minval, maxval, node):
    rng = _generator(ctx, node, seed, seed2)
    return ctx.from_host(rng.integers(minval, maxval, size=host_ints(ctx, shape), dtype=dtype.np))


def _orthogonal(ctx, shape, seed, seed2, dtype, gain, node):
    """A random orthogonal matrix (Q of the QR of a normal matrix, signs fixed by R's diagonal so it is
    uniformly distributed), reshaped to `shape`: rows = prod(shape[:-1]), columns = shape[-1]."""
    dims = host_ints(ctx, shape)
    rows, cols = int(np.prod(dims[:-1])), dims[-1]
    values = _generator(ctx, node, seed, seed2).standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(values)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return ctx.from_host((gain * q).reshape(dims).astype(dtype.np, copy=False))


def _orthogonal_shape(args, attrs):
    shape = _random_shape(args, attrs)
    if shape is not None and len(shape) < 2:
        raise ShapeError(f"The tensor to initialize must be at least two-dimensional, got shape {list(shape)}")
    return shape


# -- declarations ------------------------------------------------------------------------------
def _random_shape(args, attrs):
    check_index_dtype(args[0], "shape")
    return dims_shape(args[0], "shape")


def _dtype_among(*allowed):
    def rule(args, attrs):
        if attrs["dtype"] not in allowed:
            raise ShapeError(f"dtype {attrs['dtype'].name} is not supported; expected one of "
                             f"{', '.join(d.name for d in allowed)}")
        return attrs["dtype"]

    return rule


def _uniform_int_dtype(args, attrs):
    if not attrs["minval"] < attrs["maxval"]:
        raise ShapeError(f"Need minval < maxval: {attrs['minval']} >= {attrs['maxval']}")
    return _dtype_among(dtypes.int32, dtypes.int64)(args, attrs)


_FLOAT_DTYPE = _dtype_among(*dtypes.FLOATING)

# seed and seed2 both 0: nondeterministic (see get_seed). Kernels also take `node`, which the executor passes.
_SEED_ATTRS = {"seed": attr("int", 0), "seed2": attr("int", 0), "dtype": attr("type")}
_NORMAL_ATTRS = {**_SEED_ATTRS, "mean": attr("float", 0.0), "stddev": attr("float", 1.0)}


def _declare(name, kernel, dtype_rule, attrs):
    return op(name, shape=_random_shape, dtype=dtype_rule, kernel=kernel, stateful=True, grad=NOT_DIFFERENTIABLE,
              inputs=("shape",), attrs=attrs)


RandomNormal = _declare("RandomNormal", _normal, _FLOAT_DTYPE, _NORMAL_ATTRS)
TruncatedNormal = _declare("TruncatedNormal", _truncated_normal, _FLOAT_DTYPE, _NORMAL_ATTRS)
RandomUniform = _declare("RandomUniform", _uniform, _FLOAT_DTYPE,
                         {**_SEED_ATTRS, "minval": attr("float", 0.0), "maxval": attr("float", 1.0)})
RandomOrthogonal = op("RandomOrthogonal", shape=_orthogonal_shape, dtype=_FLOAT_DTYPE, kernel=_orthogonal,
                      stateful=True, grad=NOT_DIFFERENTIABLE, inputs=("shape",),
                      attrs={**_SEED_ATTRS, "gain": attr("float", 1.0)})  # tf.orthogonal_initializer's values
RandomUniformInt = _declare("RandomUniformInt", _uniform_int, _uniform_int_dtype,
                            {**_SEED_ATTRS, "minval": attr("int"), "maxval": attr("int")})


# -- Python API --------------------------------------------------------------------------------
def _random(op_type, shape, dtype, seed, params: dict, scope) -> Tensor:
    shape_tensor = int_tensor(shape, "shape")
    seed1, seed2 = get_seed(seed)
    attrs = {"seed": seed1, "seed2": seed2, "dtype": dtype, **params}
    return with_known_elements(apply_op(op_type, (shape_tensor,), attrs, scope).outputs[0], shape_tensor)


def _is_number(value) -> bool:
    return not is_tensorlike(value) and np.ndim(value) == 0


def _normal_api(op_type, default_name):
    def fn(shape, mean=0.0, stddev=1.0, dtype=dtypes.float32, seed=None, name=None):
        dtype = dtypes.as_dtype(dtype)
        with name_scope(name, default_name) as scope:
            if _is_number(mean) and _is_number(stddev):
                return _random(op_type, shape, dtype, seed, {"mean": float(mean), "stddev": float(stddev)}, scope)
            # tensor-valued parameters: draw standard values, then scale and shift them in the graph
            standard = _random(op_type, shape, dtype, seed, {"mean": 0.0, "stddev": 1.0}, None)
            return math_ops.add(math_ops.multiply(standard, stddev), mean, name=scope)

    fn.__name__ = default_name
    return fn


random_normal = _normal_api("RandomNormal", "random_normal")
truncated_normal = _normal_api("TruncatedNormal", "truncated_normal")


def random_orthogonal(shape, gain=1.0, dtype=dtypes.float32, seed=None, name=None):
    """Values of tf.orthogonal_initializer: orthonormal rows or columns of the flattened [rows, cols] shape."""
    dtype = dtypes.as_dtype(dtype)
    with name_scope(name, "random_orthogonal") as scope:
        return _random("RandomOrthogonal", shape, dtype, seed, {"gain": float(gain)}, scope)


def random_uniform(shape, minval=0, maxval=None, dtype=dtypes.float32, seed=None, name=None):
    """Uniform in [minval, maxval); maxval defaults to 1 for floats and is required for integers."""
    dtype = dtypes.as_dtype(dtype)
    with name_scope(name, "random_uniform") as scope:
        if dtype.is_integer:
            if maxval is None:
                raise ValueError(f"Must specify maxval for integer dtype {dtype.name}")
            if not (_is_number(minval) and _is_number(maxval)):
                raise TypeError("random_uniform with an integer dtype needs Python or numpy number bounds")
            return _random("RandomUniformInt", shape, dtype, seed, {"minval": int(minval), "maxval": int(maxval)},
                           scope)
        maxval = 1 if maxval is None else maxval
        if _is_number(minval) and _is_number(maxval):
            return _random("RandomUniform", shape, dtype, seed, {"minval": float(minval), "maxval": float(maxval)},
                           scope)
        unit = _random("RandomUniform", shape, dtype, seed, {"minval": 0.0, "maxval": 1.0}, None)
        return math_ops.add(math_ops.multiply(unit, math_ops.subtract(maxval, minval)), minval, name=scope)


__all__ = ["random_normal", "random_uniform", "truncated_normal", "set_random_seed", "get_seed", "random_shuffle",
           "multinomial"]


# -- RandomShuffle and Multinomial: randomness over a given tensor ---------------------------------------
def _shuffle(ctx, value, seed, seed2, node):
    rng = _generator(ctx, node, seed, seed2)
    if value.ndim == 0:
        return value
    order = rng.permutation(value.shape[0])
    return value[ctx.from_host(order)]


def _shuffle_shape(args, attrs):
    return args[0].shape


RandomShuffle = op("RandomShuffle", shape=_shuffle_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_shuffle,
                   stateful=True, grad=NOT_DIFFERENTIABLE, inputs=("value",),
                   attrs={"seed": attr("int", 0), "seed2": attr("int", 0)})


def random_shuffle(value, seed=None, name=None):
    """value with its first dimension randomly permuted."""
    seed1, seed2 = get_seed(seed)
    return apply_op("RandomShuffle", (convert_to_tensor(value),), {"seed": seed1, "seed2": seed2},
                    name or "RandomShuffle").outputs[0]


def _multinomial(ctx, logits, num_samples, seed, seed2, output_dtype, node):
    rng = _generator(ctx, node, seed, seed2)
    host = np.asarray(ctx.to_host(logits), dtype=np.float64)
    count = int(np.asarray(ctx.to_host(num_samples)))
    if count < 0:
        raise ValueError(f"num_samples should be nonnegative, got {count}")
    shifted = host - host.max(axis=1, keepdims=True)  # (softmax without overflow)
    probabilities = np.exp(shifted)
    cumulative = np.cumsum(probabilities / probabilities.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random((host.shape[0], count))
    samples = np.stack([np.searchsorted(c, d, side="right") for c, d in zip(cumulative, draws)]).reshape(draws.shape)
    samples = np.minimum(samples, host.shape[1] - 1)  # (a draw above a rounded-down last cumulative)
    return ctx.from_host(samples.astype(output_dtype.np))


def _multinomial_shape(args, attrs):
    logits, num = args
    check_index_dtype(num, "num_samples")
    if logits.rank not in (None, 2):
        raise ShapeError(f"logits should be a matrix, got shape {logits.shape}")
    count = None if num.value is None else int(num.value)
    return (None if logits.shape is None else logits.shape[0], count)


def _multinomial_dtype(args, attrs):
    if args[0].dtype not in dtypes.FLOATING:
        raise ShapeError(f"logits must be floating point, got {args[0].dtype.name}")
    if attrs["output_dtype"] not in (dtypes.int32, dtypes.int64):
        raise ShapeError(f"output_dtype must be int32 or int64, got {attrs['output_dtype'].name}")
    return attrs["output_dtype"]


Multinomial = op("Multinomial", shape=_multinomial_shape, dtype=_multinomial_dtype, kernel=_multinomial,
                 stateful=True, grad=NOT_DIFFERENTIABLE, inputs=("logits", "num_samples"),
                 attrs={"seed": attr("int", 0), "seed2": attr("int", 0), "output_dtype": attr("type", dtypes.int64)})


def multinomial(logits, num_samples, seed=None, name=None, output_dtype=None):
    """tf.multinomial / tf.random.categorical: num_samples class indices per row of unnormalized log-probs."""
    seed1, seed2 = get_seed(seed)
    num = num_samples if is_tensorlike(num_samples) else convert_to_tensor(int(num_samples), dtypes.int32)
    attrs = {"seed": seed1, "seed2": seed2, "output_dtype": dtypes.as_dtype(output_dtype or dtypes.int64)}
    return apply_op("Multinomial", (convert_to_tensor(logits), num), attrs, name or "Multinomial").outputs[0]


# -- candidate samplers (sampled_softmax_loss, nce_loss) ----------------------------------------------------
def _log_uniform_probability(classes, range_max):
    """P(k) = log((k + 2) / (k + 1)) / log(range_max + 1): Zipf-like, for classes sorted by frequency."""
    return np.log1p(1.0 / (classes + 1.0)) / np.log(range_max + 1.0)


def _log_uniform_draw(rng, count, range_max):
    return (np.exp(rng.random(count) * np.log(range_max + 1.0)).astype(np.int64) - 1) % range_max


_SAMPLERS = {  # name -> (draw(rng, count, range_max), probability(classes, range_max))
    "log_uniform": (_log_uniform_draw, _log_uniform_probability),
    "uniform": (lambda rng, count, range_max: rng.integers(0, range_max, count, dtype=np.int64),
                lambda classes, range_max: np.full(np.shape(classes), 1.0 / range_max)),
}


def _expected_count(probability, num_sampled, num_tries):
    """How often a class is expected among the draws: p * num_sampled, or, when sampling unique classes
    took num_tries draws, the chance it was drawn at least once, 1 - (1 - p) ** num_tries (as TF)."""
    if num_tries == num_sampled:
        return probability * num_sampled
    return -np.expm1(num_tries * np.log1p(-probability))


def _sample_candidates(ctx, true_classes, num_true, num_sampled, unique, range_max, seed, seed2, sampler, node):
    draw, probability = _SAMPLERS[sampler]
    rng = _generator(ctx, node, seed, seed2)
    if unique:
        if num_sampled > range_max:
            raise ValueError(f"cannot sample {num_sampled} unique classes out of range_max={range_max}")
        chosen, seen, tries = [], set(), 0
        while len(chosen) < num_sampled:
            for value in draw(rng, num_sampled - len(chosen), range_max).tolist():
                tries += 1
                if value not in seen:
                    seen.add(value)
                    chosen.append(value)
                    if len(chosen) == num_sampled:
                        break
        sampled = np.asarray(chosen, np.int64)
    else:
        sampled, tries = draw(rng, num_sampled, range_max), num_sampled
    true_classes = ctx.to_host(true_classes)
    true_expected = _expected_count(probability(true_classes.astype(np.float64), range_max), num_sampled, tries)
    sampled_expected = _expected_count(probability(sampled.astype(np.float64), range_max), num_sampled, tries)
    return (ctx.from_host(sampled), ctx.from_host(true_expected.astype(np.float32)),
            ctx.from_host(sampled_expected.astype(np.float32)))


def _sampler_shapes(args, attrs):
    classes = args[0]
    if classes.dtype is not dtypes.int64:
        raise ShapeError(f"true_classes must be int64, got {classes.dtype.name}")
    if classes.shape is not None and (len(classes.shape) != 2 or classes.shape[1] not in (None, attrs["num_true"])):
        raise ShapeError(f"true_classes must be a matrix of shape [batch, num_true={attrs['num_true']}], got "
                         f"{classes.shape}")
    if attrs["sampler"] not in _SAMPLERS:
        raise ShapeError(f"sampler must be one of {sorted(_SAMPLERS)}, got {attrs['sampler']!r}")
    if attrs["range_max"] < 1 or attrs["num_sampled"] < 1:
        raise ShapeError("range_max and num_sampled must be positive")
    batch = None if classes.shape is None else classes.shape[0]
    return [(attrs["num_sampled"],), (batch, attrs["num_true"]), (attrs["num_sampled"],)]


CandidateSampler = op(
    "CandidateSampler", shape=_sampler_shapes, kernel=_sample_candidates, stateful=True, grad=NOT_DIFFERENTIABLE,
    dtype=lambda args, attrs: [dtypes.int64, dtypes.float32, dtypes.float32], inputs=("true_classes",),
    attrs={"num_true": attr("int"), "num_sampled": attr("int"), "unique": attr("bool"), "range_max": attr("int"),
           "seed": attr("int", 0), "seed2": attr("int", 0), "sampler": attr("string", "log_uniform")})


def _candidate_sampler(sampler, default_name):
    def fn(true_classes, num_true, num_sampled, unique, range_max, seed=None, name=None):
        with name_scope(name, default_name) as scope:
            classes = math_ops.cast(true_classes, dtypes.int64)
            seed1, seed2 = get_seed(seed)
            attrs = {"num_true": int(num_true), "num_sampled": int(num_sampled), "unique": bool(unique),
                     "range_max": int(range_max), "seed": seed1, "seed2": seed2, "sampler": sampler}
            return tuple(apply_op("CandidateSampler", (classes,), attrs, scope).outputs)

    fn.__name__ = default_name
    fn.__doc__ = (f"tf.random.{default_name}: (sampled_candidates int64 [num_sampled], true_expected_count "
                  f"[batch, num_true], sampled_expected_count [num_sampled]) drawn from the {sampler} distribution "
                  f"over [0, range_max), without repeats when `unique`.")
    return fn


log_uniform_candidate_sampler = _candidate_sampler("log_uniform", "log_uniform_candidate_sampler")
uniform_candidate_sampler = _candidate_sampler("uniform", "uniform_candidate_sampler")


