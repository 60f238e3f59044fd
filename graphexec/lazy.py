"""A package's names that load on first use (PEP 562): for names whose modules are costly to import
(grpc, tensorboardX, absl) and that many programs never touch."""
from __future__ import annotations

import importlib
from collections.abc import Callable


def attributes(namespace: dict, table: dict, missing: Callable | None = None) -> tuple[Callable, Callable]:
    """`__getattr__` and `__dir__` for the package whose globals are `namespace`. `table` maps a name to
    (module, attribute), attribute None for the module itself; a name loads once, then is a global.
    `missing(name)` answers other names (default: AttributeError)."""

    def __getattr__(name: str):
        if name not in table:
            if missing is not None:
                return missing(name)
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        module, attribute = table[name]
        value = importlib.import_module(module)
        value = namespace[name] = value if attribute is None else getattr(value, attribute)
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *table})

    return __getattr__, __dir__
