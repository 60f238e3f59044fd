"""Process-wide settings of a serving process (`graphexec serve`, `graphexec worker`) and of a process
that holds a remote session.

BLAS threads (`--blas-threads`, default 1): a server runs many small products from several request
threads at once, and OpenBLAS's own worker threads then only compete with them and with gRPC's
threads for the cores; on a machine whose other cores are busy a product waits for threads that are
not scheduled (W3 on 2 cores with a busy neighbour: a step stalled for tens of ms). One thread per
product keeps a step's time what its arithmetic costs (set through graphexec.runtime.blas).

Freed memory (glibc only): by default glibc gives every freed array above its mmap threshold back to
the kernel, so a training step that allocates the same 800 KB arrays every time page-faults them in
again (~600 faults a W3 step). A server keeps arrays under MMAP_BYTES on its heap and trims the heap
only past KEEP_BYTES of free memory, in one arena that every thread shares (started with it: see
`arena_tunables`). A session's process does the same when it opens its first
session. Remote: every large answer is a new buffer (W2's 64 MiB: ~10,000 page faults a run, 30 of
the client's 58 ms of system time; 1,430 -> 1,829 MB/s). In process: every step's arrays are (a fused
chain over 1M elements 4.0 -> 1.2 ms, W3 1.31 -> 1.10-1.18 ms a step). An explicit MALLOC_*_ setting
in the environment wins.

Memory copies (glibc on AMD processors with fast short REP MOVSB): glibc's memcpy copies mid-sized
buffers with REP MOVSB there, which is 10x slower when the destination lies 1 to 31 bytes past the
source modulo 4 KiB (401 KB: 145-250 us against 12-25 us; 8-64 KB: 7-15x; Zen 3, glibc 2.36), and no
faster otherwise. A server's copies land where its allocator put them, so now and then a program whose
buffers line up so pays that on every step (W3 itself measured the same within noise either way). A
server started from the command line starts over with `glibc.cpu.x86_rep_movsb_threshold` raised past
any copy (`copy_tunables`), so memcpy takes its vector loop; an explicit setting of it in
GLIBC_TUNABLES wins.
"""
from __future__ import annotations

import ctypes
import functools
import gc
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # mallopt's parameter numbers (malloc.h)
REP_MOVSB_TUNABLE = "glibc.cpu.x86_rep_movsb_threshold"
ARENA_TUNABLE = "glibc.malloc.arena_max"
NO_REP_MOVSB = 1 << 62  # bytes: above any copy (glibc accepts up to SIZE_MAX)
MMAP_BYTES = 128 << 20  # above the largest tensors commonly sent (W2: 64 MiB and a header)
KEEP_BYTES = 256 << 20


@functools.cache  # once per process: platform.libc_ver reads the interpreter's binary
def keep_freed_memory(one_arena: bool = False) -> bool:
    """Have glibc keep freed arrays for reuse (see the module docstring); whether it was set.

    `one_arena` (servers, before their threads start): every thread allocates from the main heap. A
    thread's own arena is at most 64 MiB, so a larger array in it is always a new mapping that the
    kernel zeroes page by page (W2's 64 MiB on `serve`: ~20% of its CPU in clear_page; with one arena
    the server's CPU per run fell from 67-79 to 53-60 ms). Request threads mostly hold the GIL
    anyway, so they rarely wait for each other's allocations (W4 unchanged within noise)."""
    if platform.libc_ver()[0] != "glibc" or any(k.startswith("MALLOC_") for k in os.environ):
        return False
    libc = ctypes.CDLL(None)
    if one_arena and not libc.mallopt(M_ARENA_MAX, 1):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))


_frozen = False  # whether this process froze its startup objects (a server: freeze_startup_objects)


def freeze_startup_objects() -> None:
    """Move every object that exists now (a server's modules, classes, functions: ~150K after its imports
    and compiles) into the collector's permanent generation, once a server is ready.

    Why: a full (oldest-generation) collection walks every tracked object and holds the GIL meanwhile. In a
    server that had run the benchmark's W1-W4, each took 45-53 ms, several times a minute under load,
    each stalling every request in flight; the first run of a new 2,001-node graph (W5) went from ~37 to
    ~80 ms when one fell inside it. Frozen objects are still freed when their last reference goes; only
    a reference cycle among them would stay (startup objects are rarely garbage)."""
    global _frozen
    gc.freeze()
    _frozen = True


def freeze_loaded_library() -> None:
    """In a server that froze its startup objects, freeze again once a large library loaded late (torch, at
    the first convolution: ~100K objects that live as long as the process): full collections walking them
    took 14-38 ms each, three times in a W10 run of 35 steps through `serve`. Objects of runs in flight
    at that moment are frozen too (freed as usual when dropped; a cycle among them would stay). An
    in-process session never froze anything, and leaves its user's collector alone."""
    if _frozen:
        gc.freeze()


def arena_tunables(environ=os.environ) -> dict[str, str]:
    """Environment changes that give a server one malloc arena from its start (glibc's
    `glibc.malloc.arena_max`, read when the process starts): {} where it does not apply (not glibc) or the
    environment says otherwise (the tunable, or any MALLOC_* variable, is set already).

    Why not only `keep_freed_memory(one_arena=True)`: glibc fixes its arena limit the first time a thread
    needs an arena, and a server's imports start threads (OpenBLAS's, gRPC's) before it can call mallopt.
    A request thread then got an arena of its own, whose heaps are at most 64 MB: W10's step outgrew the
    first, so a second was mapped and unmapped every step (1,438 page faults a step; W10 through `serve`
    63.2 ms a step against 59.3 in process, Intel AVX-512, 4 Dec)."""
    current = environ.get("GLIBC_TUNABLES", "")
    if (platform.libc_ver()[0] != "glibc" or ARENA_TUNABLE in current
            or any(k.startswith("MALLOC_") for k in environ)):
        return {}
    return _appended(current, f"{ARENA_TUNABLE}=1")


def copy_tunables(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """Environment changes that keep glibc's memcpy off REP MOVSB (see the module docstring): {} where it
    does not apply (not glibc, not an AMD processor with FSRM) or GLIBC_TUNABLES already sets it."""
    current = environ.get("GLIBC_TUNABLES", "")
    if platform.libc_ver()[0] != "glibc" or REP_MOVSB_TUNABLE in current:
        return {}
    fields = processor_fields(cpuinfo)
    if fields.get("vendor_id") != "AuthenticAMD" or "fsrm" not in fields.get("flags", "").split():
        return {}
    return _appended(current, f"{REP_MOVSB_TUNABLE}={NO_REP_MOVSB}")


def processor_fields(cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """The first processor's lines of /proc/cpuinfo as {field: value} ({} where it cannot be read)."""
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as info:
            first = info.read(1 << 16).split("\n\n", 1)[0]
    except OSError:
        return {}
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in fields.items()}


def server_tunables(environ=os.environ, cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """The environment changes a server re-executes itself with for glibc: `copy_tunables`, then
    `arena_tunables` on top of them (both go in GLIBC_TUNABLES)."""
    changes = copy_tunables(environ, cpuinfo)
    changes.update(arena_tunables({**environ, **changes}))
    return changes


def _appended(current: str, setting: str) -> dict[str, str]:
    return {"GLIBC_TUNABLES": f"{current}:{setting}" if current else setting}
