"""Where a number makes sense: one table of domains shared by command-line flags and config files.

A flag (``--batch``, ``--sample-hz``, ``--samples``) and the config field that means the same thing
(a suite's ``batch`` axis) are checked against the same :class:`Domain`, so a value refused on the
command line is refused in a file too, with the same words. Upper bounds are there to stop absurd
values (``--seq 1e300``) before they become memory or arithmetic errors, not to limit real use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

# What a workload does, in the names the whole tree uses (cases, jobs, suites, the analytic counts).
Phase = Literal["train", "prefill", "decode"]
InferencePhase = Literal["prefill", "decode"]  # a served model's (what the sparse-attention formulas take)


@dataclass(frozen=True)
class Domain:
    """An interval of allowed values; ``integer`` also requires a whole number."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True
    integer: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is outside the domain, as a phrase; None when it is inside."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if self.integer and not float(value).is_integer():
            return "must be a whole number"
        below = self.low is not None and (value < self.low if self.low_inclusive else value <= self.low)
        above = self.high is not None and (value > self.high if self.high_inclusive else value >= self.high)
        return f"must be {self.describe()}" if below or above else None

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left = "[" if self.low_inclusive else "("
            right = "]" if self.high_inclusive else ")"
            kind = "a whole number in " if self.integer else "in "
            return f"{kind}{left}{_fmt(self.low)}, {_fmt(self.high)}{right}"
        if self.low is not None:
            word = "at least" if self.low_inclusive else "greater than"
            return f"{'a whole number ' if self.integer else ''}{word} {_fmt(self.low)}"
        if self.high is not None:
            word = "at most" if self.high_inclusive else "less than"
            return f"{'a whole number ' if self.integer else ''}{word} {_fmt(self.high)}"
        return "a finite number"

    def metadata(self) -> dict[str, float]:
        """The same bounds as config-field metadata for :func:`meter.config.schema.build_dataclass`."""
        out: dict[str, float] = {}
        if self.low is not None:
            out["ge" if self.low_inclusive else "gt"] = self.low
        if self.high is not None:
            out["le" if self.high_inclusive else "lt"] = self.high
        return out


def _fmt(x: float) -> str:
    if float(x).is_integer() and abs(x) >= 1e6:
        return f"{int(x):,}"
    return f"{x:g}"


# --- benchmark shapes (flags of meter bench and the axes of a suite) -----------------------------
BATCH = Domain(1, 1 << 20, integer=True)
SEQ = Domain(1, 1 << 21, integer=True)  # 2M tokens: beyond any model's context
CONTEXT = Domain(1, 1 << 24, integer=True)
TOKENS_PER_EXPERT = Domain(1, 1 << 24, integer=True)
EP = Domain(1, 1 << 16, integer=True)
SKEW = Domain(0, 10)  # a Zipf exponent; 10 already sends nearly every token to one expert
MIN_TIME_S = Domain(0, 3600, low_inclusive=False)
TOKENS_PER_RANK = Domain(1, 1 << 20, integer=True)  # MoE dispatch/combine of a distributed run
SAMPLE_HZ = Domain(1, 100)
PLAN_MEMORY_BYTES = Domain(2**20, 2**44, integer=True)  # meter bench --plan --memory: 1 MiB to 16 TiB
EFFICIENCY = Domain(0, 1, low_inclusive=False)  # a share of a datasheet peak
ACCEPTANCE_BUDGET_S = Domain(30, 3600)  # meter acceptance --budget
STEADY_LOAD_S = Domain(1, 120)  # meter acceptance --steady

# --- cost and telemetry commands ----------------------------------------------------------------
# Monte Carlo: every input and output is an array of this many float64 values; 2M samples of the
# ~60 arrays a training estimate holds is about 1 GB, the most a laptop should be asked for.
MAX_SAMPLES = 2_000_000
SAMPLES = Domain(0, MAX_SAMPLES, integer=True)
SEED = Domain(0, 2**63 - 1, integer=True)
PORT = Domain(1, 65535, integer=True)
INTERVAL_S = Domain(0.01, 86400)
COUNT = Domain(0, 10**9, integer=True)
# serving: sequences per GPU, averaged over a TP group (concurrency 4 on a TP8 node is 0.5)
BATCH_PER_GPU = Domain(0, 1 << 20, low_inclusive=False)
CONCURRENCY = Domain(1, 1 << 20, integer=True)
LATENCY_MS = Domain(0, 3.6e6, low_inclusive=False)
TOKENS_PER_S = Domain(0, 1e9, low_inclusive=False)
SHARE = Domain(0, 1)  # a share: an acceptance rate, a cache hit rate
DRAFT_TOKENS = Domain(0, 16, integer=True)
PRICE_USD_PER_GPU_HOUR = Domain(0, 1000)
USD_PER_KWH = Domain(0, 10)
PUE = Domain(1, 5)
GPUS = Domain(1, 10**7, integer=True)
WORK_TOKENS = Domain(0, 1e18)  # tokens a measured job processed (a 15T-token pre-training is 1.5e13)
