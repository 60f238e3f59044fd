"""tf.strings: the string ops of graphexec.ops.string_ops under their TF1 tf.strings names."""
from graphexec import api_gaps
from graphexec.ops.string_ops import (as_string, length, lower, regex_replace, split, string_join as join,
                                      string_strip as strip, string_to_number as to_number, substr, upper)

__all__ = ["as_string", "join", "length", "lower", "regex_replace", "split", "strip", "substr", "to_number",
           "upper"]

__getattr__ = api_gaps.missing_names("strings", __name__)  # TF1 names graphexec lacks say so (see api_gaps)
