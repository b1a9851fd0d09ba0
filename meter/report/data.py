"""What a report shows, extracted from run documents: pure functions, no plotting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.config.paths import ConfigLocator
from meter.errors import MeterError
from meter.results.document import RunDocument
from meter.results.records import CaseResult


@dataclass(frozen=True)
class Run:
    path: str
    doc: RunDocument

    @property
    def cpu(self) -> bool:
        return self.doc.cpu

    @property
    def label(self) -> str:
        return self.doc.metadata.device.label

    @property
    def name(self) -> str:
        return Path(self.path).name

    def ok_cases(self) -> list[CaseResult]:
        return self.doc.ok_cases()


@dataclass(frozen=True)
class FrontierView:
    """One serving-frontier plot: the predicted curves (with bounds) of the measured layouts, the
    measured points priced at their own setups, and how far apart they are."""

    title: str
    points: tuple[Any, ...]  # meter.cost.frontier.FrontierPoint
    measured: tuple[Any, ...]  # meter.cost.serving_fit.ValidationPoint
    median_abs_error: float
    median_abs_error_per_user: float
    above_bound: int
    efficiencies_from: str


@dataclass(frozen=True)
class RooflinePoint:
    label: str
    phase: str
    intensity: float  # FLOP per byte (analytic)
    flops_per_s: float  # achieved


@dataclass
class Roofline:
    device: str
    points: list[RooflinePoint]
    # name -> (compute FLOP/s, bandwidth bytes/s): the datasheet's and the measured ceilings
    roofs: dict[str, tuple[float, float]] = field(default_factory=dict)


def roofline(run: Run) -> Roofline:
    points = [
        RooflinePoint(
            c.id, c.case.phase, c.metrics.arithmetic_intensity_flop_per_byte, c.metrics.achieved_tflops * 1e12
        )
        for c in run.ok_cases()
        if c.metrics.arithmetic_intensity_flop_per_byte
    ]
    roofs = {}
    hw = run.doc.metadata.hardware
    if hw and hw.peak_flops("bf16") and hw.memory_bandwidth_bytes_per_s:
        roofs[f"{hw.name} datasheet (dense bf16, HBM)"] = (hw.peak_flops("bf16"), hw.memory_bandwidth_bytes_per_s)
    ceilings = run.doc.metadata.ceilings
    if ceilings and ceilings.gemm_flops_per_s:
        gemm = ceilings.gemm_flops_per_s
        dtype = "bf16" if "bf16" in gemm and not run.cpu else next(iter(gemm))
        best = max(gemm.values())
        roofs[f"measured here (best GEMM {max(gemm, key=gemm.get)}, copy)"] = (best, ceilings.copy_bytes_per_s)
        if gemm.get(dtype) and gemm[dtype] != best:
            roofs[f"measured here ({dtype} GEMM, copy)"] = (gemm[dtype], ceilings.copy_bytes_per_s)
    return Roofline(run.label, points, roofs)


@dataclass
class Timeline:
    device: str
    t_s: list[float]
    power_w: list[float | None]
    utilization_ratio: list[float | None]
    sm_clock_hz: list[float | None]
    throttle_t_s: list[float]
    throttle_reasons: list[str]
    windows: list[tuple[str, float, float]]  # case id, start, end (s)


def timelines(run: Run) -> list[Timeline]:
    tl = run.doc.telemetry_timeline
    if tl is None:
        return []
    windows = [
        (c.id, c.telemetry.start_s, c.telemetry.end_s)
        for c in run.ok_cases()
        if c.telemetry is not None and c.telemetry.start_s is not None and c.telemetry.end_s is not None
    ]
    if run.doc.job is not None:  # a job's own windows (the Python API), at most a plot's worth of them
        windows += [(w.name, w.start_s, w.end_s) for w in run.doc.job.windows[:MAX_SHADED_WINDOWS]]
    out = []
    for key, series in tl.devices.items():
        throttled = [(t, r) for t, r in zip(series.t_s, series.throttle_reasons) if r]
        out.append(
            Timeline(
                device=f"{series.label} ({key})",
                t_s=list(series.t_s),
                power_w=list(series.power_w),
                utilization_ratio=list(series.utilization_ratio),
                sm_clock_hz=list(series.sm_clock_hz),
                throttle_t_s=[t for t, _ in throttled],
                throttle_reasons=sorted({x for _, r in throttled for x in r}),
                windows=windows,
            )
        )
    return out


MAX_SHADED_WINDOWS = 200


def cost_views(
    run: Run, locator: ConfigLocator | None, *, train_scenario: str, serve_scenario: str, samples: int = 20_000
) -> dict[str, Any]:
    """The run's training cost estimate, and serving cost at every measured decode batch."""
    from meter.config.scenarios import load_scenario
    from meter.cost.estimate import estimate_serve, estimate_train
    from meter.cost.from_run import measured_from_doc

    out: dict[str, Any] = {"train": None, "serve": None, "serve_by_batch": [], "problems": []}
    if run.doc.kind == "job":
        return _job_cost_views(run, locator, train_scenario, samples, out)
    try:
        measured = measured_from_doc(run.doc, run.path)
    except MeterError as exc:
        out["problems"].append(str(exc))
        return out
    try:
        out["train"] = estimate_train(
            load_scenario(train_scenario, locator), run=measured, samples=samples, locator=locator
        )
    except MeterError as exc:
        out["problems"].append(f"training: {exc}")
    decode = sorted({(r.batch, r.context) for r in measured.phases.get("decode", []) if r.form != "naive"})
    scenario = load_scenario(serve_scenario, locator)
    try:  # the figure `meter run` prints for this run file: the scenario's deployment, priced from the run
        out["serve"] = estimate_serve(scenario, run=measured, samples=samples, locator=locator)
    except MeterError as exc:
        out["problems"].append(f"serving: {exc}")
    for batch, context in decode:
        try:
            e = estimate_serve(scenario, run=measured, batch=batch, context=context, samples=samples, locator=locator)
        except MeterError as exc:
            out["problems"].append(f"serving at batch {batch}: {exc}")
            continue
        out["serve_by_batch"].append((batch, context, e))
    return out


