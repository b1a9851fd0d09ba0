"""The price table: ``configs/pricing/NAME.yaml`` loaded into :class:`PriceTable`.

GPU-hour prices (by GPU, provider and tier), electricity prices and PUE values, each dated and
sourced, with a confidence. Prices go stale fast: every dollar figure the meter prints names the
table version and the price's date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meter.config.paths import ConfigLocator
from meter.config.quantity import Confidence
from meter.config.schema import INTERNAL, build_dataclass, check_name_matches_file, ge, gt, read_yaml
from meter.errors import ConfigError

Tier = Literal["on-demand", "1-year", "3-year", "spot", "assumed"]
TIERS: tuple[str, ...] = Tier.__args__  # type: ignore[attr-defined]
CONFIDENCE_ORDER: tuple[str, ...] = ("low", "medium", "high")
# Prices dated within 18 months of the table's version count as current: an H100 hour cost $12 in
# 2023 and under $2 in 2025, and a stale price must not set today's range.
RECENT_DAYS = 548


@dataclass(frozen=True, kw_only=True)
class GpuPrice:
    gpu: str
    provider: str
    tier: Tier
    usd_per_gpu_hour: float = field(metadata=gt(0))
    date: dt.date
    source: str
    confidence: Confidence
    url: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class ElectricityPrice:
    name: str
    usd_per_kwh: float = field(metadata=gt(0))
    date: dt.date
    source: str
    confidence: Confidence
    url: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class PueValue:
    name: str
    pue: float = field(metadata=ge(1.0))
    date: dt.date
    source: str
    confidence: Confidence
    url: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class PricingDefaults:
    electricity: str
    pue: str


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    name: str
    version: dt.date
    description: str
    gpu_prices: list[GpuPrice]
    electricity: list[ElectricityPrice]
    pue: list[PueValue]
    defaults: PricingDefaults
    path: Path | None = field(default=None, metadata=INTERNAL, compare=False)

    def prices_for(self, gpu: str, tier: str | None = None) -> list[GpuPrice]:
        return [p for p in self.gpu_prices if p.gpu == gpu and (tier is None or p.tier == tier)]

    def rental_quote(self, gpu: str, tier: str | None = None) -> RentalQuote | None:
        """The rental prices that set a GPU's price: those within :data:`RECENT_DAYS` of the table's
        version when there are any, else all of them; None when the table has none for ``gpu``."""
        prices = self.prices_for(gpu, tier)
        if not prices:
            return None
        recent = [p for p in prices if (self.version - p.date).days <= RECENT_DAYS]
        return RentalQuote(gpu=gpu, tier=tier, prices=tuple(recent or prices), table=self.name, version=self.version)

    def default_electricity(self) -> ElectricityPrice:
        return next(e for e in self.electricity if e.name == self.defaults.electricity)

    def default_pue(self) -> PueValue:
        return next(p for p in self.pue if p.name == self.defaults.pue)


@dataclass(frozen=True)
class RentalQuote:
    """The prices one lookup found for a GPU: the training and serving cost models use their range,
    the exporter their median; both name the same table, version and prices."""

    gpu: str
    tier: str | None
    prices: tuple[GpuPrice, ...]
    table: str
    version: dt.date

    @property
    def low(self) -> float:
        return min(p.usd_per_gpu_hour for p in self.prices)

    @property
    def high(self) -> float:
        return max(p.usd_per_gpu_hour for p in self.prices)

    @property
    def median(self) -> float:
        return statistics.median(p.usd_per_gpu_hour for p in self.prices)

    @property
    def latest(self) -> dt.date:
        return max(p.date for p in self.prices)

    @property
    def confidence(self) -> str:
        return min((p.confidence for p in self.prices), key=CONFIDENCE_ORDER.index)

    def describe(self) -> str:
        listed = "; ".join(f"{p.provider} {p.tier} ${p.usd_per_gpu_hour:.2f} ({p.date})" for p in self.prices)
        return f"price table '{self.table}' v{self.version}: {listed}"


def load_prices(name_or_path: str = "default", locator: ConfigLocator | None = None) -> PriceTable:
    locator = locator or ConfigLocator.from_env()
    path = locator.find("pricing", name_or_path)
    table = build_dataclass(PriceTable, read_yaml(path), path=path)
    check_name_matches_file(table.name, path)
    hardware_names = set(locator.names("hardware"))
    for i, price in enumerate(table.gpu_prices):
        if price.gpu not in hardware_names:
            raise ConfigError(path, f"gpu_prices[{i}].gpu", "names no hardware config", price.gpu)
    if table.defaults.electricity not in {e.name for e in table.electricity}:
        raise ConfigError(path, "defaults.electricity", "names no entry of 'electricity'", table.defaults.electricity)
    if table.defaults.pue not in {p.name for p in table.pue}:
        raise ConfigError(path, "defaults.pue", "names no entry of 'pue'", table.defaults.pue)
    return dataclasses.replace(table, path=path)
