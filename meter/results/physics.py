"""What a run file must agree with: itself, and physics. Each rule refuses in one line, naming the field.

A run file is measured data, so its figures are tied to each other: a timing's minimum is not above
its maximum, a rate is its count over its time, energy is power over time, an MFU is the achieved
rate over the datasheet peak the file names (and that peak is the named hardware's). A file that
breaks one of these was edited or written by something else, and every figure read from it would
be silently wrong. Tolerances are loose enough for honest measurements (rounding, sampled power)
and tight enough to catch the contradictions seen in the wild (an MFU of 5, a peak a billion times
too small, a duration of 5e-324 s).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

from meter.errors import RunFileError
from meter.results.document import HardwareSummary, RunDocument
from meter.results.records import CaseMetrics, CaseResult, TelemetryWindow, Timing

RATE_TOLERANCE = 1e-3  # figures computed from one another: only rounding separates them
ENERGY_TOLERANCE = 0.05  # energy against average power x duration (both written from one counter)
PEAK_TOLERANCE = 1.05  # an achieved rate may not exceed the largest datasheet peak by more than this
PEAK_MISMATCH = 1.5  # a file's peak against the named hardware config's: a revised datasheet is closer
MAX_TFLOPS = 100_000.0  # per device, whatever the hardware: 5x the densest 2026 datasheet (sparse FP4)
MAX_MFU_WITHOUT_PEAKS = 4.0  # FP4 dense peaks are 4x bf16; without the peaks, nothing higher is possible

Where = Path | str | None


def _error(where: Where, field: str, problem: str, value: object) -> RunFileError:
    return RunFileError(where, field, problem, value)


def close(a: float, b: float, rel: float = RATE_TOLERANCE) -> bool:
    if not (math.isfinite(a) and math.isfinite(b)):
        return False  # a figure from a time of 5e-324 s: infinite, and nothing it agrees with
    return abs(a - b) <= rel * max(abs(a), abs(b)) + 1e-300


def timing_in_order(t: Timing, where: Where, field: str) -> None:
    """min <= p10 <= median <= p90 <= max, and the mean inside [min, max]."""
    slack = 1e-9 * t.max_s
    order = [("min_s", t.min_s), ("p10_s", t.p10_s), ("median_s", t.median_s), ("p90_s", t.p90_s), ("max_s", t.max_s)]
    for (low_name, low), (high_name, high) in zip(order, order[1:], strict=False):
        if low > high + slack:
            raise _error(where, f"{field}.{high_name}", f"below {low_name} ({low:g} s)", high)
    if not t.min_s - slack <= t.mean_s <= t.max_s + slack:
        raise _error(where, f"{field}.mean_s", f"outside min_s..max_s ({t.min_s:g}..{t.max_s:g} s)", t.mean_s)


def energy_is_power_times_time(w: TelemetryWindow, where: Where, field: str) -> None:
    if w.energy_j is None or w.avg_power_w is None or w.duration_s <= 0:
        return
    expected = w.avg_power_w * w.duration_s
    if not close(w.energy_j, expected, ENERGY_TOLERANCE):
        raise _error(where, f"{field}.energy_j", f"is not avg_power_w x duration_s ({expected:.6g} J)", w.energy_j)
    for key, device in (w.devices or {}).items():
        energy_is_power_times_time(device, where, f"{field}.devices.{key}")


def metrics_agree(m: CaseMetrics, hw: HardwareSummary | None, where: Where, field: str) -> None:
    """Rates are counts over times; MFU is the achieved rate over the file's own bf16 peak, below every peak."""
    if not close(m.tokens_per_s * m.time_per_token_s, 1.0):
        raise _error(
            where,
            f"{field}.tokens_per_s",
            f"is not 1 / time_per_token_s ({1 / m.time_per_token_s:.6g})",
            m.tokens_per_s,
        )
    achieved = m.flops_per_call / m.time_per_call_s / 1e12
    if not close(m.achieved_tflops, achieved):
        raise _error(
            where,
            f"{field}.achieved_tflops",
            f"is not flops_per_call / time_per_call_s ({achieved:.6g} TFLOP/s)",
            m.achieved_tflops,
        )
    achieved_limit(m.achieved_tflops, m.mfu, hw, where, field)


