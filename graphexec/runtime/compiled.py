"""Loops compiled by numba, when it is installed: kernels that pass over memory once where numpy's ufuncs
pass once per operation (an Adam step is 12 numpy passes; on W10's 3.2M-weight layer, 2 threads, Zen 4:
~7 ms as numpy blocks against ~3.5 ms as one compiled pass).

A loop does the same IEEE operations in the same order as the numpy kernel it stands for, in the same
dtype: numba without fastmath contracts no multiply-add and reorders nothing, so the results keep their
bits (tests/unit/test_compiled.py checks each loop against its numpy kernel). Loops take no GIL.

Nothing waits for the compiler. The first kernel that asks for a loop (`Loop.get`) gets None, takes its
numpy path, and starts the loop compiling on a background thread (~1 s a loop; numba's cache on disk makes
it ~0.1 s in later processes); later calls get the compiled loop.

The choice (`--compiled-kernels`, GRAPHEXEC_COMPILED_KERNELS): auto (numba when it imports), numba (every
loop compiled at start; an error when numba is missing), numpy (never).
"""
from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("graphexec.kernels")
CHOICES = ("auto", "numba", "numpy")
VARIABLE = "GRAPHEXEC_COMPILED_KERNELS"

_lock = threading.Lock()
_choice: str | None = None  # None: the variable is read at the first request
_numba = None  # the module, once imported; False when it cannot be
_loops: list[Loop] = []


class Loop:
    """A Python function compiled by numba, the first time it is asked for, for the signatures that
    `signatures(numba.types)` lists (`elementwise` builds the common ones). The function must be defined
    at a module's top level (numba's disk cache keys on its file)."""

    def __init__(self, function, signatures):
        self.function, self.signatures = function, signatures
        self.compiled = None
        self._started = False
        self._done = threading.Event()
        _loops.append(self)

    def get(self):
        """The compiled loop, or None while it is not ready (or never will be: see the module docstring)."""
        if choice() == "numpy":
            return None
        if self.compiled is not None:
            return self.compiled
        if not self._started:
            with _lock:
                if not self._started:
                    self._started = True
                    threading.Thread(target=self._compile, name="graphexec-compile", daemon=True).start()
        return None

    def wait(self, timeout: float | None = None):
        """The compiled loop once it is ready (None if it cannot be): for tests and a start-up warm-up."""
        self.get()
        self._done.wait(timeout)
        return self.compiled

    def _compile(self) -> None:
        try:
            numba = _import()
            if numba is not None:
                self.compiled = self._jit(numba, cache=True)
        except Exception as error:  # a numba that cannot compile leaves the numpy kernels, which are complete
            log.warning("numba could not compile %s (%s): its kernel stays on numpy", self.function.__name__,
                        error)
        finally:
            self._done.set()

    def _jit(self, numba, cache: bool):
        """error_model numpy: a division by zero gives inf or NaN as numpy's does, and only without the
        Python model's zero test does LLVM vectorize a loop that divides. numba's disk cache keys on the
        function's file, not on these options: a change here needs that file touched."""
        try:
            return numba.njit(self.signatures(numba.types), nogil=True, cache=cache, error_model="numpy",
                              boundscheck=False)(self.function)
        except RuntimeError as error:  # "cannot cache function ...": no writable cache folder
            if cache and "cannot cache" in str(error):
                return self._jit(numba, cache=False)
            raise


def elementwise(outputs: int, inputs: int, scalars: int):
    """Signatures of a loop over `outputs` C-contiguous 1-D arrays it writes, `inputs` it only reads
    (passed read-only: see `read_only`) and then `scalars`, all float32 or all float64."""
    def signatures(types) -> list:
        out = []
        for scalar in (types.float32, types.float64):
            written, read = types.Array(scalar, 1, "C"), types.Array(scalar, 1, "C", readonly=True)
            out.append(types.void(*[written] * outputs, *[read] * inputs, *[scalar] * scalars))
        return out

    return signatures


def read_only(array):
    """A read-only view of `array`: the type a loop's inputs are compiled for, whatever the caller holds
    (numba tells writable and read-only arrays apart, and a stored variable is read-only)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _import():
    global _numba
    with _lock:
        if _numba is None:
            try:
                import numba
            except Exception as error:  # ImportError, or a numba built against another numpy
                if _choice == "numba" or not isinstance(error, ModuleNotFoundError):
                    log.warning("numba failed to import (%s): compiled loops stay off", error)
                _numba = False
            else:
                _numba = numba
        return _numba or None


def choose(choice_: str, now: bool = False) -> str:
    """Set the choice (one of CHOICES); returns it in words. With `now` and numba chosen, import numba and
    compile the loops declared so far before returning (ImportError when it is missing)."""
    global _choice
    if choice_ not in CHOICES:
        raise ValueError(f"{VARIABLE} must be one of {', '.join(CHOICES)}, got {choice_!r}")
    _choice = choice_
    if now and choice_ == "numba":
        if _import() is None:
            raise ImportError("compiled kernels were asked for, but numba cannot be imported "
                              "(pip install 'graphexec[kernels]')")
        for loop in list(_loops):
            loop.wait()
    return describe()


def choice() -> str:
    if _choice is None:
        choose(os.environ.get(VARIABLE, "auto").strip().lower() or "auto")
    return _choice


def describe() -> str:
    if _choice == "numpy":
        return "numpy only"
    if _numba is None:
        return f"{_choice}: numba loaded at the first large update"
    return f"numba {_numba.__version__}" if _numba else "numpy only (numba did not import)"
