"""Evaluate a cost model at the central inputs and, for ranges, by Monte Carlo (P10/P50/P90).

**Common random numbers.** Each input draws from its own stream, seeded by the seed and the
input's name, so fixing one input (making it a point), adding one or dropping one leaves every
other input's draws exactly as they were: a change in an output is the change asked for, not a
reshuffle of the sample.

**Correlated inputs.** A :class:`Coupling` ``(a, b, rho)`` couples two inputs through their base
draws (:attr:`Quantity.base`: a uniform or a standard normal) with a Fréchet mixture: each sample
of ``b`` takes ``a``'s base value with probability ``|rho|`` (mirrored for a negative ``rho``) and
keeps its own otherwise. Spearman's rank correlation of the pair is then ``rho`` and each input
keeps its own distribution. The two must share a base: the uniform family (uniform, log-uniform,
triangular) or the normal family (normal, lognormal).

**Measured inputs** (:class:`meter.cost.measured.spread.MeasuredQuantity`) sample themselves from their
own stream, the same way.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from meter.config.quantity import Quantity
from meter.errors import UsageError

PERCENTILES = (0.10, 0.50, 0.90)


class Sampled(Protocol):
    """What the Monte Carlo needs of an input: a central value and draws."""

    @property
    def is_point(self) -> bool: ...

    @property
    def central(self) -> float: ...

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray | float: ...


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

    @classmethod
    def constant(cls, value: float) -> Summary:
        return cls(value, value, value, value, value)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Coupling:
    """Two inputs drawn together, with Spearman's rank correlation ``rho``."""

    first: str
    second: str
    rho: float


def stream(seed: int, name: str) -> np.random.Generator:
    """The input ``name``'s own random stream: the same for a seed whatever the other inputs are."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def draw(inputs: Mapping[str, Sampled], samples: int, seed: int, couplings: Iterable[Coupling] = ()) -> dict[str, Any]:
    """``samples`` draws of every input (a point stays a float: it broadcasts)."""
    bases = {
        name: q.draw_base(samples, stream(seed, name))
        for name, q in inputs.items()
        if isinstance(q, Quantity) and not q.is_point
    }
    for c in couplings:
        _couple(bases, inputs, c, stream(seed, f"{c.first}~{c.second}"))
    out: dict[str, Any] = {}
    for name, q in inputs.items():
        if q.is_point:
            out[name] = q.central
        elif name in bases:
            out[name] = q.from_base(bases[name])
        else:
            out[name] = q.sample(samples, stream(seed, name))
    return out


def _couple(bases: dict[str, np.ndarray], inputs: Mapping[str, Sampled], c: Coupling, rng) -> None:
    for name in (c.first, c.second):
        if name not in inputs:
            raise UsageError(f"correlation {c.first},{c.second}: '{name}' is not an input of this estimate")
        if not isinstance(inputs[name], Quantity):
            raise UsageError(
                f"correlation {c.first},{c.second}: '{name}' is measured; only assumptions can be correlated"
            )
    if c.first not in bases or c.second not in bases:
        return  # a point does not vary: there is nothing to couple
    a, b = inputs[c.first], inputs[c.second]
    if a.base != b.base:
        raise UsageError(
            f"correlation {c.first},{c.second}: {c.first} is {a.dist} and {c.second} {b.dist}; correlated inputs "
            "must both be of the uniform family (uniform, loguniform, triangular) or the normal family (normal, lognormal)"
        )
    shared = bases[c.first]
    if c.rho < 0:
        shared = 1.0 - shared if a.base == "uniform" else -shared
    take = rng.random(shared.size) < abs(c.rho)
    bases[c.second] = np.where(take, shared, bases[c.second])


def evaluate(
    model: Callable[[Mapping[str, Any]], dict[str, Any]],
    inputs: Mapping[str, Sampled],
    *,
    samples: int,
    seed: int = 0,
    couplings: Iterable[Coupling] = (),
) -> dict[str, Summary]:
    """Every output of ``model``; ranges only where some input varies and ``samples`` > 0.

    The model runs on numpy floats, so a value that underflows a denominator to 0 (two inputs of
    1e-300) gives inf or NaN, never a ZeroDivisionError; an output that is not finite at the central
    inputs (a share of a cost of 0) is left out.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        central = model({k: np.float64(q.central) for k, q in inputs.items()})
    point = {k: float(v) for k, v in central.items()}
    point = {k: v for k, v in point.items() if math.isfinite(v)}
    if samples <= 0 or all(q.is_point for q in inputs.values()):
        return {k: Summary.constant(v) for k, v in point.items()}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        out = model(draw(inputs, samples, seed, couplings))
    result = {}
    for k, v in out.items():
        if k not in point:
            continue
        summary = _summarize(point[k], v, samples)
        if summary is not None:
            result[k] = summary
    return result


def _summarize(point: float, values: Any, samples: int) -> Summary | None:
    if np.ndim(values) == 0:  # no varying input reaches this output
        return Summary.constant(point)
    arr = np.asarray(values, dtype=float)
    if arr.shape != (samples,) or not arr.flags.writeable:
        arr = np.array(np.broadcast_to(arr, (samples,)))
    if not np.isfinite(arr).all():
        arr = arr[np.isfinite(arr)]
        if arr.size == 0:
            return None
    mean = float(arr.mean())
    p10, p50, p90 = percentiles(arr)
    return Summary(point, p10, p50, p90, mean)


def percentiles(arr: np.ndarray, qs: tuple[float, ...] = PERCENTILES) -> list[float]:
    """Linear-interpolated percentiles, as numpy's default, by one partial sort of ``arr`` in place.

    A full ``np.percentile`` copies the array first; at a million samples that copy is a third of
    the cost, and the arrays here are the model's own, not needed afterwards in any order.
    """
    last = arr.size - 1
    positions = [q * last for q in qs]
    lows = [math.floor(p) for p in positions]
    highs = [min(lo + 1, last) for lo in lows]
    arr.partition(sorted(set(lows) | set(highs)))
    return [float(arr[lo] + (arr[hi] - arr[lo]) * (p - lo)) for p, lo, hi in zip(positions, lows, highs)]
