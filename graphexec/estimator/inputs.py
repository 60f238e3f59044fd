"""tf.estimator.inputs.numpy_input_fn, and how an Estimator reads any input_fn.

graphexec has no input queues: numpy_input_fn's input_fn makes placeholders and registers a feeder in
the graph's INPUT_FEEDERS collection; the Estimator (or anyone, with `feeding_hook(graph)`) feeds each
run the next batch through a SessionRunHook. After `num_epochs` passes the feeder raises OutOfRangeError
as TF's queue does, which ends a MonitoredSession's `with` block quietly.

The input_fn contract (what Estimator.train/evaluate/predict accept from input_fn()):
  * a pair (features, labels) or features alone; features a tensor or a dict of tensors, labels a
    tensor, a dict of tensors or None;
  * a tf.data Dataset of such elements: the Estimator reads it through a one-shot iterator's get_next(),
    whose OutOfRangeError at the end of the data ends the loop the same way.
"""
from __future__ import annotations

import itertools

import numpy as np

from graphexec import dtypes, errors
from graphexec.framework import get_default_graph, name_scope
from graphexec.ops.array_ops import placeholder
from graphexec.train.session_run_hook import SessionRunArgs, SessionRunHook

INPUT_FEEDERS = "graphexec_input_feeders"
_SINGLE_KEY, _SINGLE_LABEL_KEY = "__x_key", "__y_key"


def _as_dict(value, what, single_key):
    if isinstance(value, dict):
        if not value:
            raise ValueError(f"{what} cannot be an empty dict.")
        return {key: np.asarray(array) for key, array in value.items()}
    return {single_key: np.asarray(value)}


class NumpyFeeder:
    """Batches of rows of numpy arrays for a set of placeholders, epoch after epoch (shuffled per epoch
    when asked), then OutOfRangeError. Batches run across epoch boundaries, as TF's queue does."""

    def __init__(self, arrays: dict, placeholders: dict, batch_size: int, num_epochs, shuffle: bool, seed):
        self._arrays, self._placeholders = arrays, placeholders
        self._batch_size, self._num_epochs = batch_size, num_epochs
        self._rows = len(next(iter(arrays.values())))
        self._shuffle, self._seed = shuffle, seed
        self.reset()

    def reset(self):
        rng = np.random.default_rng(self._seed)
        epochs = itertools.count() if self._num_epochs is None else range(self._num_epochs)
        self._order = itertools.chain.from_iterable(
            rng.permutation(self._rows) if self._shuffle else range(self._rows) for _ in epochs)

    def next_feed(self) -> dict:
        rows = np.fromiter(itertools.islice(self._order, self._batch_size), dtype=np.int64)
        if rows.size == 0:
            raise errors.OutOfRangeError(None, None, f"numpy_input_fn's input is exhausted after {self._num_epochs} "
                                                     f"epoch(s)")
        return {self._placeholders[key]: array[rows] for key, array in self._arrays.items()}


class FeedingHook(SessionRunHook):
    """Feeds every run with the next batch of each feeder; a new session starts the data again."""

    def __init__(self, feeders):
        self._feeders = list(feeders)

    def after_create_session(self, session, coord):
        for feeder in self._feeders:
            feeder.reset()

    def before_run(self, run_context):
        feed = {}
        for feeder in self._feeders:
            feed.update(feeder.next_feed())
        return SessionRunArgs(fetches=None, feed_dict=feed)


def feeding_hook(graph=None) -> FeedingHook | None:
    """The hook that feeds the graph's numpy_input_fn placeholders, or None when it has none."""
    feeders = (graph or get_default_graph()).get_collection(INPUT_FEEDERS)
    return FeedingHook(feeders) if feeders else None


def numpy_input_fn(x, y=None, batch_size=128, num_epochs=1, shuffle=None, queue_capacity=1000, num_threads=1):
    """An input_fn over numpy arrays: x a dict of arrays (features dict) or one array (features tensor),
    y an array, a dict of arrays or None. Each epoch visits every row once, in a fresh order when
    `shuffle` (seeded by the graph's tf_random_seed); num_epochs=None repeats forever."""
    if not isinstance(shuffle, bool):
        raise ValueError(f"shuffle must be provided and explicitly set as boolean (it is recommended to set it as "
                         f"True for training); got {shuffle}")
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"num_epochs must be > 0 or None, got {num_epochs}")
    features = _as_dict(x, "x", _SINGLE_KEY)
    labels = None if y is None else _as_dict(y, "y", _SINGLE_LABEL_KEY)
    overlap = set(features) & set(labels or ())
    if overlap:
        raise ValueError(f"{sorted(overlap)} duplicate keys are found in both x and y: keys of x and y must be unique.")
    arrays = {**features, **({} if labels is None else {("label", k): v for k, v in labels.items()})}
    lengths = {len(array) for array in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"Length of tensors in x and y is mismatched. All elements in x and y must have the same "
                         f"length. Lengths: {sorted(lengths)}")

    def input_fn():
        graph = get_default_graph()
        with name_scope("numpy_input"):
            placeholders = {key: placeholder(dtypes.as_dtype(array.dtype), [None, *array.shape[1:]],
                                             name=str(key[1] if isinstance(key, tuple) else key).strip("_"))
                            for key, array in arrays.items()}
        graph.add_to_collection(INPUT_FEEDERS, NumpyFeeder(arrays, placeholders, batch_size, num_epochs, shuffle,
                                                           graph.seed))
        feature_tensors = {key: placeholders[key] for key in features}
        if _SINGLE_KEY in feature_tensors:
            feature_tensors = feature_tensors[_SINGLE_KEY]
        if labels is None:
            return feature_tensors
        label_tensors = {key: placeholders[("label", key)] for key in labels}
        return feature_tensors, label_tensors.get(_SINGLE_LABEL_KEY, label_tensors)

    return input_fn
