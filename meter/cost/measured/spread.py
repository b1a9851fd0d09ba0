"""Inputs measured by a run, as distributions taken from the measurement itself.

A case's timing gives its median and its 10th and 90th percentiles over the timed repeats. Its
efficiency (achieved rate over a ceiling) is drawn from a two-piece lognormal through those three
points: ``median x exp(sigma z)``, with ``sigma`` from p10 below the median and from p90 above,
so the draws have the case's own median, p10 and p90. Several runs of the same case on the same
device make a mixture: each draw picks one run, then draws within that run's spread, so the
spread between runs (a case that took 0.56 ms in one run and 17.5 ms in another) is in the band
too. A stable GPU run gives a narrow band; a noisy CPU run a wide one.

A :class:`MeasuredQuantity` combines its cases' efficiencies into one input, per draw:

- ``median``: the median over the cases (the efficiency of a regime, from every case of a run in
  that regime: one outlier case does not set it);
- ``harmonic``: weighted by work, ``sum(w) / sum(w / e)``, which is the efficiency of running all
  the cases one after another (a whole-model projection from its layers, weighted by FLOPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from meter.config.quantity import Z90

CHECK_DRAWS = 4096  # draws used to describe a measured input's P10-P90 (fixed seed: the same every time)


@dataclass(frozen=True)
class CaseSpread:
    """One case's efficiency in each run that measured it: the value at the median time, and the
    log-spreads below and above it (from the timing's p90 and p10: a slower call is less efficient)."""

    case_id: str
    efficiency: tuple[float, ...]
    sigma_low: tuple[float, ...]
    sigma_high: tuple[float, ...]

    @classmethod
    def from_timing(cls, case_id: str, runs: list[tuple[float, float, float, float]]) -> CaseSpread:
        """From (efficiency at the median, median_s, p10_s, p90_s) per run."""
        eff, low, high = [], [], []
        for e, median_s, p10_s, p90_s in runs:
            eff.append(e)
            low.append(max(np.log(p90_s / median_s), 0.0) / Z90)  # slow calls: efficiency below its median
            high.append(max(np.log(median_s / p10_s), 0.0) / Z90)
        return cls(case_id, tuple(eff), tuple(low), tuple(high))

    @property
    def central(self) -> float:
        return float(np.median(self.efficiency))

    @property
    def is_point(self) -> bool:
        return len(set(self.efficiency)) == 1 and not any(self.sigma_low) and not any(self.sigma_high)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(n)
        if len(self.efficiency) == 1:
            eff, low, high = self.efficiency[0], self.sigma_low[0], self.sigma_high[0]
        else:
            run = rng.integers(0, len(self.efficiency), n)
            eff, low, high = (np.asarray(v)[run] for v in (self.efficiency, self.sigma_low, self.sigma_high))
        return eff * np.exp(z * np.where(z < 0, low, high))


@dataclass(frozen=True)
class MeasuredQuantity:
    """An efficiency measured by a run: its cases combined, capped at ``cap``.

    It answers as a :class:`meter.config.quantity.Quantity` does (``central``, ``bounds``,
    ``sample``, ``describe``), so the Monte Carlo and the reports treat it like any other input.
    """

    cases: tuple[CaseSpread, ...]
    combine: Literal["median", "harmonic"]
    weights: tuple[float, ...] = ()
    cap: float = 1.0
    what: str = ""

    dist = "measured"

    def _combine(self, values: list[np.ndarray | float]) -> np.ndarray | float:
        if self.combine == "median":
            combined = (
                np.median(np.vstack(np.broadcast_arrays(*values)), axis=0) if np.ndim(values[0]) else np.median(values)
            )
        else:
            total = sum(self.weights)
            combined = total / sum(w / v for w, v in zip(self.weights, values))
        return np.minimum(combined, self.cap)

    @property
    def central(self) -> float:
        return float(self._combine([c.central for c in self.cases]))

    @property
    def is_point(self) -> bool:
        return all(c.is_point for c in self.cases)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._combine([c.sample(n, rng) for c in self.cases])

    @property
    def bounds(self) -> tuple[float, float]:
        """P10 and P90 of the combined draws."""
        if self.is_point:
            return self.central, self.central
        draws = self.sample(CHECK_DRAWS, np.random.default_rng(0))
        p10, p90 = np.percentile(draws, [10, 90])
        return float(p10), float(p90)

    @property
    def runs(self) -> int:
        return max(len(c.efficiency) for c in self.cases)

    def describe(self, unit: str = "") -> str:
        lo, hi = self.bounds
        runs = f" in {self.runs} runs" if self.runs > 1 else ""
        spread = f", P10-P90 {lo:.3g}-{hi:.3g}" if hi > lo else ""
        return f"{self.central:.3g} (measured: {self.what or f'{len(self.cases)} cases'}{runs}{spread})"

    def as_dict(self) -> dict[str, object]:
        lo, hi = self.bounds
        return {
            "dist": "measured",
            "value": self.central,
            "p10": lo,
            "p90": hi,
            "combine": self.combine,
            "cases": [c.case_id for c in self.cases],
            "runs": self.runs,
        }
