"""The inputs of a cost estimate: each value with where it came from, gathered, overridden and selected.

An estimate gathers every candidate input (the scenario's assumptions, the price table, a
measured run, the analytic model, the hardware config), lets the command line have the last word,
and then keeps the ones its costing method uses (:mod:`meter.cost.methods`), saying in a note
which it left out and why.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario, domain_error
from meter.cost.montecarlo import Coupling, Sampled
from meter.errors import UsageError


@dataclass(frozen=True)
class Input:
    name: str
    quantity: Sampled  # a Quantity, or a MeasuredQuantity from a run
    unit: str
    meaning: str
    origin: str  # scenario, command line, price table, measured run, analytic, hardware config
    source: str | None = None
    date: dt.date | None = None
    confidence: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.quantity.as_dict(),
            "description": self.quantity.describe(),
            "unit": self.unit,
            "meaning": self.meaning,
            "origin": self.origin,
            "source": self.source,
            "date": self.date.isoformat() if self.date else None,
            "confidence": self.confidence,
        }


@dataclass
class InputPool:
    """Candidate inputs by name, in the order they were added, and the notes made on the way."""

    known: Mapping[str, tuple[str, str]]  # the cost model's vocabulary: name -> (unit, meaning)
    inputs: dict[str, Input] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_scenario(cls, s: Scenario) -> InputPool:
        pool = cls(s.inputs)
        for name, a in s.assumptions.items():
            unit, meaning = s.inputs[name]
            pool.inputs[name] = Input(name, a.value, unit, meaning, "scenario", a.source, a.date, a.confidence)
        return pool

    def __contains__(self, name: str) -> bool:
        return name in self.inputs

    def add(
        self,
        name: str,
        quantity: Sampled,
        origin: str,
        source: str | None = None,
        *,
        meaning: str | None = None,
        date: dt.date | None = None,
        confidence: str | None = None,
    ) -> None:
        unit, known_meaning = self.known[name]
        self.inputs[name] = Input(name, quantity, unit, meaning or known_meaning, origin, source, date, confidence)

    def drop(self, names: Iterable[str]) -> list[str]:
        """Remove those present; the names removed."""
        return [n for n in names if self.inputs.pop(n, None) is not None]

    def override(self, overrides: Mapping[str, Quantity]) -> None:
        """The command line's values, each checked against the vocabulary and its domain."""
        for name, q in overrides.items():
            if name not in self.known:
                close = difflib.get_close_matches(name, list(self.known), n=1, cutoff=0.6)
                raise UsageError(
                    f"'{name}' is not an input of this cost model" + (f"; did you mean '{close[0]}'?" if close else "")
                )
            why = domain_error(name, q)
            if why:
                raise UsageError(f"input {name} = {q.describe()} (command line): {why}")
            self.add(name, q, "command line")

    def keep(self, used: frozenset[str], why: str) -> None:
        """Drop every input outside ``used`` (stages are always used), with one note saying why."""
        unused = self.drop([n for n in list(self.inputs) if n not in used and not n.startswith("stage.")])
        if unused:
            self.notes.append(f"{', '.join(unused)} left unused: {why}")

    def quantities(self) -> dict[str, Sampled]:
        return {k: v.quantity for k, v in self.inputs.items()}


def price_given(scenario: Scenario, hardware: str, tier: str | None, overrides: Mapping[str, Quantity]) -> bool:
    """Whether the rental price is the command line's or the scenario's (for its own GPU, no tier
    asked), so the price table is not needed."""
    if "usd_per_gpu_hour" in overrides:
        return True
    return "usd_per_gpu_hour" in scenario.assumptions and hardware == scenario.hardware and not tier


def set_price(
    pool: InputPool,
    scenario: Scenario,
    hardware: str,
    price: Input | None,
    *,
    tier: str | None,
    overrides: Mapping[str, Quantity],
) -> None:
    """The rental price: the command line's, else the scenario's (for its own GPU and no tier
    asked), else the price table's (``price``, loaded at the edge); a note only when none is found."""
    if price_given(scenario, hardware, tier, overrides):
        return
    pool.drop(["usd_per_gpu_hour"])
    if price is not None:
        pool.inputs["usd_per_gpu_hour"] = price
    else:
        pool.notes.append(
            f"no {tier + ' ' if tier else ''}rental price for {hardware} in the price table; dollars need --price"
        )


def couplings_for(scenario: Scenario, given: Iterable[Coupling], pool: InputPool) -> list[Coupling]:
    """The scenario's correlations and the command line's, among the inputs the estimate kept
    (a note for one whose input was left out: another GPU's power, a dropped assumption)."""
    pairs = [Coupling(c.inputs[0], c.inputs[1], c.rho) for c in scenario.correlations] + list(given)
    kept = []
    for c in pairs:
        missing = [n for n in (c.first, c.second) if n not in pool]
        if missing:
            pool.notes.append(
                f"correlation {c.first},{c.second} left out: {missing[0]} is not an input of this estimate"
            )
        else:
            kept.append(c)
    return kept
