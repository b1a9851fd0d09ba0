"""Compare two runs case by case: ratios, and whether a difference is larger than the runs' own spread.

A difference is called noise only when it lies inside both runs' own spread: each run's median
within half the other run's interquartile range of it (every metric here is a median time turned
into a rate, so the timing medians decide). A factor of two or more is never noise, whatever the
spread: a 230x change is a change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from meter.errors import UsageError
from meter.results.document import RunDocument
from meter.results.records import CaseResult

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


def _value(case: CaseResult | None, metric: str) -> float | None:
    if case is None:
        return None
    where = getattr(case, METRICS[metric][1])
    return getattr(where, metric) if where is not None else None


NEVER_NOISE_FACTOR = 2.0


def within_both_spreads(a: CaseResult, b: CaseResult) -> bool:
    """Whether the two medians lie within half of each run's own interquartile range of each other."""
    ta, tb = a.timing, b.timing
    if ta is None or tb is None or ta.median_s <= 0 or tb.median_s <= 0:
        return False
    factor = max(ta.median_s, tb.median_s) / min(ta.median_s, tb.median_s)
    if factor >= NEVER_NOISE_FACTOR:
        return False
    gap = abs(tb.median_s - ta.median_s)
    return gap <= ta.iqr_s / 2 and gap <= tb.iqr_s / 2


def compare(doc_a: RunDocument, doc_b: RunDocument, metrics: list[str] | None = None) -> list[Comparison]:
    """Every metric of every case either run measured; refuses runs of different models."""
    models_a, models_b = doc_a.models_measured(), doc_b.models_measured()
    if models_a and models_b and not models_a & models_b:
        raise UsageError(
            f"the runs measured different models ({', '.join(sorted(models_a))} against "
            f"{', '.join(sorted(models_b))}); compare runs of the same model"
        )
    metrics = metrics or list(METRICS)
    cases_a = {(c.case.model, c.id): c for c in doc_a.ok_cases()}
    cases_b = {(c.case.model, c.id): c for c in doc_b.ok_cases()}
    out = []
    for key in sorted(set(cases_a) | set(cases_b)):
        a, b = cases_a.get(key), cases_b.get(key)
        for metric in metrics:
            if a is None or b is None:
                if _value(a or b, metric) is not None:
                    out.append(
                        Comparison(
                            key[0],
                            key[1],
                            metric,
                            _value(a, metric),
                            _value(b, metric),
                            None,
                            False,
                            "only in A" if b is None else "only in B",
                        )
                    )
                continue
            va, vb = _value(a, metric), _value(b, metric)
            if va is None or vb is None or va == 0:
                continue
            ratio = vb / va
            noise = within_both_spreads(a, b)
            higher_better = METRICS[metric][2]
            verdict = "noise" if noise else ("better" if (ratio > 1) == higher_better else "worse")
            out.append(Comparison(key[0], key[1], metric, va, vb, ratio, noise, verdict))
    return out
