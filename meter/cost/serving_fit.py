"""Measured serving points against the step model: validation, and the fit of its free parameters.

An :class:`Observation` is a measured point (output tokens/s per GPU, tokens/s per user) with the
work of the same setup (:class:`meter.cost.frontier.PointWork`: its own layout, GPU count,
lengths and MTP). :func:`validate` prices each at its own setup and sets the prediction and the
bound beside the measurement; a measured point above the bound means the model is wrong there.
:func:`fit` finds the few free parameters (:data:`FREE`: HBM and GEMM efficiency, the per-layer,
per-step and per-collective overheads, and the MTP acceptance) that minimise the squared log
errors of both measures, with a Nelder-Mead search written here (scipy is not a dependency), each
parameter kept inside its range by a logistic map. Nothing here reads a file.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from meter.cost.frontier import FrontierPoint, PointWork, time_point
from meter.cost.serving_step import DEFAULTS, Efficiencies

# (name, low, high): the parameters a fit moves, each inside a range no GPU leaves
FREE: tuple[tuple[str, float, float], ...] = (
    ("memory", 0.2, 1.0),
    ("gemm_compute", 0.2, 1.0),
    ("layer_overhead_s", 1e-6, 5e-4),
    ("step_overhead_s", 1e-5, 2e-2),
    ("link_latency_s", 1e-6, 2e-4),
    ("mtp_acceptance", 0.3, 0.95),
)
DEFAULT_ACCEPTANCE = 0.7


@dataclass(frozen=True)
class Observation:
    """A measured point and the work of its setup."""

    setup: str  # what was measured: engine, precision, layout, lengths
    work: PointWork
    output_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    framework: str = ""

    @property
    def layout(self) -> str:
        return self.work.layout.label

    @property
    def group(self) -> str:
        """What leave-one-layout-out leaves out together: one engine's layout."""
        return f"{self.framework} {self.layout}".strip()


@dataclass(frozen=True)
class Calibration:
    """Fitted parameters and how well they fit the points they were fitted to."""

    efficiencies: Efficiencies
    mtp_acceptance: float
    points: int
    median_abs_error: float  # of output tokens/s per GPU, |predicted / measured - 1|
    median_abs_error_per_user: float
    rms_log_error: float


@dataclass(frozen=True)
class ValidationPoint:
    setup: str
    layout: str
    concurrency: int
    gpus: int
    isl: int
    osl: int
    measured_output_tokens_per_s_per_gpu: float
    predicted_output_tokens_per_s_per_gpu: float
    output_tokens_per_s_per_gpu_bound: float
    measured_tokens_per_s_per_user: float
    predicted_tokens_per_s_per_user: float
    tokens_per_s_per_user_bound: float

    @property
    def above_bound(self) -> bool:
        return self.measured_output_tokens_per_s_per_gpu > self.output_tokens_per_s_per_gpu_bound

    @property
    def error(self) -> float:
        return self.predicted_output_tokens_per_s_per_gpu / self.measured_output_tokens_per_s_per_gpu - 1

    @property
    def error_per_user(self) -> float:
        return self.predicted_tokens_per_s_per_user / self.measured_tokens_per_s_per_user - 1


@dataclass(frozen=True)
class Validation:
    points: tuple[ValidationPoint, ...]
    median_abs_error: float
    median_abs_error_per_user: float
    points_above_bound: tuple[ValidationPoint, ...]
    source: str  # where the efficiencies came from


def predict(o: Observation, e: Efficiencies, acceptance: float) -> FrontierPoint:
    return time_point(o.work, e, acceptance=acceptance)


def validate(
    observations: Sequence[Observation], e: Efficiencies, acceptance: float = DEFAULT_ACCEPTANCE
) -> Validation:
    points = []
    for o in observations:
        p = predict(o, e, acceptance)
        points.append(
            ValidationPoint(
                o.setup,
                o.layout,
                o.work.concurrency,
                o.work.layout.gpus,
                o.work.workload.isl,
                o.work.workload.osl,
                o.output_tokens_per_s_per_gpu,
                p.output_tokens_per_s_per_gpu,
                p.output_tokens_per_s_per_gpu_bound,
                o.tokens_per_s_per_user,
                p.tokens_per_s_per_user,
                p.tokens_per_s_per_user_bound,
            )
        )
    return Validation(
        tuple(points),
        _median_abs(p.error for p in points),
        _median_abs(p.error_per_user for p in points),
        tuple(p for p in points if p.above_bound),
        e.source,
    )


