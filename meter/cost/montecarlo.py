"""Evaluate a cost model at the central inputs and, for ranges, by Monte Carlo (P10/P50/P90)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from meter.config.quantity import Quantity


@dataclass(frozen=True)
class Summary:
    point: float  # the model at the central value of every input
    p10: float
    p50: float
    p90: float
    mean: float

    @property
    def is_range(self) -> bool:
        return not (self.p10 == self.p90 == self.point)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate(
    model: Callable[[Mapping[str, Any]], dict[str, Any]], inputs: Mapping[str, Quantity], *, samples: int, seed: int = 0
) -> dict[str, Summary]:
    """Every output of ``model``; ranges only where some input is one and ``samples`` > 0."""
    point = model({k: q.central for k, q in inputs.items()})
    uncertain = any(not q.is_point for q in inputs.values())
    if not uncertain or samples <= 0:
        return {k: Summary(float(v), float(v), float(v), float(v), float(v)) for k, v in point.items()}
    rng = np.random.default_rng(seed)
    drawn = {k: q.sample(samples, rng) for k, q in inputs.items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        out = model(drawn)
    result = {}
    for k, v in out.items():
        arr = np.broadcast_to(np.asarray(v, dtype=float), (samples,))
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            continue
        p10, p50, p90 = np.percentile(arr, [10, 50, 90])
        result[k] = Summary(float(point[k]), float(p10), float(p50), float(p90), float(arr.mean()))
    return result
