"""The review page's images, kept once rendered: a large scan (a 2,500 × 2,000 16-bit X-ray) took
a quarter of a second to decode and shrink for every request — the sample shown, each of its
neighbours' thumbnails, again for every reviewer and every visit. The PNG bytes of each
(sample, size) are kept, up to :data:`MAX_BYTES`, the least recently used dropped first; an entry
is keyed by its file's modification time and size too, so a file changed since is read again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["MAX_BYTES", "RenderedImages"]

#: the PNG bytes kept (about 400 display images of 512 px, or 6,000 thumbnails)
MAX_BYTES = 64 * 2**20
#: images rendered at once (each decoded whole, as float32)
RENDERERS = 2


class RenderedImages:
    """A thread-safe LRU of rendered images: :meth:`get` returns the bytes of ``key``, rendered by
    ``render()`` the first time (an error it raises is not kept)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._kept: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._rendering = threading.BoundedSemaphore(RENDERERS)
        self._busy: dict[Hashable, list[Any]] = {}  # key -> [its lock, the requests waiting on it]

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The bytes of ``key``: kept, else rendered — one render per key at a time (a second request
        for it waits for the first), at most :data:`RENDERERS` renders at once (a 6000 x 6000 image
        takes ~720 MB to render; four at once took 3.1 GB)."""
        with self._lock:
            data = self._kept.get(key)
            if data is not None:
                self._kept.move_to_end(key)
                return data
            busy = self._busy.setdefault(key, [threading.Lock(), 0])
            busy[1] += 1
        try:
            with busy[0]:
                with self._lock:  # rendered while this one waited
                    data = self._kept.get(key)
                if data is None:
                    with self._rendering:
                        data = render()  # outside the lock: the cache serves others meanwhile
                    self._keep(key, data)
        finally:
            with self._lock:
                busy[1] -= 1
                if busy[1] == 0:
                    del self._busy[key]
        return data

    def _keep(self, key: Hashable, data: bytes) -> None:
        with self._lock:
            if key not in self._kept and len(data) <= self.max_bytes:
                self._kept[key] = data
                self._size += len(data)
                while self._size > self.max_bytes:
                    _, old = self._kept.popitem(last=False)
                    self._size -= len(old)
