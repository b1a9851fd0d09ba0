"""Summary statistics of repeated timings: the median and the spread, in seconds."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class TimingStats:
    n: int
    median_s: float
    mean_s: float
    stdev_s: float
    min_s: float
    max_s: float
    p10_s: float
    p90_s: float
    iqr_s: float

    @property
    def spread(self) -> float:
        """Relative spread: interquartile range over the median."""
        return self.iqr_s / self.median_s if self.median_s > 0 else math.nan

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "spread": self.spread}


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s: list[float]) -> TimingStats:
    if not samples_s:
        raise ValueError("no timing samples")
    xs = sorted(samples_s)
    return TimingStats(
        n=len(xs),
        median_s=statistics.median(xs),
        mean_s=statistics.fmean(xs),
        stdev_s=statistics.stdev(xs) if len(xs) > 1 else 0.0,
        min_s=xs[0],
        max_s=xs[-1],
        p10_s=quantile(xs, 0.10),
        p90_s=quantile(xs, 0.90),
        iqr_s=quantile(xs, 0.75) - quantile(xs, 0.25),
    )
