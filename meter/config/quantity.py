"""Uncertain inputs: a point, or a distribution between bounds, sampled for Monte Carlo.

In YAML an input is a number, or a mapping::

    0.39                                        # a point
    {low: 0.30, high: 0.45}                     # uniform between the bounds
    {low: 1.7, high: 3.0, dist: loguniform}     # uniform in log space (prices, multipliers)
    {low: 1, mode: 2, high: 4, dist: triangular}
    {mean: 1.0, sd: 0.1, dist: normal}
    {p10: 1.0, p90: 4.0, dist: lognormal}       # an 80% interval of a lognormal (Epoch-style)

On the command line: ``0.39``, ``0.30..0.45`` (uniform) or ``1.7..3.0:log`` (log-uniform); SI
suffixes work (``14.8T``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from meter.units import parse_quantity

Confidence = Literal["high", "medium", "low"]  # how far a sourced figure (a price, a scenario input) is trusted

if TYPE_CHECKING:
    import numpy as np

Dist = Literal["point", "uniform", "loguniform", "triangular", "normal", "lognormal"]
Z90 = 1.2815515655446004  # standard normal quantile at 0.9


@dataclass(frozen=True)
class Quantity:
    dist: Dist
    value: float | None = None
    low: float | None = None
    high: float | None = None
    mode: float | None = None
    mean: float | None = None
    sd: float | None = None

    @classmethod
    def point(cls, value: float) -> Quantity:
        return cls("point", value=float(value))

    @property
    def is_point(self) -> bool:
        return self.dist == "point"

    @property
    def central(self) -> float:
        """A representative value: the point, the median, or the mode."""
        if self.dist == "point":
            return self.value
        if self.dist == "uniform":
            return (self.low + self.high) / 2
        if self.dist in ("loguniform", "lognormal"):
            return math.sqrt(self.low * self.high)
        if self.dist == "triangular":
            return self.mode
        return self.mean

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high): the range, or the 80% interval for normal distributions, or the point twice."""
        if self.dist == "point":
            return self.value, self.value
        if self.dist == "normal":
            return self.mean - Z90 * self.sd, self.mean + Z90 * self.sd
        return self.low, self.high

    @property
    def base(self) -> Literal["uniform", "normal"] | None:
        """What a draw is made from: a uniform on [0, 1), a standard normal, or nothing (a point).

        Draws are made in two steps, a base value and :meth:`from_base`, so that inputs can be
        coupled (correlated) through their base values whatever their own distributions.
        """
        if self.dist == "point":
            return None
        return "normal" if self.dist in ("normal", "lognormal") else "uniform"

    def from_base(self, b: np.ndarray) -> np.ndarray:
        """The inverse CDF: the value whose quantile is ``b`` (a uniform, or a standard normal)."""
        import numpy as np

        if self.dist == "uniform":
            return self.low + (self.high - self.low) * b
        if self.dist == "loguniform":
            return np.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * b)
        if self.dist == "triangular":
            lo, mode, hi = self.low, self.mode, self.high
            if hi == lo:
                return np.full_like(b, lo)
            cut = (mode - lo) / (hi - lo)
            left = lo + np.sqrt(b * (hi - lo) * (mode - lo))
            right = hi - np.sqrt((1 - b) * (hi - lo) * (hi - mode))
            return np.where(b < cut, left, right)
        if self.dist == "normal":
            return self.mean + self.sd * b
        # lognormal from its 10th and 90th percentiles (stored as low and high)
        mu = (math.log(self.low) + math.log(self.high)) / 2
        sigma = (math.log(self.high) - math.log(self.low)) / (2 * Z90)
        return np.exp(mu + sigma * b)

    def draw_base(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random(n) if self.base == "uniform" else rng.standard_normal(n)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray | float:
        """``n`` draws (a float for a point: it broadcasts)."""
        if self.dist == "point":
            return self.value
        return self.from_base(self.draw_base(n, rng))

    def describe(self, unit: str = "") -> str:
        if unit == "bytes/s":  # link bandwidths read as datasheets give them
            scaled = {k: (v / 1e9 if isinstance(v, float | int) else v) for k, v in self.__dict__.items()}
            return Quantity(**scaled).describe("GB/s")
        u = f" {unit}" if unit else ""
        if self.dist == "point":
            return f"{_g(self.value)}{u}"
        if self.dist == "normal":
            return f"{_g(self.mean)} ± {_g(self.sd)}{u} (normal)"
        if self.dist == "triangular":
            return f"{_g(self.low)}–{_g(self.high)}{u} (triangular, mode {_g(self.mode)})"
        if self.dist == "lognormal":
            return f"{_g(self.low)}–{_g(self.high)}{u} (lognormal, P10–P90)"
        return f"{_g(self.low)}–{_g(self.high)}{u}" + (" (log-uniform)" if self.dist == "loguniform" else "")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _g(x: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(x) >= scale:
            return f"{x / scale:.4g}{suffix}"
    return f"{x:,.4g}"


class QuantityError(ValueError):
    """A quantity that cannot be parsed; the message says why."""


def parse_cli(text: str) -> Quantity:
    """``0.39``, ``0.30..0.45``, ``1.7..3.0:log``, with optional K/M/B/T suffixes."""
    text = text.strip()
    dist: Dist = "uniform"
    if text.endswith(":log"):
        text, dist = text[:-4], "loguniform"
    try:
        if ".." in text:
            lo, hi = (parse_quantity(part) for part in text.split("..", 1))
            return checked(Quantity(dist, low=lo, high=hi))
        if dist == "loguniform":
            raise QuantityError("':log' needs a range, e.g. 1.7..3.0:log")
        return Quantity.point(parse_quantity(text))
    except ValueError as exc:
        raise QuantityError(
            f"{exc}; expected a number (0.39), a range (0.30..0.45) or a log range (1..4:log)"
        ) from None


def from_yaml(value: Any) -> Quantity:
    """A number or a distribution mapping (see the module docstring)."""
    if isinstance(value, bool):
        raise QuantityError("expected a number or a distribution, not true/false")
    if isinstance(value, (int, float)):
        try:
            return checked(Quantity.point(float(value)))
        except OverflowError:
            raise QuantityError("too large for a number") from None
    if isinstance(value, str):
        return parse_cli(value)
    if not isinstance(value, Mapping):
        raise QuantityError(f"expected a number or a distribution mapping, not {type(value).__name__}")
    data = {k: v for k, v in value.items()}
    dist = data.pop("dist", None)
    allowed = {"low", "high", "mode", "mean", "sd", "p10", "p90"}
    unknown = set(data) - allowed
    if unknown:
        raise QuantityError(f"unknown distribution key(s): {', '.join(sorted(unknown))}")
    try:
        if any(isinstance(v, bool) for v in data.values()):
            raise TypeError("true/false is not a number")
        nums = {k: float(v) for k, v in data.items()}
    except (TypeError, ValueError, OverflowError):
        raise QuantityError("distribution parameters must be finite numbers") from None
    if dist is None:
        dist = "lognormal" if "p10" in nums else ("normal" if "mean" in nums else "uniform")
    if dist == "lognormal":
        return checked(Quantity("lognormal", low=nums.get("p10"), high=nums.get("p90")))
    if dist in ("uniform", "loguniform", "triangular", "normal"):
        return checked(
            Quantity(
                dist,
                low=nums.get("low"),
                high=nums.get("high"),
                mode=nums.get("mode"),
                mean=nums.get("mean"),
                sd=nums.get("sd"),
            )
        )
    raise QuantityError(f"unknown dist {dist!r} (point, uniform, loguniform, triangular, normal, lognormal)")


def checked(q: Quantity) -> Quantity:
    """Refuse incomplete or impossible distributions."""
    need = {
        "point": ("value",),
        "uniform": ("low", "high"),
        "loguniform": ("low", "high"),
        "triangular": ("low", "mode", "high"),
        "normal": ("mean", "sd"),
        "lognormal": ("low", "high"),
    }[q.dist]
    missing = [k for k in need if getattr(q, k) is None]
    if missing:
        names = {"low": "p10" if q.dist == "lognormal" else "low", "high": "p90" if q.dist == "lognormal" else "high"}
        raise QuantityError(f"{q.dist} needs {', '.join(names.get(m, m) for m in missing)}")
    values = [getattr(q, k) for k in need]
    if any(not math.isfinite(v) for v in values):
        raise QuantityError("values must be finite")
    if q.dist in ("uniform", "loguniform", "triangular", "lognormal") and not q.low <= q.high:
        raise QuantityError(f"low ({_g(q.low)}) is above high ({_g(q.high)})")
    if q.dist in ("loguniform", "lognormal") and q.low <= 0:
        raise QuantityError("a log-scale range must be positive")
    if q.dist == "triangular" and not q.low <= q.mode <= q.high:
        raise QuantityError("mode must lie between low and high")
    if q.dist == "normal" and q.sd < 0:
        raise QuantityError("sd must not be negative")
    return q
