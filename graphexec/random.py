"""tf.random: TF1's random namespace over graphexec.ops.random_ops."""
from graphexec import api_gaps
from graphexec.ops.random_ops import (get_seed, multinomial as categorical, random_normal as normal,
                                      random_shuffle as shuffle, random_uniform as uniform, set_random_seed,
                                      truncated_normal)

__all__ = ["categorical", "get_seed", "normal", "set_random_seed", "shuffle", "truncated_normal", "uniform"]

__getattr__ = api_gaps.missing_names("random", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
