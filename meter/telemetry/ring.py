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

    def between(self, t0: float, t1: float) -> list[Reading]:
        """Readings with t0 <= t_s <= t1, oldest first.

        Windows end at or near the newest reading, so the scan runs from the newest end and stops at
        t0: the cost is that of the window's readings, not of the whole ring (an hour of samples).
        """
        out = []
        with self._lock:
            for reading in reversed(self._items):
                if reading.t_s < t0:
                    break
                if reading.t_s <= t1:
                    out.append(reading)
        out.reverse()
        return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
