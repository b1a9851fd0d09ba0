"""What a report shows, extracted from run documents: pure functions, no plotting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.config.paths import ConfigLocator
from meter.errors import MeterError


@dataclass(frozen=True)
class Run:
    path: str
    doc: dict[str, Any]

    @property
    def device(self) -> dict[str, Any]:
        return self.doc["metadata"]["device"]

    @property
    def cpu(self) -> bool:
        return self.device["kind"] == "cpu"

    @property
    def label(self) -> str:
        return f"CPU ({self.device['name']})" if self.cpu else self.device["name"]

    @property
    def name(self) -> str:
        return Path(self.path).name

    def ok_cases(self) -> list[dict[str, Any]]:
        return [c for c in self.doc["cases"] if c.get("status") == "ok" and "metrics" in c]


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
            c["id"],
            c["case"]["phase"],
            c["metrics"]["arithmetic_intensity_flop_per_byte"],
            c["metrics"]["achieved_tflops"] * 1e12,
        )
        for c in run.ok_cases()
        if c["metrics"].get("arithmetic_intensity_flop_per_byte")
    ]
    roofs = {}
    hw = run.doc["metadata"].get("hardware")
    if hw and hw.get("peak_tflops", {}).get("bf16") and hw.get("memory_bandwidth_gb_s"):
        roofs[f"{hw['name']} datasheet (dense bf16, HBM)"] = (
            hw["peak_tflops"]["bf16"] * 1e12,
            hw["memory_bandwidth_gb_s"] * 1e9,
        )
    ceilings = run.doc["metadata"].get("ceilings")
    if ceilings:
        gemm = ceilings["gemm_flops_per_s"]
        dtype = "bf16" if "bf16" in gemm and not run.cpu else next(iter(gemm))
        best = max(gemm.values())
        roofs[f"measured here (best GEMM {max(gemm, key=gemm.get)}, copy)"] = (best, ceilings["copy_bytes_per_s"])
        if gemm.get(dtype) and gemm[dtype] != best:
            roofs[f"measured here ({dtype} GEMM, copy)"] = (gemm[dtype], ceilings["copy_bytes_per_s"])
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
    tl = run.doc.get("telemetry_timeline") or {}
    windows = [
        (c["id"], c["telemetry"]["start_s"], c["telemetry"]["end_s"])
        for c in run.ok_cases()
        if (c.get("telemetry") or {}).get("start_s") is not None
    ]
    out = []
    for key, series in (tl.get("devices") or {}).items():
        throttled = [(t, r) for t, r in zip(series["t_s"], series["throttle_reasons"]) if r]
        out.append(
            Timeline(
                device=f"{series.get('label', key)} ({key})",
                t_s=series["t_s"],
                power_w=series["power_w"],
                utilization_ratio=series["utilization_ratio"],
                sm_clock_hz=series["sm_clock_hz"],
                throttle_t_s=[t for t, _ in throttled],
                throttle_reasons=sorted({x for _, r in throttled for x in r}),
                windows=windows,
            )
        )
    return out


def cost_views(
    run: Run, locator: ConfigLocator | None, *, train_scenario: str, serve_scenario: str, samples: int = 20_000
) -> dict[str, Any]:
    """The run's training cost estimate, and serving cost at every measured decode batch."""
    from meter.config.scenarios import load_scenario
    from meter.cost.estimate import estimate_serve, estimate_train
    from meter.cost.from_run import measured_from_doc

    out: dict[str, Any] = {"train": None, "serve_by_batch": [], "problems": []}
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
    for batch, context in decode:
        try:
            e = estimate_serve(scenario, run=measured, batch=batch, context=context, samples=samples, locator=locator)
        except MeterError as exc:
            out["problems"].append(f"serving at batch {batch}: {exc}")
            continue
        out["serve_by_batch"].append((batch, context, e))
    return out


CASE_COLUMNS = [
    ("model", lambda c: c["case"]["model"]),
    ("case", lambda c: c["id"]),
    ("status", lambda c: c["status"]),
    ("ms/call", lambda c: _m(c, "time_per_call_s", 1e3)),
    ("IQR %", lambda c: _t(c, "spread", 100)),
    ("n", lambda c: _t(c, "n", 1)),
    ("tokens/s", lambda c: _m(c, "tokens_per_s", 1)),
    ("TFLOP/s", lambda c: _m(c, "achieved_tflops", 1)),
    ("GB/s", lambda c: _m(c, "achieved_gb_s", 1)),
    ("FLOP/byte", lambda c: _m(c, "arithmetic_intensity_flop_per_byte", 1)),
    ("MFU %", lambda c: _m(c, "mfu", 100)),
    ("% GEMM ceiling", lambda c: _m(c, "gemm_ceiling_fraction", 100)),
    ("% copy ceiling", lambda c: _m(c, "copy_ceiling_fraction", 100)),
    ("J/token", lambda c: (c.get("telemetry") or {}).get("joules_per_token")),
    ("avg W", lambda c: (c.get("telemetry") or {}).get("avg_power_w")),
    ("throttled", lambda c: ", ".join((c.get("telemetry") or {}).get("throttle_reasons") or []) or None),
    ("reason", lambda c: c.get("reason")),
]


def _m(case: dict, key: str, scale: float) -> float | None:
    value = (case.get("metrics") or {}).get(key)
    return None if value is None else value * scale


def _t(case: dict, key: str, scale: float) -> float | None:
    value = (case.get("timing") or {}).get(key)
    return None if value is None else value * scale


def case_rows(run: Run) -> list[list[Any]]:
    return [[fn(c) for _, fn in CASE_COLUMNS] for c in run.doc["cases"]]
