"""tf.train.Example records (graphexec/v1/example.proto, TensorFlow's field numbers): the message
classes tf.train offers, and the values of one feature of a serialized Example, as numpy."""
from __future__ import annotations

import numpy as np

from graphexec.proto.v1.example_pb2 import (
    Example,
    Feature,
    FeatureBytesList,
    FeatureFloatList,
    FeatureInt64List,
    Features,
)

__all__ = ["Example", "Feature", "FeatureBytesList", "FeatureFloatList", "FeatureInt64List", "Features",
           "feature_values"]


def feature_values(serialized: bytes, key: str, kind: str, np_dtype):
    """The values of feature `key` (a `kind`: "bytes_list", "float_list" or "int64_list") of a serialized
    Example, or None when it lacks the feature. A feature of another kind is ValueError."""
    feature = Example.FromString(serialized).features.feature.get(key)
    if feature is None or feature.WhichOneof("kind") is None:
        return None
    found = feature.WhichOneof("kind")
    if found != kind:
        raise ValueError(f"feature {key!r} holds a {found}, but a {kind} was asked for")
    values = getattr(feature, kind).value
    if kind == "bytes_list":
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out
    return np.asarray(values, dtype=np_dtype)
