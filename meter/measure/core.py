"""The meter of one job, shared by ``meter measure`` and the Python API.

It owns the telemetry monitor of the job's GPUs (or none, without NVML: then it keeps time
only), measures the whole job in consecutive segments (see :mod:`meter.measure.figures`), and
opens and closes the named windows the Python API asks for. Every call takes one lock, so
windows may be begun and ended from several threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from meter.measure.figures import join_segments
from meter.measure.gpus import WatchedGpu
from meter.results.document import Timeline
from meter.results.job import JobGpu
from meter.results.records import TelemetryWindow
from meter.telemetry.monitor import DEFAULT_COUNTER_PERIOD_S, ClosedWindow, Monitor

JOB = "meter:job"  # the monitor's name for the job's own segments
SEGMENT_S = 60.0  # a segment's samples are summarised long before the ring (an hour) drops them


@dataclass(frozen=True)
class Span:
    """A window's edges (seconds since the meter started) and, with telemetry, what it cost."""

    start_s: float
    end_s: float
    telemetry: TelemetryWindow | None

    @property
    def duration_s(self) -> float:
        return self.telemetry.duration_s if self.telemetry is not None else self.end_s - self.start_s


class JobMeter:
    def __init__(
        self,
        monitor: Monitor | None,
        gpus: list[WatchedGpu],
        *,
        sync: Callable[[], None] | None = None,
        segment_s: float = SEGMENT_S,
        on_segment: Callable[[], None] | None = None,
    ):
        self.monitor = monitor
        self.gpus = gpus
        self._sync = sync
        self._segment_s = segment_s
        self._on_segment = on_segment
        self._lock = threading.RLock()
        self._segments: list[TelemetryWindow] = []
        self._peak_memory: dict[str, int] = {}
        self._open: dict[str, float] = {}  # without a monitor: name -> start
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.t0 = time.monotonic()
        self.stopped_at: float | None = None

    # --- lifetime ---

    def start(self) -> JobMeter:
        with self._lock:
            if self.monitor is not None:
                self.monitor.__enter__()
                self.t0 = self.monitor.t0
                self.monitor.begin_window(JOB)
            else:
                self.t0 = time.monotonic()
        if self.monitor is not None and self._segment_s > 0:
            self._thread = threading.Thread(target=self._segment_loop, name="meter-job-segments", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the job's last segment and the sampler; the figures stay readable."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            if self.stopped_at is not None:
                return
            if self.monitor is not None:
                self._end_segment()
                self.monitor.__exit__(None, None, None)
            self.stopped_at = time.monotonic()

    @property
    def running(self) -> bool:
        return self.stopped_at is None

    def elapsed_s(self) -> float:
        return (self.stopped_at or time.monotonic()) - self.t0

    # --- the job's segments ---

    def _segment_loop(self) -> None:
        while not self._stop.wait(self._segment_s):
            with self._lock:
                if self.stopped_at is not None:
                    return
                self._end_segment(rollover=True)
            if self._on_segment is not None:
                self._on_segment()

    def checkpoint(self) -> None:
        """Close the current segment and open the next, so the job's figures include everything so far."""
        with self._lock:
            if self.monitor is not None and self.stopped_at is None:
                self._end_segment(rollover=True)

    def _end_segment(self, *, rollover: bool = False) -> None:
        """Close the job's current segment; with ``rollover`` the next one starts at its very edges."""
        monitor = self.monitor
        segment = monitor.rollover_window(JOB) if rollover else monitor.end_window(JOB)  # type: ignore[union-attr]
        self._segments.append(segment)
        begin, end = self.t0 + (segment.start_s or 0.0), self.t0 + (segment.end_s or 0.0)
        for gpu in self.gpus:
            ring = self.monitor.sampler.rings[gpu.key]  # type: ignore[union-attr]
            used = [r.memory_used_bytes for r in ring.between(begin, end) if r.memory_used_bytes is not None]
            if used:
                self._peak_memory[gpu.key] = max(self._peak_memory.get(gpu.key, 0), max(used))

    def job_window(self) -> TelemetryWindow | None:
        """The whole job so far (up to the last closed segment), summed over its GPUs."""
        with self._lock:
            if not self._segments:
                return None
            period = (self.monitor.counter_period_s if self.monitor else None) or DEFAULT_COUNTER_PERIOD_S
            return join_segments("job", self._segments, counter_period_s=period)

    def gpu_records(self, window: TelemetryWindow | None) -> list[JobGpu]:
        per_device = {}
        if window is not None:
            per_device = dict(window.devices) if window.devices else {window.device: window}
        with self._lock:
            return [
                JobGpu(
                    key=g.key,
                    name=g.name,
                    index=g.index,
                    uuid=g.uuid,
                    hardware_config=g.hardware.name if g.hardware else None,
                    peak_memory_used_bytes=self._peak_memory.get(g.key),
                    memory_total_bytes=g.memory_total_bytes,
                    telemetry=per_device.get(g.key),
                )
                for g in self.gpus
            ]

    def timeline(self) -> Timeline | None:
        with self._lock:
            return self.monitor.timeline() if self.monitor is not None else None

    def describe(self):
        return self.monitor.describe() if self.monitor is not None else None

    # --- named windows (the Python API) ---

    def begin(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"a window's name is a string, not {type(name).__name__}")
        if name == JOB:
            raise ValueError(f"window name {JOB!r} is the meter's own")
        if self._sync is not None:
            self._sync()  # outside the lock: waiting for the GPU must not hold up other threads
        with self._lock:
            if self.stopped_at is not None:
                self._check_running()
            if self.monitor is not None:
                self.monitor.begin_window(name)
                return
            if name in self._open:
                raise ValueError(f"window {name!r} is already open")
            self._open[name] = time.monotonic()

    def end(self, name: str) -> Span:
        return self.end_deferred(name)()

    def end_deferred(self, name: str) -> Callable[[], Span]:
        """End a window now and return what works out its span when called: the edges are read here,
        the summary of the samples in between (most of a window's cost) waits until it is wanted."""
        if self._sync is not None:
            self._sync()
        with self._lock:
            if self.stopped_at is not None:
                self._check_running()
            if self.monitor is not None:
                closed = self.monitor.close_window(name)
                return lambda: self._span(closed)
            if name not in self._open:
                raise ValueError(f"window {name!r} was never begun")
            span = Span(self._open.pop(name) - self.t0, time.monotonic() - self.t0, None)
            return lambda: span

    def _span(self, closed: ClosedWindow) -> Span:
        w = self.monitor.summary(closed)  # type: ignore[union-attr]
        return Span(w.start_s or 0.0, w.end_s or 0.0, w)

    def _check_running(self) -> None:
        if self.stopped_at is not None:
            raise RuntimeError("the meter is closed; windows can no longer be begun or ended")
