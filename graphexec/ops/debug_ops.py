"""Debugging ops: tf.Print, tf.print, tf.Assert (and the tf.assert_* checks), tf.check_numerics.

Printed text never goes to the stdout or stderr of the process that runs the kernel: kernels append it
to the run's `ctx.printed`, the run's result (or its error) carries it back, and the client's session
writes it to the user's sys.stderr in execution order. So a graph running on a server prints in the
user's terminal, as it would in-process.

The ops take their literal texts as a `template` attr: the texts around the tensor inputs (one more
text than tensors), so `tf.Print(x, ["x is", x])` needs no string tensors.
"""
from __future__ import annotations

import builtins
import sys

import numpy as np

from graphexec import dtypes, errors
from graphexec.framework import Operation, Tensor, apply_op, get_default_graph, name_scope
from graphexec.ops import rules
from graphexec.ops.convert import convert_to_tensor
from graphexec.ops.emit import emit
from graphexec.ops.registry import NOT_DIFFERENTIABLE, ShapeError, attr, op
from graphexec.ops.state_ops import VARIABLE_OPS
from graphexec.ops.summarize import summarize_v1, summarize_v2

# The public API (graphexec/__init__.py star-imports it as tf.<name>).
__all__ = ["Print", "print", "Assert", "check_numerics", "add_check_numerics_ops", "verify_tensor_all_finite"]

_TEMPLATE = {"template": attr("list(string)", ()), "summarize": attr("int", 3)}


def _filled(template, values, summarize, style) -> str:
    texts = list(template) or [""]
    if len(texts) != len(values) + 1:
        raise ValueError(f"a template of {len(texts)} texts cannot surround {len(values)} tensors")
    out = [texts[0]]
    for value, text in zip(values, texts[1:]):
        out.append(style(np.asarray(value), summarize))
        out.append(text)
    return "".join(out)


def _host(ctx, values) -> list:
    return [ctx.to_host(v) for v in values]


def _check_template(args, attrs, tensors: int) -> None:
    if attrs["template"] and len(attrs["template"]) != tensors + 1:
        raise ShapeError(f"template has {len(attrs['template'])} texts for {tensors} tensors (needs one more)")


# -- Print: identity that prints when it runs ----------------------------------------------------------------
def _print_shape(args, attrs):
    _check_template(args, attrs, len(args) - 1)
    return args[0].shape


def _print(ctx, x, *data, template, summarize, first_n, node):
    if first_n >= 0:
        key = ("Print", node)  # per-session count, kept with the session's other kernel state
        count = ctx.rngs.get(key, 0)
        if count >= first_n:
            return x
        ctx.rngs[key] = count + 1
    ctx.printed.append(_filled(template, _host(ctx, data), summarize, summarize_v1) + "\n")
    return x


PrintV1 = op("Print", shape=_print_shape, dtype=lambda args, attrs: args[0].dtype, kernel=_print, stateful=True,
            grad=lambda op, dy: [dy] + [None] * (len(op.inputs) - 1), inputs=("input", "*data"),
            attrs={**_TEMPLATE, "first_n": attr("int", -1)})


def _literal(item) -> bool:
    return isinstance(item, (str, bytes))


def _text(item) -> str:
    return item.decode() if isinstance(item, bytes) else item


def Print(input_, data, message=None, first_n=None, summarize=None, name=None):  # noqa: N802 - TF's name
    """tf.Print: `input_` unchanged; when it is computed, writes `message` and each item of `data` in
    brackets (`summarize` elements each, default 3) to the client's stderr, the first `first_n` times."""
    x = convert_to_tensor(input_)
    texts, tensors = [message or ""], []
    for item in data or []:
        if _literal(item):
            texts[-1] += f"[{_text(item)}]"
            continue
        texts[-1] += "["
        tensors.append(convert_to_tensor(item))
        texts.append("]")
    attrs = {"template": tuple(texts), "summarize": 3 if summarize is None else int(summarize),
             "first_n": -1 if first_n is None else int(first_n)}
    return apply_op("Print", (x, *tensors), attrs, name or "Print").outputs[0]


