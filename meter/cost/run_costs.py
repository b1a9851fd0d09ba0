"""The cost lines `meter run` ends with: the default scenarios, priced from what the run measured."""

from __future__ import annotations

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


def costs_for_run(
    path: Path,
    locator: ConfigLocator | None = None,
    *,
    samples: int = 20_000,
    doc: RunDocument | None = None,
    train_scenario: str | None = TRAIN_SCENARIO,
    serve_scenario: str | None = SERVE_SCENARIO,
) -> tuple[dict[str, CostEstimate], list[str]]:
    """({"train": ..., "serve": ...}, problems): whatever the run supports; never raises for a thin run."""
    if doc is not None and doc.kind == "job":
        return _job_costs(doc, str(path), locator, samples, train_scenario)
    try:
        run = measured_from_doc(doc, str(path)) if doc is not None else load_measured(path)
    except MeterError as exc:
        return {}, [str(exc)]
    out, problems = {}, []
    for key, name, fn in (
        ("train", train_scenario, load_and_estimate_train),
        ("serve", serve_scenario, load_and_estimate_serve),
    ):
        if name is None:
            continue
        try:
            out[key] = fn(load_scenario(name, locator), run=run, samples=samples, locator=locator)
        except MeterError as exc:
            problems.append(f"{key}: {exc}")
    return out, problems


def _job_costs(doc: RunDocument, path: str, locator, samples: int, train_scenario: str | None):
    """A measured job: the training scenario at the MFU the job achieved (see meter.cost.job_pipeline)."""
    if train_scenario is None:
        return {}, []
    try:
        rate = job_rate(doc, path)
        return {
            "train": estimate_from_job(load_scenario(train_scenario, locator), rate, samples=samples, locator=locator)
        }, []
    except MeterError as exc:
        return {}, [f"train: {exc}"]


def summary(estimates: dict[str, CostEstimate]) -> dict[str, Any]:
    return {k: v.as_dict() for k, v in estimates.items()}
