"""tf.data: input pipelines of TF1 graph mode (see docs/architecture.md, "Input pipelines")."""
from graphexec import api_gaps
from graphexec.data.dataset import AUTOTUNE, Dataset, TFRecordDataset
from graphexec.data.iterator import Iterator

__all__ = [
    "AUTOTUNE",
    "Dataset",
    "Iterator",
    "TFRecordDataset",
    "experimental",
    "make_initializable_iterator",
    "make_one_shot_iterator",
]


def make_one_shot_iterator(dataset):
    return dataset.make_one_shot_iterator()


def make_initializable_iterator(dataset, shared_name=None):
    return dataset.make_initializable_iterator()


class experimental:
    AUTOTUNE = AUTOTUNE


__getattr__ = api_gaps.missing_names("data", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
