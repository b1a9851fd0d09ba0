"""What a time window cost: energy from the counter and from integrated power, and how they agree.

Pure functions of the readings in the window and the counter values read at its two edges.
"""

from __future__ import annotations

from typing import NamedTuple

from meter.device.clock_events import THROTTLING_REASONS, decode_clock_events
from meter.device.reading import Reading
from meter.results.records import TelemetryWindow

MIN_SAMPLES = 10
MIN_COUNTER_PERIODS = 10  # a window of fewer counter updates has >10% quantisation error


class Edge(NamedTuple):
    """A window's edge: when, and the energy counter then (a tuple: two are made per GPU per window)."""

    t_s: float
    energy_j: float | None


def counter_energy(points: list[tuple[float, float]]) -> tuple[float | None, bool]:
    """Energy between the first and last counter values, and whether the counter reset in between.

    A decrease means the counter restarted from zero (driver reload): the energy after the reset
    is the new value itself; what fell between the last reading before and the reset is lost.
    """
    if len(points) < 2:
        return None, False
    energy, reset = 0.0, False
    for (_, before), (_, after) in zip(points, points[1:]):
        if after >= before:
            energy += after - before
        else:
            reset = True
            energy += after
    return energy, reset


def integrated_energy(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    """Trapezoidal integral of power over [t0, t1], holding the first and last readings to the edges."""
    points = [(t, p) for t, p in points if t0 <= t <= t1]
    if not points:
        return None
    series = [(t0, points[0][1]), *points, (t1, points[-1][1])]
    return sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in zip(series, series[1:]))


def summarize_window(
    name: str,
    begin: Edge,
    end: Edge,
    readings: list[Reading],
    *,
    counter_period_s: float,
    lost: str | None = None,
    power_semantics: str | None = None,
    device: str | None = None,
    start_s: float | None = None,
    end_s: float | None = None,
) -> TelemetryWindow:
    """The window's figures; ``low_confidence`` with reasons when they should not be trusted.

    ``device``, ``start_s`` and ``end_s`` are copied into the result as they are (the monitor's
    one-device windows carry them; built here, not copied in after, which costs a window a lot)."""
    duration = end.t_s - begin.t_s
    inside = [r for r in readings if begin.t_s <= r.t_s <= end.t_s]
    counter_points = []
    if begin.energy_j is not None:
        counter_points.append((begin.t_s, begin.energy_j))
    counter_points += [(r.t_s, r.energy_j) for r in inside if r.energy_j is not None]
    if end.energy_j is not None:
        counter_points.append((end.t_s, end.energy_j))
    has_edges = begin.energy_j is not None and end.energy_j is not None
    e_counter, reset = counter_energy(counter_points) if has_edges else (None, False)
    power = [(r.t_s, r.power_w) for r in inside if r.power_w is not None]
    e_integrated = integrated_energy(power, begin.t_s, end.t_s) if duration > 0 else None
    energy = e_counter if e_counter is not None else e_integrated
    disagreement = None
    if e_counter and e_integrated is not None:
        disagreement = abs(e_integrated - e_counter) / e_counter
    util = [r.utilization_ratio for r in inside if r.utilization_ratio is not None]
    sm = [r.sm_clock_hz for r in inside if r.sm_clock_hz is not None]
    reasons = sorted({name for r in inside for name in decode_clock_events(r.clock_event_mask)})
    updates = len({e for _, e in counter_points[1:-1]}) if len(counter_points) > 2 else 0

    why = []
    if duration < counter_period_s:
        why.append(
            f"window ({duration:.3g} s) shorter than the energy counter's update period ({counter_period_s:.3g} s)"
        )
    elif e_counter is not None and duration < MIN_COUNTER_PERIODS * counter_period_s:
        why.append(f"window spans fewer than {MIN_COUNTER_PERIODS} energy-counter updates")
    if len(inside) < MIN_SAMPLES:
        why.append(f"only {len(inside)} telemetry samples (fewer than {MIN_SAMPLES})")
    if reset:
        why.append("the energy counter reset during the window (driver reload?)")
    if lost:
        why.append(f"device lost: {lost}")
    if energy is None:
        why.append("no energy reading (neither counter nor power supported)")
    return TelemetryWindow(
        name=name,
        duration_s=duration,
        energy_j=energy,
        energy_method="counter"
        if e_counter is not None
        else ("integrated power" if e_integrated is not None else None),
        energy_counter_j=e_counter,
        energy_integrated_j=e_integrated,
        energy_disagreement=disagreement,
        counter_reset=reset,
        counter_updates=updates,
        avg_power_w=energy / duration if energy is not None and duration > 0 else None,
        peak_power_w=max((p for _, p in power), default=None),
        avg_utilization_ratio=sum(util) / len(util) if util else None,
        avg_sm_clock_hz=sum(sm) / len(sm) if sm else None,
        min_sm_clock_hz=min(sm) if sm else None,
        clock_event_reasons=reasons,
        throttle_reasons=[r for r in reasons if r in THROTTLING_REASONS],
        n_samples=len(inside),
        power_semantics=power_semantics,
        low_confidence=bool(why),
        low_confidence_reasons=why,
        device=device,
        start_s=start_s,
        end_s=end_s,
    )
