"""A client's shared-memory region (graphexec/rpc/shared_memory.py) holds exactly the bytes written, also
where the copy goes through the bounce buffer (destination 1 to 31 bytes past the source modulo 4 KiB)."""
import numpy as np
import pytest

from graphexec.rpc import shared_memory

pytestmark = pytest.mark.skipif(not shared_memory.supported(), reason="needs Linux memfd")


@pytest.mark.parametrize("size", [100, 64 << 10, 401408, (1 << 20) + 64])
def test_every_offset_between_source_and_region_writes_the_same_bytes(size):
    region = shared_memory.Region(size=4 << 20)
    try:
        rng = np.random.default_rng(size)
        backing = rng.integers(0, 256, size + 8192, dtype=np.uint8)
        page_start = (-backing.ctypes.data) % shared_memory.PAGE
        bounced = 0
        for shift in range(0, 64, 3):  # where in its page the source starts; the region's header is 40 bytes
            source = backing[page_start + shift:page_start + shift + size]
            header = bytes(range(40))
            gap = (region._bytes.ctypes.data + len(header) - source.ctypes.data) % shared_memory.PAGE
            bounced += (0 < gap < shared_memory.ALIASING_BYTES
                        and shared_memory.BOUNCE_MIN_BYTES <= size <= shared_memory.BOUNCE_MAX_BYTES)
            assert region.write([header, source, b"tail"]) == len(header) + size + 4
            written = bytes(region.map[:len(header) + size + 4])
            assert written == header + source.tobytes() + b"tail"
        middle = shared_memory.BOUNCE_MIN_BYTES <= size <= shared_memory.BOUNCE_MAX_BYTES
        assert bounced == (11 if middle else 0)  # shifts 9, 12, ... 39: gaps 31, 28, ... 1
        assert (region._bounce.size > 0) == middle  # and those went through the bounce buffer
    finally:
        region.close()
