"""Compare two runs case by case: ratios, and whether a difference is larger than the runs' own spread.

A difference counts as real only when the two medians differ by more than the larger of the two
runs' interquartile ranges (scaled to the metric); otherwise it is flagged as noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# metric -> (label, where it lives, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "time_per_call_s": ("ms per call", "metrics", False),
    "tokens_per_s": ("tokens/s", "metrics", True),
    "achieved_tflops": ("TFLOP/s", "metrics", True),
    "achieved_gb_s": ("GB/s", "metrics", True),
    "mfu": ("MFU", "metrics", True),
    "joules_per_token": ("J/token", "telemetry", False),
}


@dataclass(frozen=True)
class Comparison:
    model: str
    case: str
    metric: str
    a: float | None
    b: float | None
    ratio: float | None  # b / a
    noise: bool  # |difference| within the runs' own spread
    verdict: str  # better, worse, noise, only in A, only in B, n/a

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _value(case: dict, metric: str) -> float | None:
    where = METRICS[metric][1]
    return (case.get(where) or {}).get(metric)


def _relative_spread(case: dict) -> float:
    timing = case.get("timing") or {}
    median, iqr = timing.get("median_s"), timing.get("iqr_s")
    return iqr / median if median and iqr is not None else 0.0


def compare(doc_a: dict, doc_b: dict, metrics: list[str] | None = None) -> list[Comparison]:
    metrics = metrics or list(METRICS)
    cases_a = {(c["case"]["model"], c["id"]): c for c in doc_a["cases"] if c.get("status") == "ok"}
    cases_b = {(c["case"]["model"], c["id"]): c for c in doc_b["cases"] if c.get("status") == "ok"}
    out = []
    for key in sorted(set(cases_a) | set(cases_b)):
        a, b = cases_a.get(key), cases_b.get(key)
        for metric in metrics:
            if a is None or b is None:
                value = _value(a or b, metric)
                out.append(
                    Comparison(
                        key[0],
                        key[1],
                        metric,
                        _value(a, metric) if a else None,
                        _value(b, metric) if b else None,
                        None,
                        False,
                        "only in A" if b is None else "only in B",
                    )
                )
                if value is None:
                    out.pop()
                continue
            va, vb = _value(a, metric), _value(b, metric)
            if va is None or vb is None or va == 0:
                continue
            ratio = vb / va
            # every metric here is a median time turned into a rate, so the timing spread carries over
            noise = abs(ratio - 1.0) <= max(_relative_spread(a), _relative_spread(b))
            higher_better = METRICS[metric][2]
            verdict = "noise" if noise else ("better" if (ratio > 1) == higher_better else "worse")
            out.append(Comparison(key[0], key[1], metric, va, vb, ratio, noise, verdict))
    return out