# -- tf.print: an op that prints -----------------------------------------------------------------------------
def _print_v2(ctx, *values, template, summarize):
    ctx.printed.append(_filled(template, _host(ctx, values), summarize, summarize_v2))
    return []


def _no_outputs(args, attrs):
    return []


PrintV2 = op("PrintV2", shape=lambda args, attrs: _check_template(args, attrs, len(args)) or [],
             dtype=_no_outputs, kernel=_print_v2, stateful=True, grad=NOT_DIFFERENTIABLE, inputs=("*inputs",),
             attrs=_TEMPLATE)


def _structure_texts(item, texts: list, tensors: list, top: bool) -> None:
    """Append `item` to the template: tensors become slots, Python values their str()/repr()."""
    if isinstance(item, (Tensor, np.ndarray)) or hasattr(item, "_as_tensor"):
        tensors.append(convert_to_tensor(item))
        texts.append("")
    elif isinstance(item, dict):
        texts[-1] += "{"
        for i, (key, value) in enumerate(item.items()):
            texts[-1] += (", " if i else "") + repr(key) + ": "
            _structure_texts(value, texts, tensors, False)
        texts[-1] += "}"
    elif isinstance(item, (list, builtins.tuple)):
        opening, closing = ("[", "]") if isinstance(item, list) else ("(", ")")
        texts[-1] += opening
        for i, value in enumerate(item):
            texts[-1] += ", " if i else ""
            _structure_texts(value, texts, tensors, False)
        texts[-1] += closing
    else:
        texts[-1] += str(item) if top or not isinstance(item, str) else repr(item)


def print(*inputs, **kwargs):  # noqa: A001 - TF's name
    """tf.print (TF1 graph mode): an op that writes `inputs` (tensors, Python values, nested lists and
    dicts of them) separated by `sep` and followed by `end` to the client's stderr when it runs. Run it
    with sess.run or as a control dependency."""
    output_stream = kwargs.pop("output_stream", sys.stderr)
    summarize = kwargs.pop("summarize", 3)
    sep, end, name = kwargs.pop("sep", " "), kwargs.pop("end", "\n"), kwargs.pop("name", None)
    if kwargs:
        raise ValueError(f"Unrecognized keyword arguments for tf.print: {sorted(kwargs)}")
    if output_stream is not sys.stderr and output_stream != "stderr":
        raise ValueError("graphexec's tf.print writes to the client's stderr only (output_stream=sys.stderr); got "
                         f"{output_stream!r}")
    texts, tensors = [""], []
    for i, item in enumerate(inputs):
        if i:
            texts[-1] += sep
        _structure_texts(item, texts, tensors, True)
    texts[-1] += end
    attrs = {"template": tuple(texts), "summarize": -1 if summarize is None else int(summarize)}
    return apply_op("PrintV2", tuple(tensors), attrs, name or "PrintV2")


# -- Assert ---------------------------------------------------------------------------------------------------
def _assert_shape(args, attrs):
    condition = args[0]
    if condition.dtype is not dtypes.bool:
        raise ShapeError(f"condition must be bool, got {condition.dtype.name}")
    if condition.shape is not None and condition.shape != ():
        raise ShapeError(f"condition must be a scalar, got shape {rules.fmt(condition.shape)}")
    _check_template(args, attrs, len(args) - 1)
    return []


def _assert(ctx, condition, *data, template, summarize):
    if not bool(ctx.to_host(condition)):
        text = _filled(template, _host(ctx, data), summarize, summarize_v1)
        raise errors.InvalidArgumentError(None, None, "assertion failed: " + text)
    return []


AssertOp = op("Assert", shape=_assert_shape, dtype=_no_outputs, kernel=_assert, stateful=True,
             grad=NOT_DIFFERENTIABLE, inputs=("condition", "*data"), attrs=_TEMPLATE)