def achieved_limit(tflops: float | None, mfu: float | None, hw: HardwareSummary | None, where: Where, field: str):
    """An achieved rate no device reaches, or one above the file's own largest peak; an MFU off its peak."""
    peaks = dict(hw.peak_tflops) if hw is not None else {}
    bf16 = peaks.get("bf16")
    if tflops is not None:
        top = max(peaks.values(), default=None)
        if top is not None and tflops > top * PEAK_TOLERANCE:
            raise _error(
                where,
                f"{field}.achieved_tflops",
                f"above the largest datasheet peak of {hw.name} ({top:g} TFLOP/s): the time or the FLOPs are wrong",
                tflops,
            )
        if tflops > MAX_TFLOPS:
            raise _error(
                where, f"{field}.achieved_tflops", f"above what any device reaches ({MAX_TFLOPS:g} TFLOP/s)", tflops
            )
    if mfu is None:
        return
    if bf16 and tflops is not None and not close(mfu, tflops / bf16):
        raise _error(
            where,
            f"{field}.mfu",
            f"is not achieved_tflops over the bf16 peak of {hw.name} ({tflops / bf16:.6g})",
            mfu,
        )
    limit = max(peaks.values()) / bf16 * PEAK_TOLERANCE if bf16 else MAX_MFU_WITHOUT_PEAKS
    if mfu > limit:
        raise _error(where, f"{field}.mfu", f"above the physical limit of this hardware ({limit:.3g})", mfu)


@functools.lru_cache(maxsize=64)
def _config_peaks(name: str) -> tuple[tuple[str, float], ...] | None:
    """The datasheet peaks of the hardware config ``name``, or None when there is no such GPU config."""
    from meter.config.hardware import load_hardware
    from meter.errors import MeterError

    try:
        spec = load_hardware(name)
    except (MeterError, OSError):
        return None
    if spec.kind != "gpu":
        return None  # a CPU's peaks are measured on the machine, not a datasheet's
    return tuple((dtype, float(v)) for dtype, v in spec.peak_tflops.items())


def peaks_are_the_hardwares(hw: HardwareSummary | None, where: Where) -> None:
    if hw is None or "/" in hw.name or hw.name.endswith((".yaml", ".yml")):
        return
    known = _config_peaks(hw.name)
    if known is None:
        return
    for dtype, peak in known:
        stated = hw.peak_tflops.get(dtype)
        if stated is not None and not (peak / PEAK_MISMATCH <= stated <= peak * PEAK_MISMATCH):
            raise _error(
                where,
                f"metadata.hardware.peak_tflops.{dtype}",
                f"is not the datasheet peak of {hw.name} ({peak:g} TFLOP/s)",
                stated,
            )


def check_physics(doc: RunDocument, where: Where) -> None:
    for rule in PHYSICS_RULES:
        rule(doc, where)


def check_case(case: CaseResult, hw: HardwareSummary | None, where: Where, field: str) -> None:
    """One case's own figures: its timing in order, its rates from its times, its energy from its power."""
    if case.timing is not None:
        timing_in_order(case.timing, where, f"{field}.timing")
    for j, part in enumerate(case.parts):
        timing_in_order(part.timing, where, f"{field}.parts[{j}].timing")
    if case.metrics is not None:
        metrics_agree(case.metrics, hw, where, f"{field}.metrics")
    if case.telemetry is not None:
        energy_is_power_times_time(case.telemetry, where, f"{field}.telemetry")


def _cases(doc: RunDocument, where: Where) -> None:
    seen: dict[str, int] = {}
    hw = doc.metadata.hardware
    for i, case in enumerate(doc.cases):
        if case.status == "ok":  # two measurements of one case: which one the id means cannot be told
            if case.id in seen:
                raise _error(where, f"cases[{i}].id", f"the id of cases[{seen[case.id]}] too", case.id)
            seen[case.id] = i
        check_case(case, hw, where, f"cases[{i}]")


