"""A measured job's figures from its windows: pure arithmetic, units in every name.

A long job is measured in consecutive segments (a minute each, so that every segment's samples
are still in the sampler's ring when it is summarised); :func:`join_segments` adds them up into
the job's own window. Work counts turn time and energy into rates; prices turn them into dollars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meter.results.job import JobCost, JobWork
from meter.results.records import TelemetryWindow
from meter.telemetry.monitor import combine
from meter.telemetry.window import MIN_COUNTER_PERIODS, MIN_SAMPLES

# Reasons a segment is low-confidence only because it is short; the joined job is judged afresh.
_SHORTNESS = ("window (", "window spans fewer", "only ")


@dataclass(frozen=True)
class WorkModel:
    """What the job's tokens are: a model's analytic FLOPs per token, and the peak MFU is against."""

    model: str
    phase: str
    seq: int
    flops_per_token: float
    peak_flops_per_gpu: float | None  # dense bf16 datasheet peak; None without a GPU config
    basis: str  # what the MFU is measured against, or why there is none


@dataclass(frozen=True)
class Prices:
    """The rental price per GPU-hour and the energy price, each with where it came from."""

    usd_per_gpu_hour: float | None = None
    price_source: str | None = None
    usd_per_kwh: float | None = None
    pue: float | None = None
    energy_source: str | None = None


def device_windows(window: TelemetryWindow) -> dict[str, TelemetryWindow]:
    """Each device's own window: ``devices`` of a combined window, or the one-device window itself."""
    if window.devices:
        return dict(window.devices)
    return {window.device or "device": window}


def join_segments(name: str, segments: Sequence[TelemetryWindow], *, counter_period_s: float) -> TelemetryWindow:
    """Consecutive windows (segments of one job) as one window over all of them."""
    if not segments:
        raise ValueError("no segments to join")
    keys: list[str] = []
    per_key: dict[str, list[TelemetryWindow]] = {}
    for segment in segments:
        for key, w in device_windows(segment).items():
            if key not in per_key:
                keys.append(key)
                per_key[key] = []
            per_key[key].append(w)
    joined = {key: _join_device(name, per_key[key], counter_period_s) for key in keys}
    return combine(name, joined, start_s=segments[0].start_s, end_s=segments[-1].end_s)


def _join_device(name: str, parts: list[TelemetryWindow], counter_period_s: float) -> TelemetryWindow:
    duration = sum(p.duration_s for p in parts)
    samples = sum(p.n_samples for p in parts)
    energy = _sum_or_none([p.energy_j for p in parts])
    counter = _sum_or_none([p.energy_counter_j for p in parts])
    integrated = _sum_or_none([p.energy_integrated_j for p in parts])
    methods = {p.energy_method for p in parts}
    method = next(iter(methods)) if len(methods) == 1 else ("counter" if counter is not None else None)
    reasons = sorted({r for p in parts for r in p.low_confidence_reasons if not r.startswith(_SHORTNESS)})
    if duration < MIN_COUNTER_PERIODS * counter_period_s and counter is not None:
        reasons.append(f"window spans fewer than {MIN_COUNTER_PERIODS} energy-counter updates")
    if samples < MIN_SAMPLES:
        reasons.append(f"only {samples} telemetry samples (fewer than {MIN_SAMPLES})")
    clocks = [p.min_sm_clock_hz for p in parts if p.min_sm_clock_hz is not None]
    return TelemetryWindow(
        name=name,
        duration_s=duration,
        energy_j=energy,
        energy_method=method if energy is not None else None,
        energy_counter_j=counter,
        energy_integrated_j=integrated,
        energy_disagreement=abs(integrated - counter) / counter if counter and integrated is not None else None,
        counter_reset=any(p.counter_reset for p in parts),
        counter_updates=sum(p.counter_updates for p in parts),
        avg_power_w=energy / duration if energy is not None and duration > 0 else None,
        peak_power_w=max((p.peak_power_w for p in parts if p.peak_power_w is not None), default=None),
        avg_utilization_ratio=_sample_weighted(parts, "avg_utilization_ratio"),
        avg_sm_clock_hz=_sample_weighted(parts, "avg_sm_clock_hz"),
        min_sm_clock_hz=min(clocks) if clocks else None,
        clock_event_reasons=sorted({r for p in parts for r in p.clock_event_reasons}),
        throttle_reasons=sorted({r for p in parts for r in p.throttle_reasons}),
        n_samples=samples,
        power_semantics=parts[0].power_semantics,
        low_confidence=bool(reasons),
        low_confidence_reasons=reasons,
        device=parts[0].device,
        start_s=parts[0].start_s,
        end_s=parts[-1].end_s,
    )


