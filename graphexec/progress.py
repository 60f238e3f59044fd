"""Progress bars (tqdm) for long work: sess.stream over a sized input, and saving or restoring a large
checkpoint. They go to stderr, only when it is a terminal; GRAPHEXEC_PROGRESS=0 turns them off and
GRAPHEXEC_PROGRESS=1 shows them even when stderr is not a terminal (a log file, a notebook)."""
from __future__ import annotations

import importlib
import os
import sys

OFF, ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")


def __getattr__(name: str):
    """`tqdm` (the class) loads with the first bar shown (PEP 562), not with graphexec: importing tqdm costs
    about as much as a tenth of `import graphexec` (it reads its version from the installed package's
    metadata), and bars are drawn only for a person watching."""
    if name != "tqdm":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = globals()[name] = importlib.import_module("tqdm").tqdm
    return value


class SilentBar:
    """What bar() gives when no bar is shown: the tqdm methods graphexec calls, doing nothing."""

    def update(self, n: float = 1) -> None:
        pass

    def reset(self, total: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> SilentBar:
        return self

    def __exit__(self, *exc) -> None:
        pass


def enabled() -> bool:
    setting = os.environ.get("GRAPHEXEC_PROGRESS", "").strip().lower()
    if setting in OFF:
        return False
    if setting in ON:
        return True
    return sys.stderr is not None and sys.stderr.isatty()


def bar(total: float | None, desc: str, unit: str = "it", unit_scale: bool = False, shown: bool = True):
    """A tqdm bar on stderr; a SilentBar when progress is off or not `shown` (work too small to deserve
    one). It disappears once closed."""
    if not (shown and enabled()):
        return SilentBar()
    return sys.modules[__name__].tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                                      leave=False, dynamic_ncols=True)


def length(iterable) -> int | None:
    """len(iterable), or None for an iterator or generator (no bar: its total is unknown)."""
    try:
        return len(iterable)
    except TypeError:
        return None


def track(iterable, total: int | None, desc: str):
    """`iterable`, counting its items on a bar when progress is on and `total` is known."""
    if total is None or not enabled():
        return iterable
    return _counted(iterable, total, desc)


def _counted(iterable, total, desc):
    with bar(total, desc) as progress:
        for item in iterable:
            yield item
            progress.update(1)
