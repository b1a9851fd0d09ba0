"""The cost lines `meter run` ends with and the exporter publishes: the default scenarios, priced
from what the run measured."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.config.paths import ConfigLocator
from meter.config.scenarios import load_scenario
from meter.cost.configs import load_and_estimate_serve, load_and_estimate_train
from meter.cost.job_pipeline import estimate_from_job
from meter.cost.measured.job import job_rate
from meter.cost.measured.run import load_measured, measured_from_doc
from meter.cost.result import CostEstimate
from meter.errors import MeterError
from meter.results.document import RunDocument

TRAIN_SCENARIO = "deepseek-v3"
SERVE_SCENARIO = "deepseek-v3-day6"


@dataclass
class RunCosts:
    """What a run supports: its training and serving estimates (None where it supports neither),
    and one line per estimate it could not make."""

    train: CostEstimate | None = None
    serve: CostEstimate | None = None
    problems: list[str] = field(default_factory=list)

    def priced(self) -> Iterator[tuple[str, CostEstimate]]:
        """(kind, estimate) for each estimate made: "train", then "serve"."""
        for kind, estimate in (("train", self.train), ("serve", self.serve)):
            if estimate is not None:
                yield kind, estimate

    def as_dict(self) -> dict[str, Any]:
        """The run file's ``extras.cost``: each estimate made, by kind, and the problems."""
        return {**{kind: e.as_dict() for kind, e in self.priced()}, "problems": self.problems}


def costs_for_run(
    path: Path,
    locator: ConfigLocator | None = None,
    *,
    samples: int = 20_000,
    doc: RunDocument | None = None,
    train_scenario: str | None = TRAIN_SCENARIO,
    serve_scenario: str | None = SERVE_SCENARIO,
) -> RunCosts:
    """Whatever the run supports; never raises for a thin run."""
    if doc is not None and doc.kind == "job":
        return _job_costs(doc, str(path), locator, samples, train_scenario)
    try:
        run = measured_from_doc(doc, str(path)) if doc is not None else load_measured(path)
    except MeterError as exc:
        return RunCosts(problems=[str(exc)])
    out = RunCosts()
    for kind, name, fn in (
        ("train", train_scenario, load_and_estimate_train),
        ("serve", serve_scenario, load_and_estimate_serve),
    ):
        if name is None:
            continue
        try:
            setattr(out, kind, fn(load_scenario(name, locator), run=run, samples=samples, locator=locator))
        except MeterError as exc:
            out.problems.append(f"{kind}: {exc}")
    return out


def _job_costs(doc: RunDocument, path: str, locator, samples: int, train_scenario: str | None) -> RunCosts:
    """A measured job: the training scenario at the MFU the job achieved (see meter.cost.job_pipeline)."""
    if train_scenario is None:
        return RunCosts()
    try:
        rate = job_rate(doc, path)
        return RunCosts(
            train=estimate_from_job(load_scenario(train_scenario, locator), rate, samples=samples, locator=locator)
        )
    except MeterError as exc:
        return RunCosts(problems=[f"train: {exc}"])
