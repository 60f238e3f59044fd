"""Loops compiled by numba, when it is installed: kernels that pass over memory once where numpy's ufuncs
pass once per operation (an Adam step is 12 numpy passes; on W10's 3.2M-weight layer, 2 threads, Zen 4:
~7 ms as numpy blocks against ~3.5 ms as one compiled pass).

A loop does the same IEEE operations in the same order as the numpy kernel it stands for, in the same
dtype: numba without fastmath contracts no multiply-add and reorders nothing, so the results keep their
bits (tests/unit/test_compiled.py checks each loop against its numpy kernel). Loops take no GIL.

Nothing waits for the compiler. The first kernel that asks for a loop in a dtype (`Loop.get`) gets None,
takes its other path, and queues that signature for one background thread; later calls get the compiled
loop. Compiling holds the GIL in numba's Python parts (~1 s a signature; from numba's disk cache ~0.75 s
for the first, most of it importing numba, and little for the rest), so while it has work the thread
shortens the interpreter's switch interval to 0.5 ms: a kernel thread that wants the GIL back waits that
long at most, not 5 ms (W3 steps took 7.7 ms instead of 2 behind a compile at the default interval).

The choice (`--compiled-kernels`, GRAPHEXEC_COMPILED_KERNELS): auto (numba when it imports), numba (every
loop compiled at start; an error when numba is missing), numpy (never).
"""
from __future__ import annotations

import logging
import os
import queue
import sys
import threading

import numpy as np

log = logging.getLogger("graphexec.kernels")
CHOICES = ("auto", "numba", "numpy")
VARIABLE = "GRAPHEXEC_COMPILED_KERNELS"
COMPILING_SWITCH_INTERVAL_S = 0.0005

_lock = threading.Lock()
_choice: str | None = None  # None: the variable is read at the first request
_numba = None  # the module, once imported; False when it cannot be
_loops: list[Loop] = []
_queue: queue.SimpleQueue = queue.SimpleQueue()
_compiler: threading.Thread | None = None


class Loop:
    """A Python function compiled by numba for each dtype the first time it is asked for in it, with the
    signature that `signatures(numba.types)[dtype name]` gives (`elementwise` builds the common ones). The
    function must be defined at a module's top level (numba's disk cache keys on its file)."""

    def __init__(self, function, signatures):
        self.function, self.signatures = function, signatures
        self.compiled: dict[str, object] = {}  # dtype name -> the dispatcher, once that signature is compiled
        self._asked: dict[str, threading.Event] = {}
        _loops.append(self)

    def get(self, dtype: str):
        """The loop compiled for `dtype` (a numpy dtype name), or None while it is not (see the module
        docstring)."""
        if choice() == "numpy":
            return None
        kernel = self.compiled.get(dtype)
        if kernel is None and dtype not in self._asked:
            self._ask(dtype)
        return kernel

    def wait(self, dtype: str, timeout: float | None = None):
        """The loop compiled for `dtype` once it is (None if it cannot be): for tests and `choose`."""
        if self.get(dtype) is None and dtype in self._asked:
            self._asked[dtype].wait(timeout)
        return self.compiled.get(dtype)

    def _ask(self, dtype: str) -> None:
        global _compiler
        with _lock:
            if dtype in self._asked:
                return
            self._asked[dtype] = threading.Event()
            _queue.put((self, dtype))
            if _compiler is None:
                _compiler = threading.Thread(target=_compile_queued, name="graphexec-compile", daemon=True)
                _compiler.start()

    def _compile(self, numba, dtype: str) -> None:
        try:
            signature = self.signatures(numba.types)[dtype]
            dispatcher = self._jit(numba, signature, cache=True)
            dispatcher.disable_compile()  # another dtype's call must not compile in the caller's thread
            self.compiled[dtype] = dispatcher
        except Exception as error:  # a numba that cannot compile leaves the other kernels, which are complete
            log.warning("numba could not compile %s for %s (%s): its kernel stays on numpy",
                        self.function.__name__, dtype, error)

    def _jit(self, numba, signature, cache: bool):
        """error_model numpy: a division by zero gives inf or NaN as numpy's does, and only without the
        Python model's zero test does LLVM vectorize a loop that divides. numba's disk cache keys on the
        function's file, not on these options: a change here needs that file touched."""
        try:
            return numba.njit([signature], nogil=True, cache=cache, error_model="numpy",
                              boundscheck=False)(self.function)
        except RuntimeError as error:  # "cannot cache function ...": no writable cache folder
            if cache and "cannot cache" in str(error):
                return self._jit(numba, signature, cache=False)
            raise


