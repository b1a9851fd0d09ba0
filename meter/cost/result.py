"""What a cost estimate returns: outputs with their ranges, every input with its origin, the
published figures set beside them, and (serving) the deployment's bound and the efficiency used."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meter.config.hardware import HardwareSpec
from meter.config.models import ModelConfig
from meter.config.scenarios import Scenario
from meter.cost.inputs import Input
from meter.cost.layout import DeploymentBound
from meter.cost.measured.run import MeasuredRun
from meter.cost.montecarlo import Summary
from meter.cost.views import ServingCost, TrainingCost

DEFAULT_SAMPLES = 20_000


@dataclass(frozen=True)
class Reproduction:
    """A reported figure beside the value computed from the scenario's inputs.

    ``agrees`` says it is within ``rel_tol``; ``reproduced`` only for an *independent* figure (the
    inputs do not contain it): a consistency check that agrees restates its inputs, nothing more.
    """

    label: str
    output: str
    kind: str  # independent or consistency
    reported: float
    computed: float | None
    rel_tol: float
    source: str
    date: dt.date
    note: str | None

    @property
    def rel_diff(self) -> float | None:
        if self.computed is None or not self.reported:
            return None
        return (self.computed - self.reported) / self.reported

    @property
    def agrees(self) -> bool:
        return self.rel_diff is not None and abs(self.rel_diff) <= self.rel_tol

    @property
    def reproduced(self) -> bool:
        return self.agrees and self.kind == "independent"

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "output": self.output,
            "kind": self.kind,
            "reported": self.reported,
            "computed": self.computed,
            "rel_diff": self.rel_diff,
            "rel_tol": self.rel_tol,
            "agrees": self.agrees,
            "reproduced": self.reproduced,
            "source": self.source,
            "date": self.date.isoformat(),
            "note": self.note,
        }


def reproductions(scenario: Scenario, outputs: Mapping[str, Summary]) -> list[Reproduction]:
    """Each reported figure against the value computed from the scenario's inputs."""
    rows = []
    for label, rep in scenario.reported.items():
        key = f"{rep.output}.{rep.stage}" if rep.stage else rep.output
        computed = outputs.get(key)
        rows.append(
            Reproduction(
                label,
                key,
                rep.kind,
                rep.value,
                computed.point if computed else None,
                rep.rel_tol,
                rep.source,
                rep.date,
                rep.note,
            )
        )
    return rows


@dataclass(frozen=True)
class Comparison:
    """A published total of training compute, beside the analytic count of the same run (an
    independent check of the FLOP counting: tokens x FLOPs per token of the architecture)."""

    model: str
    published_flops: float
    tokens: float
    seq_len: int
    analytic_flops: float
    source: str
    date: dt.date

    @property
    def rel_diff(self) -> float:
        return (self.analytic_flops - self.published_flops) / self.published_flops

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(date=self.date.isoformat(), rel_diff=self.rel_diff)
        return out


@dataclass(frozen=True)
class Efficiency:
    """The efficiency a serving estimate applies to the bound, and the one a published figure implies."""

    kind: str | None  # given, measured, or None (the bound alone, or the scenario's own throughput)
    basis: str | None = None  # what a measured efficiency is against, on which device
    implied_by: str | None = None  # the published throughput the implied efficiency comes from

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class CostEstimate:
    scenario: Scenario
    method: str  # see meter.cost.methods
    inputs: dict[str, Input]
    outputs: dict[str, Summary]
    samples: int
    seed: int
    hardware: HardwareSpec
    model: ModelConfig
    run: MeasuredRun | None = None
    notes: list[str] = field(default_factory=list)
    reproductions: list[Reproduction] = field(default_factory=list)
    base: CostEstimate | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    bound: DeploymentBound | None = None
    efficiency: Efficiency | None = None

    @property
    def training(self) -> TrainingCost:
        """The outputs of a training estimate, typed."""
        return TrainingCost.of(self.outputs)

    @property
    def serving(self) -> ServingCost:
        """The outputs of a serving estimate, typed."""
        return ServingCost.of(self.outputs)

    @property
    def reported_training(self) -> TrainingCost:
        """The figures the scenario reports (its reproductions), as a training view of constants."""
        return TrainingCost.of({r.output: Summary.constant(r.reported) for r in self.reproductions})

    @property
    def cpu_derived(self) -> bool:
        return self.run is not None and self.run.cpu

    def as_dict(self) -> dict[str, Any]:
        out = {
            "scenario": self.scenario.name,
            "kind": self.scenario.kind,
            "model": self.model.name,
            "hardware": self.hardware.name,
            "method": self.method,
            "samples": self.samples,
            "seed": self.seed,
            "cpu_derived": self.cpu_derived,
            "run": self.run.path if self.run else None,
            "outputs": {k: v.as_dict() for k, v in self.outputs.items()},
            "inputs": {k: v.as_dict() for k, v in self.inputs.items()},
            "reproductions": [r.as_dict() for r in self.reproductions],
            "notes": self.notes,
            "leaves_out": self.scenario.leaves_out,
            "base": self.base.as_dict() if self.base else None,
        }
        if self.scenario.kind == "train":
            out["mfu_dtype"] = self.scenario.mfu_dtype
            out["comparisons"] = [c.as_dict() for c in self.comparisons]
        else:
            out["deployment"] = deployment_dict(self.bound) if self.bound else None
            out["efficiency"] = self.efficiency.as_dict() if self.efficiency else None
        return out


def deployment_dict(b: DeploymentBound) -> dict[str, Any]:
    d = b.deployment
    return {
        "name": d.name,
        "path": str(d.path) if d.path else None,
        "model": b.model,
        "hardware": b.hardware,
        "weights": dataclasses.asdict(d.weights),
        "kv_cache": d.kv_cache,
        "dispatch": d.dispatch,
        "reserved_memory_ratio": d.reserved_memory_ratio,
        "pools": {"prefill": b.prefill.as_dict(), "decode": b.decode.as_dict()},
        "published": dataclasses.asdict(d.published) if d.published else None,
    }
