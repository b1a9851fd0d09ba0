"""The monitor: a running sampler plus energy windows with synchronised edges.

    with monitor_for_device(device, interval_s=0.1)[0] as monitor:
        with monitor.window("moe.train") as w:
            run_the_benchmark()
        print(w.summary().energy_j)

At each window edge the monitor waits for the device (CUDA synchronise) and reads the energy
counters directly, so the window covers all and only the work issued inside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from meter.device.clock_events import THROTTLING_REASONS, decode_clock_events
from meter.device.gpu import GpuFleet, GpuLost, GpuUnavailable, Selection, open_gpus, visible_devices_variables
from meter.results.document import TelemetryInfo, Timeline, TimelineSeries
from meter.results.records import TelemetryWindow
from meter.telemetry.sampler import Sampler
from meter.telemetry.sources import CpuSource, GpuSource, Source
from meter.telemetry.window import MIN_COUNTER_PERIODS, MIN_SAMPLES, Edge, summarize_window

W = TypeVar("W")

DEFAULT_COUNTER_PERIOD_S = 0.1  # NVML's energy counter typically advances every ~100 ms


def infer_counter_period(
    read_energy: Callable[[], float | None], max_s: float = 0.6, poll_s: float = 0.002
) -> float | None:
    """The energy counter's update period, from the median gap between observed changes."""
    last = read_energy()
    if last is None:
        return None
    changes: list[float] = []
    start = time.monotonic()
    while time.monotonic() - start < max_s:
        time.sleep(poll_s)
        value = read_energy()
        if value is not None and value != last:
            changes.append(time.monotonic())
            last = value
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    return statistics.median(gaps) if len(gaps) >= 2 else None


class WindowHandle(Generic[W]):
    """What a ``with ... window(name) as w:`` block yields (:meth:`Monitor.window`, ``meter.Meter.window``):
    ``w.result`` (or ``w.summary()``, which refuses while the block runs) once the block ends; ``tokens``
    may be set inside the block where the window counts them (the Python API)."""

    def __init__(self, name: str, tokens: float | None = None):
        self.name = name
        self.tokens = tokens
        self.result: W | None = None

    def summary(self) -> W:
        if self.result is None:
            raise RuntimeError(f"window {self.name!r} is still open")
        return self.result


@dataclass(slots=True)
class ClosedWindow:
    """An ended window before its summary: its edges and how many readings each ring had taken by its
    end, which is all :meth:`Monitor.summary` needs, now or later (the readings stay in the rings)."""

    name: str
    begin: list[tuple[float, float | None]]  # per source, in the monitor's order: (t_s, energy_j)
    end: list[tuple[float, float | None]]
    appended: list[int]  # per source: readings its ring had taken when the window ended
    lost: dict[str, str] | None  # devices lost by the window's end