def assert_texts(data) -> tuple[tuple, list]:
    """(template, tensors) for Assert's data: each item in brackets, items separated by spaces."""
    texts, tensors = [""], []
    for i, item in enumerate(data):
        texts[-1] += " [" if i else "["
        if _literal(item):
            texts[-1] += _text(item) + "]"
        else:
            tensors.append(convert_to_tensor(item))
            texts.append("]")
    return tuple(texts), tensors


def Assert(condition, data, summarize=None, name=None):  # noqa: N802 - TF's name
    """tf.Assert: an op that fails the run with InvalidArgumentError ("assertion failed: [data]...", the
    node and the line that built it) when the scalar bool `condition` is false."""
    condition = convert_to_tensor(condition)
    template, tensors = assert_texts(data)
    attrs = {"template": template, "summarize": 3 if summarize is None else int(summarize)}
    with name_scope(name, "Assert"):
        return apply_op("Assert", (condition, *tensors), attrs, "Assert")


# -- check_numerics -------------------------------------------------------------------------------------------
def _check_numerics(ctx, x, message):
    xp = ctx.xp
    nan, inf = bool(xp.isnan(x).any()), bool(xp.isinf(x).any())
    if nan or inf:
        what = "Inf and NaN" if nan and inf else ("NaN" if nan else "Inf")
        raise errors.InvalidArgumentError(None, None, f"{message} : Tensor had {what} values")
    return x


_GRADIENT_MESSAGE = "Not a number (NaN) or infinity (Inf) values detected in gradient. "

CheckNumerics = op(
    "CheckNumerics", shape=rules.unchanged, dtype=rules.same_dtype(*dtypes.FLOATING), kernel=_check_numerics,
    stateful=True, inputs=("tensor",), attrs={"message": attr("string")},
    grad=lambda op, dy: [emit("CheckNumerics", dy, message=_GRADIENT_MESSAGE + op.attrs["message"])])


def check_numerics(tensor, message, name=None):
    """`tensor` unchanged; the run fails with InvalidArgumentError ("message : Tensor had NaN values") when
    it holds a NaN or an infinity."""
    x = convert_to_tensor(tensor)
    return apply_op("CheckNumerics", (x,), {"message": str(message)}, name or "CheckNumerics").outputs[0]


def verify_tensor_all_finite(t=None, msg=None, name=None, x=None, message=None):
    """TF1's name for check_numerics (after the checks, the same tensor)."""
    t = x if t is None else t
    with name_scope(name, "VerifyFinite"):
        return check_numerics(t, message=message if msg is None else msg)


# Not checked: checks and printing themselves, and variable writes (TF1 skips them as ref-typed outputs;
# depending on an Assign would re-run the initializer with every check).
_UNCHECKED_OPS = frozenset({"CheckNumerics", "Assert", "Print", "PrintV2"}) | (VARIABLE_OPS - {"ReadVariable"})


def add_check_numerics_ops():
    """One op that checks every floating-point output of every op in the default graph (TF1's
    tf.add_check_numerics_ops): run it beside a training step to find the first NaN or Inf."""
    graph = get_default_graph()
    checks = []
    for operation in list(graph.get_operations()):
        if operation.type in _UNCHECKED_OPS or not operation.outputs:
            continue
        for output in operation.outputs:
            if output.dtype.is_floating:
                message = f"{operation.name}:{output.value_index}"
                checks.append(emit("CheckNumerics", output, message=message, name=f"{operation.name}/CheckNumerics"))
    return apply_op("NoOp", (), {}, "CheckNumerics", graph=graph) if not checks else _grouped(checks, graph)


def _grouped(tensors, graph) -> Operation:
    with graph.control_dependencies([t.op for t in tensors]):
        return apply_op("NoOp", (), {}, "CheckNumerics", graph=graph)
