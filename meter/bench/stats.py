"""Summary statistics of repeated timings: the median and the spread, in seconds."""

from __future__ import annotations

import math
import statistics

from meter.results.records import Timing


def quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation quantile of already sorted values (numpy's default method)."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(samples_s: list[float]) -> Timing:
    """Median, mean, spread and quantiles of per-call seconds; spread = IQR / median."""
    if not samples_s:
        raise ValueError("no timing samples")
    xs = sorted(samples_s)
    median = statistics.median(xs)
    iqr = quantile(xs, 0.75) - quantile(xs, 0.25)
    return Timing(
        n=len(xs),
        median_s=median,
        mean_s=statistics.fmean(xs),
        stdev_s=statistics.stdev(xs) if len(xs) > 1 else 0.0,
        min_s=xs[0],
        max_s=xs[-1],
        p10_s=quantile(xs, 0.10),
        p90_s=quantile(xs, 0.90),
        iqr_s=iqr,
        spread=iqr / median if median > 0 else math.nan,
    )