class Monitor:
    def __init__(
        self,
        sources: Sequence[Source],
        *,
        interval_s: float = 0.1,
        sync: Callable[[], None] | None = None,
        counter_period_s: float | None = None,
        on_event: Callable[[str], None] | None = None,
        fleet: GpuFleet | None = None,
    ):
        self.sources = list(sources)
        self.sampler = Sampler(self.sources, interval_s, on_event=on_event)
        self.sync = sync
        self.counter_period_s = counter_period_s
        self.counter_period_measured = counter_period_s is not None
        self._fleet = fleet  # closed with the monitor
        self._open: dict[str, list[tuple[float, float | None]]] = {}
        self._rings = [self.sampler.rings[source.key] for source in self.sources]
        self._power_semantics: dict[str, str | None] | None = None  # per source, read once
        self.t0 = time.monotonic()  # reset on __enter__; windows and the timeline count from it

    # --- lifetime ---

    def __enter__(self) -> Monitor:
        self.t0 = time.monotonic()
        if self.counter_period_s is None:
            period = None
            for source in self.sources:
                try:
                    if source.read_energy_j() is not None:
                        period = infer_counter_period(source.read_energy_j)
                        break
                except GpuLost as exc:  # lost while starting: the same as lost later
                    self.sampler.mark_lost(source.key, str(exc))
            self.counter_period_measured = period is not None
            self.counter_period_s = period or DEFAULT_COUNTER_PERIOD_S
        self.sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sampler.stop()
        if self._fleet is not None:
            self._fleet.close()
            self._fleet = None

    @property
    def min_window_s(self) -> float:
        """Shortest window whose energy is trustworthy; the harness repeats shorter cases."""
        period = self.counter_period_s or DEFAULT_COUNTER_PERIOD_S
        return max(1.0, MIN_COUNTER_PERIODS * period, MIN_SAMPLES * self.sampler.interval_s)

    # --- windows ---

    def _edges(self) -> list[tuple[float, float | None]]:
        # the hot path of every window: two of these per window, one energy read per device, plain
        # tuples (each device's own time and counter); Edge objects are made for the summary
        if self.sync is not None:
            self.sync()
        edges = []
        lost = self.sampler.lost
        now = time.monotonic
        for source in self.sources:
            t = now()
            energy = None
            if source.key not in lost:
                try:
                    energy = source.read_energy_j()
                except GpuLost as exc:
                    self.sampler.mark_lost(source.key, str(exc))
            edges.append((t, energy))
        return edges

    def begin_window(self, name: str) -> None:
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        self._open[name] = self._edges()

    def end_window(self, name: str) -> TelemetryWindow:
        return self.summary(self.close_window(name))

    def close_window(self, name: str) -> ClosedWindow:
        """End ``name`` without summarising it: read its end edges only (:meth:`summary` does the rest)."""
        begin = self._open.pop(name, None)
        if begin is None:
            raise ValueError(f"window {name!r} was never begun")
        lost = self.sampler.lost
        end = self._edges()
        return ClosedWindow(name, begin, end, [ring.appended for ring in self._rings], dict(lost) if lost else None)

    def rollover_window(self, name: str) -> TelemetryWindow:
        """End ``name`` and begin it again at the same edges: consecutive windows tile time with no gap."""
        if name not in self._open:
            raise ValueError(f"window {name!r} was never begun")
        begin, end = self._open[name], self._edges()
        self._open[name] = end
        lost = self.sampler.lost
        appended = [ring.appended for ring in self._rings]
        return self.summary(ClosedWindow(name, begin, end, appended, dict(lost) if lost else None))

    def summary(self, closed: ClosedWindow) -> TelemetryWindow:
        """A closed window's figures: the same whenever asked, as long as the rings hold its readings
        (an hour's worth; the meter asks well before)."""
        first = min(t for t, _ in closed.begin) if closed.begin else time.monotonic()
        last = max(t for t, _ in closed.end) if closed.end else time.monotonic()
        if self._power_semantics is None:
            self._power_semantics = {s.key: s.describe().power_semantics for s in self.sources}
        start_s, end_s = first - self.t0, last - self.t0
        one = len(self.sources) == 1
        per_device = {}
        for source, ring, b, e, appended in zip(self.sources, self._rings, closed.begin, closed.end, closed.appended):
            per_device[source.key] = summarize_window(
                closed.name,
                Edge(*b),
                Edge(*e),
                ring.between(b[0], e[0], appended_by=appended),
                counter_period_s=self.counter_period_s or DEFAULT_COUNTER_PERIOD_S,
                lost=closed.lost.get(source.key) if closed.lost else None,
                power_semantics=self._power_semantics[source.key],
                # a one-device window is the device's, with the edges (what combine would copy in)
                device=source.key if one else None,
                start_s=start_s if one else None,
                end_s=end_s if one else None,
            )
        if one:
            return per_device[self.sources[0].key]
        return combine(closed.name, per_device, start_s=start_s, end_s=end_s)

    def timeline(self, max_points: int = 2000) -> Timeline:
        """Every device's samples since the monitor started, evenly thinned to ``max_points``, for plots."""
        devices = {}
        for source in self.sources:
            readings = self.sampler.rings[source.key].between(self.t0, float("inf"))
            step = max(1, -(-len(readings) // max_points))
            kept = readings[::step]
            devices[source.key] = TimelineSeries(
                label=source.describe().name or source.key,
                t_s=[round(r.t_s - self.t0, 4) for r in kept],
                power_w=[r.power_w for r in kept],
                utilization_ratio=[r.utilization_ratio for r in kept],
                sm_clock_hz=[r.sm_clock_hz for r in kept],
                throttle_reasons=[
                    [x for x in decode_clock_events(r.clock_event_mask) if x in THROTTLING_REASONS] for r in kept
                ],
                thinned_every=step,
            )
        return Timeline(interval_s=self.sampler.interval_s, devices=devices)

    @contextlib.contextmanager
    def window(self, name: str) -> Iterator[WindowHandle[TelemetryWindow]]:
        handle: WindowHandle[TelemetryWindow] = WindowHandle(name)
        self.begin_window(name)
        try:
            yield handle
        finally:
            handle.result = self.end_window(name)

    def describe(self) -> TelemetryInfo:
        return TelemetryInfo(
            enabled=True,
            interval_s=self.sampler.interval_s,
            counter_period_s=self.counter_period_s,
            counter_period="measured" if self.counter_period_measured else "assumed (typical NVML)",
            min_window_s=self.min_window_s,
            devices=[s.describe() for s in self.sources],
            events=[message for _, message in self.sampler.events],
        )


def combine(
    name: str, per_device: dict[str, TelemetryWindow], *, start_s: float | None = None, end_s: float | None = None
) -> TelemetryWindow:
    """One window over several devices: sums of energy and power, the union of reasons."""
    if len(per_device) == 1:
        key, only = next(iter(per_device.items()))
        edges = {"start_s": start_s, "end_s": end_s} if start_s is not None or end_s is not None else {}
        return dataclasses.replace(only, device=key, **edges)
    values = list(per_device.values())
    energies = [v.energy_j for v in values]
    total = sum(energies) if all(e is not None for e in energies) else None
    duration = max(v.duration_s for v in values)
    return TelemetryWindow(
        name=name,
        duration_s=duration,
        energy_j=total,
        avg_power_w=total / duration if total is not None and duration > 0 else None,
        peak_power_w=sum(v.peak_power_w or 0.0 for v in values) or None,
        throttle_reasons=sorted({r for v in values for r in v.throttle_reasons}),
        clock_event_reasons=sorted({r for v in values for r in v.clock_event_reasons}),
        n_samples=min(v.n_samples for v in values),
        low_confidence=any(v.low_confidence for v in values),
        low_confidence_reasons=sorted({f"{k}: {r}" for k, v in per_device.items() for r in v.low_confidence_reasons}),
        devices=per_device,
        start_s=start_s,
        end_s=end_s,
    )


def monitor_for_device(
    device,
    *,
    source: str = "auto",
    interval_s: float = 0.1,
    say: Callable[[str], None] | None = None,
    counter_period_s: float | None = None,
) -> tuple[Monitor | None, str | None]:
    """A monitor for a benchmark on ``device``, or (None, why there is no telemetry).

    ``source``: ``auto`` watches the benchmark's own device (its GPU through the device seam, or
    the CPU through RAPL); ``gpu`` watches every visible GPU whatever the device; ``rapl`` the CPU.
    """
    say = say or (lambda _msg: None)
    if source not in ("auto", "gpu", "rapl"):
        raise ValueError(f"unknown telemetry source {source!r}")
    if source == "gpu" or (source == "auto" and device.kind == "cuda"):
        return _gpu_monitor(device, interval_s, say, counter_period_s)
    from meter.device.rapl import open_rapl

    rapl, why = open_rapl()
    if rapl is None:
        return None, f"no CPU energy: {why}"
    return Monitor(
        [CpuSource(rapl)], interval_s=interval_s, counter_period_s=counter_period_s or 0.001, on_event=say
    ), None


def _gpu_monitor(device, interval_s: float, say, counter_period_s: float | None) -> tuple[Monitor | None, str | None]:
    selection = Selection()
    if device.kind == "cuda":
        cuda_index = int(device.torch_device.split(":")[1]) if ":" in device.torch_device else 0
        selection = Selection(uuid=device.uuid, cuda_index=cuda_index)
    try:
        fleet = open_gpus(selection)
    except (GpuUnavailable, GpuLost) as exc:
        return None, f"no GPU telemetry: {exc}"
    if not fleet.gpus:
        fleet.close()
        why = "; ".join(f"GPU {i}: {reason}" for i, reason in fleet.unopened)
        return None, f"no GPU telemetry: {why or ' or '.join(visible_devices_variables()) + ' selects no GPU'}"
    sync = None
    if device.kind == "cuda":

        def sync() -> None:
            import torch

            torch.cuda.synchronize(device.torch_device)

    sources = [GpuSource(gpu) for gpu in fleet.gpus]
    return Monitor(
        sources, interval_s=interval_s, sync=sync, counter_period_s=counter_period_s, on_event=say, fleet=fleet
    ), None
