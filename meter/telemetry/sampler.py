"""The background sampler: reads every source at a fixed rate into one ring buffer each.

It keeps a fixed schedule (sleeping for the rest of each period; after falling behind it skips
ahead rather than bursting). A source whose GPU is lost is dropped with one event and the others
go on.

Events (a GPU lost, a source dropped) go to the ``meter.telemetry.sampler`` logger at WARNING, so a
long-running host (``meter serve``) sets their level and format with the rest of its log; ``on_event``
also hands each one to the caller (``meter bench`` and ``meter measure`` print them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from meter.device.gpu import GpuLost
from meter.device.reading import Reading
from meter.telemetry.ring import Ring
from meter.telemetry.sources import Source

log = logging.getLogger(__name__)

MAX_RATE_HZ = 100.0
MAX_BUFFER_S = 3600.0  # the rings hold an hour at the chosen rate


class Sampler:
    def __init__(
        self,
        sources: Sequence[Source],
        interval_s: float = 0.1,
        *,
        on_event: Callable[[str], None] | None = None,
        capacity: int | None = None,
        on_reading: Callable[[str, Reading], None] | None = None,
        on_lost: Callable[[str, str], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ):
        if interval_s < 1.0 / MAX_RATE_HZ - 1e-9:
            raise ValueError(f"sampling interval must be at least {1 / MAX_RATE_HZ:g} s (at most {MAX_RATE_HZ:g} Hz)")
        self.sources = list(sources)
        self.interval_s = interval_s
        capacity = capacity or max(1000, int(MAX_BUFFER_S / interval_s))
        self.rings = {s.key: Ring(capacity) for s in self.sources}
        self.lost: dict[str, str] = {}
        self.events: list[tuple[float, str]] = []
        self._on_event = on_event
        self._on_reading = on_reading
        self._on_lost = on_lost
        self._on_tick = on_tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.late_ticks = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="meter-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def sample_once(self) -> None:
        """Read every live source once (the thread calls this each tick; tests may call it directly)."""
        for source in self.sources:
            if source.key in self.lost:
                continue
            try:
                reading = source.read()
            except GpuLost as exc:
                self.mark_lost(source.key, str(exc))
                continue
            self.rings[source.key].append(reading)
            if self._on_reading is not None:
                self._on_reading(source.key, reading)
        self.ticks += 1
        if self._on_tick is not None:
            self._on_tick()

    def mark_lost(self, key: str, why: str) -> None:
        """Stop reading a source whose device is gone; say so once."""
        if key not in self.lost:
            self.lost[key] = why
            self._event(f"telemetry: {key} was lost ({why}); continuing without its telemetry")
            if self._on_lost is not None:
                self._on_lost(key, why)

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_tick += self.interval_s
            delay = next_tick - time.monotonic()
            if delay < 0:
                self.late_ticks += 1
                next_tick = time.monotonic()  # behind schedule: start afresh instead of bursting
                delay = 0.0
            self._stop.wait(delay)

    def _event(self, message: str) -> None:
        self.events.append((time.monotonic(), message))
        log.warning(message)
        if self._on_event:
            self._on_event(message)

    def __enter__(self) -> Sampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
