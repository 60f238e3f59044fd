"""tf.compat: `tf.compat.v1` is graphexec itself (which is TF1's API), so programs written against
`tensorflow.compat.v1` run unchanged after `import graphexec.compat.v1 as tf` or through
`tf.compat.v1.<name>`. Also TF's text helpers as_bytes / as_text / as_str."""
from __future__ import annotations

import sys

__all__ = ["as_bytes", "as_str", "as_text", "v1"]

# graphexec is in sys.modules while its __init__ imports this package, so no import cycle is needed.
v1 = sys.modules["graphexec"]
sys.modules[__name__ + ".v1"] = v1


def as_bytes(bytes_or_text, encoding="utf-8") -> bytes:
    if isinstance(bytes_or_text, bytearray):
        return bytes(bytes_or_text)
    if isinstance(bytes_or_text, str):
        return bytes_or_text.encode(encoding)
    if isinstance(bytes_or_text, bytes):
        return bytes_or_text
    raise TypeError(f"Expected binary or unicode string, got {bytes_or_text!r}")


def as_text(bytes_or_text, encoding="utf-8") -> str:
    if isinstance(bytes_or_text, str):
        return bytes_or_text
    if isinstance(bytes_or_text, bytes):
        return bytes_or_text.decode(encoding)
    raise TypeError(f"Expected binary or unicode string, got {bytes_or_text!r}")


as_str = as_text
