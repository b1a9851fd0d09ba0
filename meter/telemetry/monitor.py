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

from meter.device.clock_events import THROTTLING_REASONS, decode_clock_events
from meter.device.gpu import GpuFleet, GpuLost, GpuUnavailable, Selection, open_gpus, visible_devices_variables
from meter.results.document import TelemetryInfo, Timeline, TimelineSeries
from meter.results.records import TelemetryWindow
from meter.telemetry.sampler import Sampler
from meter.telemetry.sources import CpuSource, GpuSource, Source
from meter.telemetry.window import MIN_COUNTER_PERIODS, MIN_SAMPLES, Edge, summarize_window

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


class WindowHandle:
    """Yielded by :meth:`Monitor.window`; its summary is ready once the ``with`` block ends."""

    def __init__(self, name: str):
        self.name = name
        self._summary: TelemetryWindow | None = None

    def summary(self) -> TelemetryWindow:
        if self._summary is None:
            raise RuntimeError(f"window {self.name!r} is still open")
        return self._summary


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
        self._open: dict[str, dict[str, Edge]] = {}
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

    def _edges(self) -> dict[str, Edge]:
        if self.sync is not None:
            self.sync()
        edges = {}
        for source in self.sources:
            t = time.monotonic()
            energy = None
            if source.key not in self.sampler.lost:
                try:
                    energy = source.read_energy_j()
                except GpuLost as exc:
                    self.sampler.mark_lost(source.key, str(exc))
            edges[source.key] = Edge(t, energy)
        return edges

    def begin_window(self, name: str) -> None:
        if name in self._open:
            raise ValueError(f"window {name!r} is already open")
        self._open[name] = self._edges()

    def end_window(self, name: str) -> TelemetryWindow:
        if name not in self._open:
            raise ValueError(f"window {name!r} was never begun")
        begin, end = self._open.pop(name), self._edges()
        return self._summarize(name, begin, end)

    def rollover_window(self, name: str) -> TelemetryWindow:
        """End ``name`` and begin it again at the same edges: consecutive windows tile time with no gap."""
        if name not in self._open:
            raise ValueError(f"window {name!r} was never begun")
        begin, end = self._open[name], self._edges()
        self._open[name] = end
        return self._summarize(name, begin, end)

    def _summarize(self, name: str, begin: dict[str, Edge], end: dict[str, Edge]) -> TelemetryWindow:
        first = min(e.t_s for e in begin.values()) if begin else time.monotonic()
        last = max(e.t_s for e in end.values()) if end else time.monotonic()
        per_device = {}
        for source in self.sources:
            ring = self.sampler.rings[source.key]
            b, e = begin[source.key], end[source.key]
            per_device[source.key] = summarize_window(
                name,
                b,
                e,
                ring.between(b.t_s, e.t_s),
                counter_period_s=self.counter_period_s or DEFAULT_COUNTER_PERIOD_S,
                lost=self.sampler.lost.get(source.key),
                power_semantics=source.describe().power_semantics,
            )
        return dataclasses.replace(combine(name, per_device), start_s=first - self.t0, end_s=last - self.t0)

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
    def window(self, name: str) -> Iterator[WindowHandle]:
        handle = WindowHandle(name)
        self.begin_window(name)
        try:
            yield handle
        finally:
            handle._summary = self.end_window(name)

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


def combine(name: str, per_device: dict[str, TelemetryWindow]) -> TelemetryWindow:
    """One window over several devices: sums of energy and power, the union of reasons."""
    if len(per_device) == 1:
        key, only = next(iter(per_device.items()))
        return dataclasses.replace(only, device=key)
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