def _sum_or_none(values: list[float | None]) -> float | None:
    """The sum, or None when any part lacks the value (a partial sum would pass for the whole)."""
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def _sample_weighted(parts: list[TelemetryWindow], name: str) -> float | None:
    weighted = [(getattr(p, name), p.n_samples) for p in parts if getattr(p, name) is not None and p.n_samples]
    samples = sum(n for _, n in weighted)
    return sum(v * n for v, n in weighted) / samples if samples else None


def work_figures(
    *,
    tokens: float,
    source: str,
    duration_s: float,
    gpus: int,
    energy_j: float | None,
    model: WorkModel | None,
) -> JobWork:
    """Tokens per second, achieved TFLOP/s per GPU, MFU and joules per token of a job or window."""
    tokens_per_s = tokens / duration_s if duration_s > 0 else None
    achieved = mfu = None
    if model is not None and tokens_per_s is not None and gpus > 0:
        achieved = tokens_per_s * model.flops_per_token / gpus
        mfu = achieved / model.peak_flops_per_gpu if model.peak_flops_per_gpu else None
    return JobWork(
        tokens=tokens,
        tokens_source=source,  # type: ignore[arg-type]
        tokens_per_s=tokens_per_s,
        model=model.model if model else None,
        phase=model.phase if model else None,  # type: ignore[arg-type]
        seq=model.seq if model else None,
        flops_per_token=model.flops_per_token if model else None,
        achieved_tflops=achieved / 1e12 if achieved is not None else None,
        mfu=mfu,
        mfu_basis=model.basis if model else None,
        joules_per_token=energy_j / tokens if energy_j is not None and tokens > 0 else None,
    )


def cost_figures(*, gpus: int, duration_s: float, energy_j: float | None, prices: Prices) -> JobCost:
    """GPUs x hours x price, plus energy x PUE x $/kWh; each None where its input is missing."""
    gpu_hours = gpus * duration_s / 3600.0
    gpu_usd = gpu_hours * prices.usd_per_gpu_hour if prices.usd_per_gpu_hour is not None else None
    kwh = energy_j / 3.6e6 if energy_j is not None else None
    energy_usd = None
    if kwh is not None and prices.usd_per_kwh is not None and prices.pue is not None:
        energy_usd = kwh * prices.pue * prices.usd_per_kwh
    total = gpu_usd + energy_usd if gpu_usd is not None and energy_usd is not None else None
    return JobCost(
        gpus=gpus,
        gpu_hours=gpu_hours,
        usd_per_gpu_hour=prices.usd_per_gpu_hour,
        price_source=prices.price_source,
        gpu_usd=gpu_usd,
        energy_kwh=kwh,
        pue=prices.pue,
        usd_per_kwh=prices.usd_per_kwh,
        energy_source=prices.energy_source,
        energy_usd=energy_usd,
        total_usd=total,
    )


def mean_utilization(windows: Sequence[TelemetryWindow]) -> float | None:
    """The GPUs' mean utilization over the job (each GPU weighs the same)."""
    values = [w.avg_utilization_ratio for w in windows if w.avg_utilization_ratio is not None]
    return sum(values) / len(values) if values else None
