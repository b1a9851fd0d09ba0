"""``meter calibrate``: a scenario priced at what a run (or a measured job) achieved, beside its own figures.

Built once here for both kinds of measurement; the CLI prints it or writes its ``as_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter.config.paths import ConfigLocator
from meter.config.scenarios import Scenario
from meter.cost.configs import load_and_estimate_serve, load_and_estimate_train
from meter.cost.job_pipeline import estimate_from_job
from meter.cost.measured.job import job_rate
from meter.cost.measured.run import measured_from_doc
from meter.cost.montecarlo import Summary
from meter.cost.result import Reproduction
from meter.cost.views import ServingCost, TrainingCost
from meter.results.document import RunDocument


@dataclass(frozen=True)
class PhaseEfficiency:
    """One measured efficiency of a phase, and the shape it was measured at."""

    efficiency: float
    basis: str
    batch: int | None
    seq: int | None
    context: int | None
    tokens_per_s_per_gpu: float | None = None  # a measured job's own throughput

    def as_dict(self) -> dict:
        out = {
            "efficiency": self.efficiency,
            "basis": self.basis,
            "batch": self.batch,
            "seq": self.seq,
            "context": self.context,
        }
        if self.tokens_per_s_per_gpu is not None:
            out["tokens_per_s_per_gpu"] = self.tokens_per_s_per_gpu
        return out


@dataclass(frozen=True)
class Calibration:
    """The scenario at the measured rate (``measured``) beside the scenario's own inputs (``reported``)."""

    run: str
    device: str
    cpu: bool
    scenario: Scenario
    method: str
    notes: list[str]
    measured: dict[str, float]  # output name -> central value, as the estimate's outputs name them
    reported: dict[str, float]
    reproductions: list[Reproduction]
    efficiency: dict[str, list[PhaseEfficiency]]

    @property
    def kind(self) -> str:
        return self.scenario.kind

    @property
    def measured_training(self) -> TrainingCost:
        return TrainingCost.of(_constants(self.measured))

    @property
    def reported_training(self) -> TrainingCost:
        return TrainingCost.of(_constants(self.reported))

    @property
    def reproduced_training(self) -> TrainingCost:
        """The figures the scenario reports (its reproductions)."""
        return TrainingCost.of(_constants({r.output: r.reported for r in self.reproductions}))

    @property
    def measured_serving(self) -> ServingCost:
        return ServingCost.of(_constants(self.measured))

    @property
    def reported_serving(self) -> ServingCost:
        return ServingCost.of(_constants(self.reported))

    def as_dict(self) -> dict:
        return {
            "run": self.run,
            "device": self.device,
            "cpu": self.cpu,
            "scenario": self.scenario.name,
            "kind": self.kind,
            "method": self.method,
            "notes": self.notes,
            "measured": self.measured,
            "reported_inputs": self.reported,
            "reproductions": [r.as_dict() for r in self.reproductions],
            "efficiency": {p: [e.as_dict() for e in effs] for p, effs in self.efficiency.items()},
        }


def _constants(points: dict[str, float]) -> dict[str, Summary]:
    return {k: Summary.constant(v) for k, v in points.items()}


def calibrate(doc: RunDocument, path: str, scenario: Scenario, locator: ConfigLocator | None) -> Calibration:
    """A run's measured efficiency (or a job's end-to-end MFU) applied to ``scenario``."""
    estimate = load_and_estimate_train if scenario.kind == "train" else load_and_estimate_serve
    if doc.kind == "job":
        rate = job_rate(doc, path)
        measured = estimate_from_job(scenario, rate, samples=0, locator=locator)
        device, cpu = rate.label, rate.cpu
        efficiency = {
            rate.phase: [
                PhaseEfficiency(
                    rate.mfu,
                    rate.mfu_basis,
                    None,
                    rate.seq,
                    rate.seq if rate.phase == "decode" else None,
                    rate.tokens_per_s_per_gpu,
                )
            ]
        }
    else:
        run = measured_from_doc(doc, path)
        measured = estimate(scenario, run=run, samples=0, locator=locator)
        device, cpu = run.label, run.cpu
        efficiency = {
            p: [PhaseEfficiency(r.efficiency, r.efficiency_basis, r.batch, r.seq, r.context) for r in rates]
            for p, rates in run.phases.items()
        }
    reported = estimate(scenario, samples=0, locator=locator)
    return Calibration(
        run=path,
        device=device,
        cpu=cpu,
        scenario=scenario,
        method=measured.method,
        notes=measured.notes,
        measured={k: v.point for k, v in measured.outputs.items()},
        reported={k: v.point for k, v in reported.outputs.items()},
        reproductions=reported.reproductions,
        efficiency=efficiency,
    )
