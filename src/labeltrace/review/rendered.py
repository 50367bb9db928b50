"""The review page's images, kept once rendered: a large scan (a 2,500 × 2,000 16-bit X-ray) took
a quarter of a second to decode and shrink for every request — the sample shown, each of its
neighbours' thumbnails, again for every reviewer and every visit. The PNG bytes of each
(sample, size) are kept, up to :data:`MAX_BYTES`, the least recently used dropped first; an entry
is keyed by its file's modification time and size too, so a file changed since is read again."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

__all__ = ["MAX_BYTES", "RenderedImages"]

#: the PNG bytes kept (about 400 display images of 512 px, or 6,000 thumbnails)
MAX_BYTES = 64 * 2**20


class RenderedImages:
    """A thread-safe LRU of rendered images: :meth:`get` returns the bytes of ``key``, rendered by
    ``render()`` the first time (an error it raises is not kept)."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._kept: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            data = self._kept.get(key)
            if data is not None:
                self._kept.move_to_end(key)
                return data
        data = render()  # outside the lock: two requests for one image may both render it, once
        with self._lock:
            if key not in self._kept and len(data) <= self.max_bytes:
                self._kept[key] = data
                self._size += len(data)
                while self._size > self.max_bytes:
                    _, old = self._kept.popitem(last=False)
                    self._size -= len(old)
        return data