def _median_abs(errors) -> float:
    values = [abs(x) for x in errors]
    return statistics.median(values) if values else float("nan")


def _unpack(z: np.ndarray, start: Efficiencies, source: str) -> tuple[Efficiencies, float]:
    values = {name: lo + (hi - lo) / (1 + math.exp(-float(v))) for (name, lo, hi), v in zip(FREE, z, strict=True)}
    acceptance = values.pop("mtp_acceptance")
    return start.with_values(source, **values), acceptance


def _pack(e: Efficiencies, acceptance: float) -> np.ndarray:
    out = []
    for name, lo, hi in FREE:
        v = acceptance if name == "mtp_acceptance" else getattr(e, name)
        share = min(max((v - lo) / (hi - lo), 1e-6), 1 - 1e-6)
        out.append(math.log(share / (1 - share)))
    return np.array(out)


def _residuals(observations: Sequence[Observation], e: Efficiencies, acceptance: float) -> list[float]:
    out = []
    for o in observations:
        p = predict(o, e, acceptance)
        out.append(math.log(p.output_tokens_per_s_per_gpu / o.output_tokens_per_s_per_gpu))
        out.append(math.log(p.tokens_per_s_per_user / o.tokens_per_s_per_user))
    return out


def fit(
    observations: Sequence[Observation],
    *,
    start: Efficiencies = DEFAULTS,
    acceptance: float = DEFAULT_ACCEPTANCE,
    source: str = "fitted to measured serving points",
    iterations: int = 400,
) -> Calibration:
    """Least squares in log space of both measures over every point; the acceptance is only
    moved when some point runs MTP."""
    if not observations:
        raise ValueError("no measured points to fit")
    mtp = any(o.work.engine.mtp_draft_tokens for o in observations)

    def loss(z: np.ndarray) -> float:
        e, acc = _unpack(z, start, source)
        if not mtp:
            acc = acceptance
        r = _residuals(observations, e, acc)
        return sum(x * x for x in r) / len(r)

    z = nelder_mead(loss, _pack(start, acceptance), iterations=iterations)
    e, acc = _unpack(z, start, source)
    if not mtp:
        acc = acceptance
    v = validate(observations, e, acc)
    return Calibration(e, acc, len(observations), v.median_abs_error, v.median_abs_error_per_user, math.sqrt(loss(z)))


def leave_one_layout_out(observations: Sequence[Observation], **fit_options) -> Validation:
    """Each layout's points (one engine's) predicted by a fit to every other layout's points."""
    held: list[ValidationPoint] = []
    for group in sorted({o.group for o in observations}):
        rest = [o for o in observations if o.group != group]
        mine = [o for o in observations if o.group == group]
        if not rest:
            continue
        c = fit(rest, **fit_options)
        held.extend(validate(mine, c.efficiencies, c.mtp_acceptance).points)
    return Validation(
        tuple(held),
        _median_abs(p.error for p in held),
        _median_abs(p.error_per_user for p in held),
        tuple(p for p in held if p.above_bound),
        "leave one layout out",
    )


def nelder_mead(
    f: Callable[[np.ndarray], float], x0: np.ndarray, *, iterations: int = 400, step: float = 0.5, tol: float = 1e-7
) -> np.ndarray:
    """Minimise ``f`` from ``x0`` by the Nelder-Mead simplex (reflection 1, expansion 2,
    contraction and shrink 0.5)."""
    n = len(x0)
    simplex = [np.array(x0, dtype=float)] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iterations):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if abs(values[-1] - values[0]) <= tol * (abs(values[0]) + tol):
            break
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        reflected = centroid + (centroid - worst)
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2 * (centroid - worst)
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            inside = fr < values[-1]
            contracted = centroid + 0.5 * ((reflected if inside else worst) - centroid)
            fc = f(contracted)
            if fc < min(fr, values[-1]):
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [best + 0.5 * (x - best) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    return simplex[int(np.argmin(values))]
