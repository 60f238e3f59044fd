"""Regenerate docs/api.md: every public name of graphexec's TF1 namespaces, what it is and the ops it
builds, and the TF1 names each namespace does not implement (from graphexec/tf1_names.json).
tests/unit/test_api_docs.py fails when the committed file is out of date.
Usage: python tools/gen_api_docs.py [--check]"""
from __future__ import annotations

import argparse
import ast
import inspect
import pathlib
import sys
import textwrap
import types

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import graphexec  # noqa: E402
from graphexec import api_gaps, dtypes  # noqa: E402
from graphexec.ops import registry  # noqa: E402

OUTPUT = ROOT / "docs" / "api.md"
HEADER = """\
# API reference (generated)

Every public name graphexec offers, per TF1 namespace, and what it is: for a function, the graph ops it
builds directly (each op is declared once in `graphexec/ops/*_ops.py`; "—" means it builds no op itself:
it calls other functions, or builds nothing), else the kind of object. After each namespace, the names TensorFlow 1 has there
(`tf.compat.v1` of TensorFlow 2.21, `graphexec/tf1_names.json`) that graphexec does not implement:
using one raises `NotInGraphexecError` (an `AttributeError`) that points here.

Regenerate with `python tools/gen_api_docs.py` (and the TF1 name list with `python tools/gen_tf1_names.py`).
"""


# TF1 namespaces graphexec offers as modules of its own (rendered when present; tf.flags is absl's).
NAMESPACES = ("app", "compat", "contrib", "data", "debugging", "errors", "flags", "gfile", "initializers", "io", "layers",
              "linalg", "logging", "losses", "math", "metrics", "nn", "python_io", "random", "sparse", "strings",
              "summary", "train", "contrib.layers", "contrib.rnn", "nn.rnn_cell")
FOREIGN = {"flags": "absl-py's `absl.flags` (as TF1's tf.flags): `DEFINE_string`, `DEFINE_integer`, `DEFINE_float`, "
                    "`DEFINE_boolean`, `FLAGS`..."}


def namespaces() -> list[tuple[str, types.ModuleType]]:
    """("", graphexec), then ("nn", graphexec.nn)...: the modules exposed under TF1 namespace names."""
    found = [("", graphexec)]
    for name in NAMESPACES:
        value = graphexec
        for part in name.split("."):
            value = getattr(value, part, None) if isinstance(value, types.ModuleType) else None  # lazy ones too
        if isinstance(value, types.ModuleType) and value is not graphexec:
            found.append((name, value))
    return found


def public_names(namespace: str, module: types.ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in dir(module) if not n.startswith("_")]  # dir(): with names loaded on first use
    out = []
    for name in names:
        value = getattr(module, name)
        if isinstance(value, types.ModuleType) and namespace == "" and name not in NAMESPACES:
            continue  # internal modules (graphexec.ops, graphexec.session...) are not API
        out.append(name)
    return sorted(set(out), key=lambda n: (n.lower(), n))


def _source_ops(function) -> set[str]:
    """Registry op names a function passes as string constants (apply_op("Relu", ...), emit("Sum", ...)),
    or holds in its closure (functions made by factories such as _normal_api("RandomNormal", ...))."""
    found = set()
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in registry.REGISTRY:
                found.add(node.value)
    for cell in function.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, str) and value in registry.REGISTRY:
            found.add(value)
    return found


def describe(namespace: str, value) -> str:
    if isinstance(value, types.ModuleType):
        return "namespace (below)" if value is not graphexec else "namespace: graphexec itself"
    if isinstance(value, dtypes.DType):
        return "dtype"
    if inspect.isclass(value):
        return "class" if not issubclass(value, BaseException) else "error class"
    if callable(value):
        function = inspect.unwrap(value)
        if isinstance(function, types.FunctionType):
            ops = sorted(_source_ops(function))
            return ", ".join(f"`{op}`" for op in ops) if ops else "—"
        return "function"
    return f"constant ({type(value).__name__})"


def render() -> str:
    lines = [HEADER]
    tf1 = api_gaps.tf1_names()
    for namespace, module in namespaces():
        title = "tf" + (f".{namespace}" if namespace else "")
        names = public_names(namespace, module)
        known = tf1.get(namespace, frozenset())
        lines.append(f"## `{title}`\n")
        if namespace in FOREIGN:
            lines.append(FOREIGN[namespace] + "\n")
            continue
        lines.append(f"`{module.__name__}`: {len(names)} names"
                     + (f", {len(known & set(names))} of TF1's {len(known)}." if known else "."))
        lines.append("")
        lines.append("| name | ops / kind | TF1 |")
        lines.append("| --- | --- | --- |")
        for name in names:
            lines.append(f"| `{name}` | {describe(namespace, getattr(module, name))} | {'yes' if name in known else ''} |")
        missing = sorted(known - set(names) - {n for n in known if n.startswith("_")})
        if missing:
            lines.append("")
            lines.append(f"Not implemented ({len(missing)}): " + ", ".join(f"`{n}`" for n in missing) + ".")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/api.md is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        sys.exit(0 if OUTPUT.read_text() == text else 1)
    OUTPUT.write_text(text)


if __name__ == "__main__":
    main()
