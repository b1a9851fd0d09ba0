"""What a report shows of a measured job: its figures, its GPUs, its windows, and what its MFU implies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from meter.report.data import Run

MAX_WINDOW_ROWS = 500  # the report lists this many windows one by one; the run file holds them all


def job_sentence(run: Run, train) -> str | None:
    """ "At the MFU your job achieved, <model>'s pre-training would take X GPU-hours", from the estimate."""
    from meter.cost.display import fmt

    job = run.doc.job
    if job is None or job.work is None or job.work.mfu is None or train is None:
        return None
    hours, usd = train.training.pretraining_gpu_hours, train.training.pretraining_usd
    if hours is None:
        return None
    return (
        f"At the MFU your job achieved ({job.work.mfu:.2%} of the {job.work.mfu_basis}), "
        f"{train.model.name}'s pre-training ({train.scenario.name}) would take {fmt(hours.point, 'count')} "
        f"{train.hardware.name} GPU-hours" + (f" and {fmt(usd.point, 'usd')}" if usd is not None else "") + "."
    )


JOB_GPU_COLUMNS: list[tuple[str, Callable[[Any], object]]] = [
    ("GPU", lambda g: g.key),
    ("name", lambda g: g.name),
    ("config", lambda g: g.hardware_config),
    ("energy kJ", lambda g: g.telemetry.energy_j / 1e3 if g.telemetry and g.telemetry.energy_j is not None else None),
    ("method", lambda g: g.telemetry.energy_method if g.telemetry else None),
    ("vs integrated %", lambda g: _pct(g.telemetry.energy_disagreement) if g.telemetry else None),
    ("avg W", lambda g: g.telemetry.avg_power_w if g.telemetry else None),
    ("peak W", lambda g: g.telemetry.peak_power_w if g.telemetry else None),
    ("util %", lambda g: _pct(g.telemetry.avg_utilization_ratio) if g.telemetry else None),
    ("SM MHz avg", lambda g: _mhz(g.telemetry.avg_sm_clock_hz) if g.telemetry else None),
    ("SM MHz min", lambda g: _mhz(g.telemetry.min_sm_clock_hz) if g.telemetry else None),
    ("throttled", lambda g: ", ".join(g.telemetry.throttle_reasons) if g.telemetry else None),
    ("peak memory GiB", lambda g: g.peak_memory_used_bytes / 2**30 if g.peak_memory_used_bytes is not None else None),
    ("confidence", lambda g: _confidence(g.telemetry)),
]

JOB_WINDOW_COLUMNS: list[tuple[str, Callable[[Any], object]]] = [
    ("window", lambda w: w.name),
    ("start s", lambda w: w.start_s),
    ("duration s", lambda w: w.duration_s),
    ("energy J", lambda w: w.energy_j),
    ("$", lambda w: w.usd),
    ("tokens", lambda w: w.tokens),
    ("tokens/s", lambda w: w.tokens_per_s),
    ("J/token", lambda w: w.joules_per_token),
    ("MFU %", lambda w: _pct(w.mfu)),
]


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def _mhz(value: float | None) -> float | None:
    return None if value is None else value / 1e6


def _confidence(w) -> str | None:
    if w is None:
        return None
    return "low: " + "; ".join(w.low_confidence_reasons) if w.low_confidence else "ok"


def job_summary(run: Run) -> list[tuple[str, Any]]:
    """The job's own figures, as label and value, for the report's job section."""
    import shlex

    job = run.doc.job
    if job is None:
        return []
    work, cost = job.work, job.cost
    pairs: list[tuple[str, Any]] = [
        ("command", shlex.join(job.command) or "(Python API)"),
        ("exit status", job.exit_status),
        ("signal", job.signal),
        ("interrupted", job.interrupted),
        ("duration s", job.duration_s),
        ("energy J", job.energy_j),
        ("energy", job.energy_reason or "measured"),
        ("mean utilization %", _pct(job.avg_utilization_ratio)),
    ]
    if cost is not None:
        pairs += [
            ("GPUs", cost.gpus),
            ("GPU-hours", cost.gpu_hours),
            ("$ per GPU-hour", cost.usd_per_gpu_hour),
            ("price source", cost.price_source),
            ("rental $", cost.gpu_usd),
            ("energy $ (x PUE x $/kWh)", cost.energy_usd),
            ("total $", cost.total_usd),
        ]
    if work is not None:
        pairs += [
            ("tokens", work.tokens),
            ("tokens from", work.tokens_source),
            ("tokens/s", work.tokens_per_s),
            ("model", f"{work.model} {work.phase} seq {work.seq}" if work.model else None),
            ("TFLOP/s per GPU", work.achieved_tflops),
            ("MFU %", _pct(work.mfu)),
            ("MFU against", work.mfu_basis),
            ("J/token", work.joules_per_token),
        ]
    return pairs + [("note", n) for n in job.notes]
