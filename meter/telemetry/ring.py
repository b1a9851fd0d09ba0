"""A bounded, thread-safe buffer of timestamped readings: old samples fall off the end."""

from __future__ import annotations

import threading
from collections import deque

from meter.device.reading import Reading


class Ring:
    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items: deque[Reading] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.appended = 0

    def append(self, reading: Reading) -> None:
        with self._lock:
            self._items.append(reading)
            self.appended += 1

    @property
    def dropped(self) -> int:
        """Readings pushed out by newer ones."""
        with self._lock:
            return self.appended - len(self._items)

    def latest(self) -> Reading | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def between(self, t0: float, t1: float, *, appended_by: int | None = None) -> list[Reading]:
        """Readings with t0 <= t_s <= t1, oldest first; with ``appended_by``, only the first that many
        ever appended (what the ring held when a window ended, for a summary worked out later).

        Windows end at or near the newest reading, so the scan runs from the newest end and stops at
        t0: the cost is that of the window's readings, not of the whole ring (an hour of samples).
        """
        out = []
        with self._lock:
            items = self._items
            # the position of the newest reading to look at: the newest of all, or the last one
            # appended by ``appended_by`` (indexing a deque near its end is as quick as at the end)
            i = len(items) - 1 if appended_by is None else appended_by - 1 - (self.appended - len(items))
            while i >= 0:
                reading = items[i]
                if reading.t_s < t0:
                    break
                if reading.t_s <= t1:
                    out.append(reading)
                i -= 1
        out.reverse()
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
