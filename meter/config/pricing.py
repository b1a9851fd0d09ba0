"""The price table: ``configs/pricing/NAME.yaml`` loaded into :class:`PriceTable`.

GPU-hour prices (by GPU, provider and tier), electricity prices and PUE values, each dated and
sourced, with a confidence. Prices go stale fast: every dollar figure the meter prints names the
table version and the price's date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from meter.config.paths import ConfigLocator
from meter.config.schema import INTERNAL, build_dataclass, check_name_matches_file, ge, gt, read_yaml
from meter.errors import ConfigError

Tier = Literal["on-demand", "1-year", "3-year", "spot", "assumed"]
Confidence = Literal["high", "medium", "low"]
TIERS: tuple[str, ...] = Tier.__args__  # type: ignore[attr-defined]


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

    def default_electricity(self) -> ElectricityPrice:
        return next(e for e in self.electricity if e.name == self.defaults.electricity)

    def default_pue(self) -> PueValue:
        return next(p for p in self.pue if p.name == self.defaults.pue)


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
