"""The package's layering, checked from the source (AST), not by eye:

* no import cycles among graphexec modules;
* no import inside a function body, except of optional dependencies that only some machines have.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "graphexec"
OPTIONAL_DEPENDENCIES = frozenset({"cupy", "cupyx", "torch", "numba", "llvmlite"})  # GPU workers; the kernels extra (llvmlite: numba's)


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _targets(module: str, path: Path, node) -> list[str]:
    """graphexec modules an import statement loads (a `from pkg import name` counts `pkg.name` when it is one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in MODULES]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    out = []
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            out.append(f"{base}.{alias.name}")
        elif base in MODULES:
            out.append(base)
    return out


def _imports():
    """(module -> modules it imports at module level, [(module, line, name) of imports inside functions])."""
    graph, inner = {}, []
    for module, path in MODULES.items():
        edges = graph[module] = set()

        def visit(node, in_function):
            for child in ast.iter_child_nodes(node):
                inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    if in_function:
                        is_import = isinstance(child, ast.Import)
                        names = [a.name for a in child.names] if is_import else [child.module or "."]
                        inner.append((module, child.lineno, names))
                    else:
                        edges.update(t for t in _targets(module, path, child) if t != module)
                visit(child, inside)

        visit(ast.parse(path.read_text(), str(path)), False)
    return graph, inner


def _cycles(graph: dict[str, set]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_walker_sees_the_package():
    graph, _ = _imports()
    assert "graphexec.framework" in graph["graphexec.session"]
    assert "graphexec.ops.registry" in graph["graphexec.framework"]


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph, _ = _imports()
    assert _cycles(graph) == []


def test_no_imports_inside_functions_except_optional_dependencies():
    _, inner = _imports()
    offending = [(module, line, names) for module, line, names in inner
                 if not all(name.split(".")[0] in OPTIONAL_DEPENDENCIES for name in names)]
    assert offending == []