def _projections(doc: RunDocument, where: Where) -> None:
    by_id = {c.id: c for c in doc.cases}
    for i, p in enumerate(doc.projections):
        total = 0.0
        for kind, layer in p.layers.items():
            case = by_id.get(layer.case_id)
            if case is not None and case.metrics is not None:
                measured = case.metrics.time_per_token_s
                if not close(layer.time_per_token_s, measured):
                    raise _error(
                        where,
                        f"projections[{i}].layers.{kind}.time_per_token_s",
                        f"is not the time of case {layer.case_id!r} ({measured:.6g} s)",
                        layer.time_per_token_s,
                    )
            total += layer.count * layer.time_per_token_s
        if p.layers and not close(p.time_per_token_s, total):
            raise _error(
                where,
                f"projections[{i}].time_per_token_s",
                f"is not the sum of its layers' times ({total:.6g} s)",
                p.time_per_token_s,
            )
        if not close(p.tokens_per_s * p.time_per_token_s, 1.0):
            raise _error(where, f"projections[{i}].tokens_per_s", "is not 1 / time_per_token_s", p.tokens_per_s)
        tflops = p.flops_per_token * p.tokens_per_s / 1e12 if p.flops_per_token else None
        achieved_limit(tflops, p.mfu, doc.metadata.hardware, where, f"projections[{i}]")


def _communication(doc: RunDocument, where: Where) -> None:
    for i, r in enumerate(doc.communication):
        slack = 1e-9 * r.time_max_s
        if not r.time_min_s - slack <= r.time_s <= r.time_max_s + slack:
            raise _error(
                where,
                f"communication[{i}].time_s",
                f"outside time_min_s..time_max_s ({r.time_min_s:g}..{r.time_max_s:g} s)",
                r.time_s,
            )


def _job(doc: RunDocument, where: Where) -> None:
    job = doc.job
    if job is None:
        return
    if job.telemetry is not None:
        energy_is_power_times_time(job.telemetry, where, "job.telemetry")
    work = job.work
    hw = doc.metadata.hardware
    if work is not None and work.achieved_tflops is not None and work.mfu is not None:
        bf16 = hw.peak_tflops.get("bf16") if hw is not None else None
        if bf16 and not close(work.mfu, work.achieved_tflops / bf16):
            raise _error(
                where,
                "job.work.mfu",
                f"is not achieved_tflops over the bf16 peak of {hw.name} ({work.achieved_tflops / bf16:.6g})",
                work.mfu,
            )
    if work is not None and work.achieved_tflops is not None and work.tokens_per_s and work.flops_per_token:
        gpus = job.cost.gpus if job.cost is not None else len(job.gpus)
        if gpus:
            expected = work.tokens_per_s * work.flops_per_token / gpus / 1e12
            if not close(work.achieved_tflops, expected):
                raise _error(
                    where,
                    "job.work.achieved_tflops",
                    f"is not tokens_per_s x flops_per_token over the {gpus} GPU(s) ({expected:.6g})",
                    work.achieved_tflops,
                )
    for i, w in enumerate(job.windows):
        if w.tokens is not None and w.tokens_per_s is not None and w.duration_s > 0:
            expected = w.tokens / w.duration_s
            if not close(w.tokens_per_s, expected):
                raise _error(
                    where,
                    f"job.windows[{i}].tokens_per_s",
                    f"is not tokens / duration_s ({expected:.6g})",
                    w.tokens_per_s,
                )


def _hardware(doc: RunDocument, where: Where) -> None:
    peaks_are_the_hardwares(doc.metadata.hardware, where)


PHYSICS_RULES: tuple[Callable[[RunDocument, Where], None], ...] = (
    _hardware,
    _cases,
    _projections,
    _communication,
    _job,
)
