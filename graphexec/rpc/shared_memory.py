"""Shared memory for the direct link's requests from a client on the server's host (Linux).

Why: a run's large feeds otherwise cross a TCP connection, which on a 2-vCPU VM costs the client's
`sendmsg` ~140 us for W3's 401 KB and the server's reads more (bench/README.md, the Zen 4 machine kind).
Through memory both sides copy it once.

How: the server also listens on an abstract Unix socket (a name, no file; reachable only from its own
network namespace) and announces the name in CreateSession (`direct_socket`). A client connecting
there creates one region per connection, a memfd sealed against shrinking, and hands its descriptor
over with HELLO (SCM_RIGHTS). A request of at least MIN_BYTES is then written at the start of the
region and announced by a SHARED_RUN frame (its length); the server copies it out before it reads any
of it, so nothing it keeps points into memory the client can still write, and answers on the socket.

What the server checks, so that no client can hurt it through the region: the descriptor is a memfd
(only those take seals) sealed against shrinking (else truncating it under the server's mapping would
kill the server with SIGBUS on its next read), of 1 to REGION_BYTES bytes; a request's length must lie
within the region and the server's --max-message-bytes. Tokens are checked in HELLO as on TCP; the
socket is offered only where the server's direct link runs without TLS (a Unix socket carries no
certificates).
"""
from __future__ import annotations

import fcntl
import mmap
import os
import socket
import struct
import sys

import numpy as np

REGION_BYTES = 32 << 20  # larger requests go in a RUN frame on the socket (client/direct.py)
MIN_BYTES = 64 << 10  # smaller requests cost less on the socket than a copy and a frame
LENGTH = struct.Struct("<Q")  # a SHARED_RUN body after the API prefix: the request's length in the region
_SEALS = getattr(fcntl, "F_SEAL_SHRINK", 0) | getattr(fcntl, "F_SEAL_SEAL", 0)
# A copy whose destination lies 1 to 31 bytes past its source modulo 4 KiB is ~10x slower on processors
# where glibc's memcpy uses REP MOVSB (AMD Zen 3, glibc 2.36; graphexec.runtime.tuning), up to about
# 1 MiB, where memcpy changes methods. A large array numpy got from mmap starts 16 bytes past a page, and
# behind a request's header of 17 to 47 bytes it lands in that window: such copies go through a buffer
# half a page away instead (a 401 KB feed behind a 40-byte header: 206-245 -> 46-54 us).
ALIASING_BYTES = 32
PAGE = 4096
BOUNCE_MIN_BYTES, BOUNCE_MAX_BYTES = 16 << 10, 1 << 20  # below: a few us at worst, not worth the checks


def supported() -> bool:
    """Whether this process can create and pass regions: Linux with memfd seals and SCM_RIGHTS."""
    return (sys.platform.startswith("linux") and hasattr(os, "memfd_create") and hasattr(socket, "send_fds")
            and hasattr(fcntl, "F_ADD_SEALS"))


def address(name: str) -> str:
    """The abstract socket address of an announced name."""
    return "\0" + name


class Region:
    """A client's region: the memfd (until handed over) and its writable mapping."""

    def __init__(self, size: int = REGION_BYTES):
        self.fd = os.memfd_create("graphexec-requests", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.ftruncate(self.fd, size)  # sparse: only the pages a request writes take memory
            fcntl.fcntl(self.fd, fcntl.F_ADD_SEALS, _SEALS)
            self.map = mmap.mmap(self.fd, size)
        except OSError:
            os.close(self.fd)
            raise
        self.size = size
        self._bytes = np.frombuffer(self.map, np.uint8)
        self._address = self._bytes.ctypes.data
        self._bounce = np.empty(0, np.uint8)

    def write(self, buffers) -> int:
        """Write `buffers` one after another from the start; returns the bytes written."""
        at = 0
        for buffer in buffers:
            source = np.frombuffer(buffer, np.uint8)
            if (BOUNCE_MIN_BYTES <= source.size <= BOUNCE_MAX_BYTES
                    and 0 < (self._address + at - source.ctypes.data) % PAGE < ALIASING_BYTES):
                source = self._bounced(source)
            self._bytes[at:at + source.size] = source
            at += source.size
        return at

    def _bounced(self, source: np.ndarray) -> np.ndarray:
        """A copy of `source` half a page away from it modulo 4 KiB (so also from where it goes)."""
        if self._bounce.size < source.size + PAGE:
            self._bounce = np.empty(BOUNCE_MAX_BYTES + PAGE, np.uint8)
        start = (source.ctypes.data + PAGE // 2 - self._bounce.ctypes.data) % PAGE
        copy = self._bounce[start:start + source.size]
        copy[:] = source
        return copy

    def handed_over(self) -> None:
        """The server holds its own descriptor now; the mapping stays."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def close(self) -> None:
        self.handed_over()
        self._bytes = None  # (the mapping cannot close while an array exports it)
        self.map.close()


def attach(fds: list[int]) -> tuple[mmap.mmap | None, str]:
    """The server's read-only mapping of the region a client handed over, or (None, why not). Every
    descriptor received is closed."""
    try:
        if len(fds) != 1:
            return None, f"expected one descriptor, got {len(fds)}"
        try:
            seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
        except OSError:
            return None, "the descriptor is not a memfd"
        if not seals & fcntl.F_SEAL_SHRINK:
            return None, "the region is not sealed against shrinking"
        size = os.fstat(fds[0]).st_size
        if not 0 < size <= REGION_BYTES:
            return None, f"a region of {size} bytes (1 to {REGION_BYTES} allowed)"
        return mmap.mmap(fds[0], size, prot=mmap.PROT_READ), ""
    finally:
        for fd in fds:
            os.close(fd)
