"""What ``meter acceptance`` found: each step as it ran, and each check against its target.

Kept in the run file of the acceptance run (``kind: acceptance``, field ``acceptance``) beside the
workload cases, so that one file holds the table and every figure behind it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from meter.config.schema import ge, gt

StepStatus = Literal["ok", "failed", "timed out", "skipped"]
Verdict = Literal["pass", "fail", "n/a", "info"]
VERDICTS: tuple[str, ...] = Verdict.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class StepRecord:
    """One step of the acceptance run: how long it took, and why it did not finish when it did not."""

    name: str
    status: StepStatus
    seconds: float = field(metadata=ge(0))
    timeout_s: float = field(metadata=gt(0))
    reason: str | None = None


@dataclass(frozen=True)
class Check:
    """One measured figure against its target (``info`` rows have none)."""

    section: str  # environment, ceilings, power and clocks, telemetry, workloads
    name: str
    verdict: Verdict
    value: float | None = None
    unit: str | None = None  # ratio, TFLOP/s, GB/s, W, MHz
    target: str | None = None  # in words: ">= 0.80 of the datasheet bandwidth"
    detail: str | None = None  # how it was measured, or why there is no value


@dataclass(frozen=True)
class AcceptanceReport:
    budget_s: float = field(metadata=gt(0))
    elapsed_s: float = field(metadata=ge(0))
    dry_run: bool
    steps: list[StepRecord] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    environment: Mapping[str, str | None] = field(default_factory=dict)
    page: str | None = None  # the results page written beside the run file

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "fail"]

    @property
    def incomplete(self) -> list[StepRecord]:
        return [s for s in self.steps if s.status != "ok"]