def _job_cost_views(run: Run, locator, train_scenario: str, samples: int, out: dict[str, Any]) -> dict[str, Any]:
    """A measured job priced at its end-to-end MFU: what the training scenario would take at that MFU."""
    from meter.config.scenarios import load_scenario
    from meter.cost.from_job import estimate_from_job, job_rate

    try:
        rate = job_rate(run.doc, run.path)
        out["train"] = estimate_from_job(load_scenario(train_scenario, locator), rate, samples=samples, locator=locator)
    except MeterError as exc:
        out["problems"].append(f"training: {exc}")
    return out


def _metric(name: str, scale: float) -> Callable[[CaseResult], float | None]:
    def get(c: CaseResult) -> float | None:
        value = getattr(c.metrics, name) if c.metrics is not None else None
        return None if value is None else value * scale

    return get


def _timing(name: str, scale: float) -> Callable[[CaseResult], float | None]:
    def get(c: CaseResult) -> float | None:
        return getattr(c.timing, name) * scale if c.timing is not None else None

    return get


def _telemetry(name: str) -> Callable[[CaseResult], float | None]:
    return lambda c: getattr(c.telemetry, name) if c.telemetry is not None else None


CASE_COLUMNS: list[tuple[str, Callable[[CaseResult], object]]] = [
    ("model", lambda c: c.case.model),
    ("case", lambda c: c.id),
    ("status", lambda c: c.status),
    ("ms/call", _metric("time_per_call_s", 1e3)),
    ("IQR %", _timing("spread", 100)),
    ("n", _timing("n", 1)),
    ("tokens/s", _metric("tokens_per_s", 1)),
    ("TFLOP/s", _metric("achieved_tflops", 1)),
    ("GB/s", _metric("achieved_gb_s", 1)),
    ("FLOP/byte", _metric("arithmetic_intensity_flop_per_byte", 1)),
    ("MFU %", _metric("mfu", 100)),
    ("% GEMM ceiling", _metric("gemm_ceiling_fraction", 100)),
    ("% copy ceiling", _metric("copy_ceiling_fraction", 100)),
    ("J/token", _telemetry("joules_per_token")),
    ("avg W", _telemetry("avg_power_w")),
    (
        "throttled",
        lambda c: ", ".join(c.telemetry.throttle_reasons) if c.telemetry and c.telemetry.throttle_reasons else None,
    ),
    ("reason", lambda c: c.reason),
]


def case_rows(run: Run) -> list[list[Any]]:
    return [[fn(c) for _, fn in CASE_COLUMNS] for c in run.doc.cases]