def _compile_queued() -> None:
    """The compiler thread: every queued (loop, dtype), with a short switch interval while there are any."""
    while True:
        loop, dtype = _queue.get()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(min(interval, COMPILING_SWITCH_INTERVAL_S))
        try:
            while True:
                numba = _import()
                if numba is not None:
                    loop._compile(numba, dtype)
                loop._asked[dtype].set()
                try:
                    loop, dtype = _queue.get_nowait()
                except queue.Empty:
                    break
        finally:
            sys.setswitchinterval(interval)


def _after_fork_in_child() -> None:
    """A forked child has no compiler thread: asks it never answered are asked again by the next get."""
    global _compiler, _lock, _queue
    _compiler, _lock, _queue = None, threading.Lock(), queue.SimpleQueue()
    for loop in _loops:
        loop._asked = {dtype: asked for dtype, asked in loop._asked.items() if asked.is_set()}


if hasattr(os, "register_at_fork"):  # not on Windows, where clients may build graphs
    os.register_at_fork(after_in_child=_after_fork_in_child)


def elementwise(outputs: int, inputs: int, scalars: int):
    """Signatures of a loop over `outputs` C-contiguous 1-D arrays it writes, `inputs` it only reads
    (passed read-only: see `read_only`) and then `scalars`, all float32 or all float64."""
    def signatures(types) -> dict:
        out = {}
        for scalar in (types.float32, types.float64):
            written, read = types.Array(scalar, 1, "C"), types.Array(scalar, 1, "C", readonly=True)
            out[str(scalar)] = types.void(*[written] * outputs, *[read] * inputs, *[scalar] * scalars)
        return out

    return signatures


# Below this many elements a loop's call (~2-5 us to match its arguments) outweighs numpy's passes.
MIN_ELEMENTS = 4096


def loop_for(loop: Loop, *arrays):
    """`loop` compiled for the dtype of `arrays` where it applies: numpy float32 or float64 arrays of one
    dtype and shape, C order, MIN_ELEMENTS elements or more; else None (the caller's numpy kernel runs)."""
    first = arrays[0]
    if (type(first) is not np.ndarray or first.size < MIN_ELEMENTS or first.dtype.char not in "fd"
            or not first.flags.c_contiguous):
        return None
    for other in arrays[1:]:
        if (type(other) is not np.ndarray or other.dtype != first.dtype or other.shape != first.shape
                or not other.flags.c_contiguous):
            return None
    return loop.get(_FLOAT_NAMES[first.dtype.char])


_FLOAT_NAMES = {"f": "float32", "d": "float64"}  # numpy's dtype.name is computed in Python at each use (~3 us)


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
    compile every signature of the loops declared so far before returning (ImportError when numba is
    missing)."""
    global _choice
    if choice_ not in CHOICES:
        raise ValueError(f"{VARIABLE} must be one of {', '.join(CHOICES)}, got {choice_!r}")
    _choice = choice_
    if now and choice_ == "numba":
        numba = _import()
        if numba is None:
            raise ImportError("compiled kernels were asked for, but numba cannot be imported "
                              "(pip install 'graphexec[kernels]')")
        for loop in list(_loops):
            for dtype in loop.signatures(numba.types):
                loop.wait(dtype)
    return describe()


def choice() -> str:
    if _choice is None:
        choose(os.environ.get(VARIABLE, "auto").strip().lower() or "auto")
    return _choice


def describe() -> str:
    if _choice == "numpy":
        return "numpy only"
    if _numba is None:
        return f"{_choice}: numba loaded when a kernel first asks for a loop"
    return f"numba {_numba.__version__}" if _numba else "numpy only (numba did not import)"
