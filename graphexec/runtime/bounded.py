"""A least-recently-used table bounded in entries and in bytes: the server's caches (graphs, plans,
loaded plans, in-memory blobs and sessions) use it so that what clients upload cannot grow them
without end. The entry just put is never the one dropped, however large."""
from __future__ import annotations

import threading
from collections import OrderedDict


class BoundedCache:
    def __init__(self, max_items: int, max_bytes: int | None = None):
        self.max_items, self.max_bytes = max_items, max_bytes
        self._entries: OrderedDict = OrderedDict()  # key -> (value, nbytes)
        self.nbytes = 0
        self._lock = threading.Lock()

    def get(self, key, default=None):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key, value, nbytes: int = 0) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._entries[key] = (value, nbytes)
            self.nbytes += nbytes
            while len(self._entries) > 1 and (len(self._entries) > self.max_items or
                                              self.max_bytes is not None and self.nbytes > self.max_bytes):
                _, (_, dropped) = self._entries.popitem(last=False)
                self.nbytes -= dropped

    def pop(self, key, default=None):
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is None:
                return default
            self.nbytes -= entry[1]
            return entry[0]

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
