"""A measured job in the cost model: the MFU it achieved, end to end, applied to a scenario.

A job's MFU already includes everything the job did (communication, pipeline bubbles, data
loading, the output head), so it enters a training estimate as the end-to-end ``mfu`` input,
never as a layer benchmark's compute rate with overheads modelled on top. "At the MFU your job
achieved, DeepSeek-V3's pre-training would take X GPU-hours." A serving job of the scenario's
own model on its own GPU replaces the throughput of the phase it measured; its MFU does not
transfer to other hardware (decode is bound by memory bandwidth, not FLOPs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from meter.config.paths import ConfigLocator
from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario
from meter.cost.configs import load_and_estimate_serve, load_and_estimate_train
from meter.cost.measured.job import JobRate
from meter.cost.result import DEFAULT_SAMPLES, CostEstimate
from meter.errors import UsageError


def estimate_from_job(
    scenario: Scenario,
    rate: JobRate,
    *,
    overrides: Mapping[str, Quantity] = {},
    hardware: str | None = None,
    tier: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    locator: ConfigLocator | None = None,
) -> CostEstimate:
    """The scenario priced at what the job achieved: its MFU (training) or its throughput (serving)."""
    target = hardware or scenario.hardware
    same = not rate.cpu and rate.hardware == target and rate.model == scenario.model
    if scenario.kind == "train":
        if rate.phase != "train":
            raise UsageError(f"{rate.path}: a {rate.phase} job; a training scenario needs a training job's MFU")
        measured = {"mfu": Quantity.point(rate.mfu)}
        if same and rate.avg_power_w is not None:
            measured["avg_power_w"] = Quantity.point(rate.avg_power_w)
        estimate = load_and_estimate_train(
            scenario,
            overrides={**measured, **overrides},
            hardware=hardware,
            tier=tier,
            samples=samples,
            seed=seed,
            locator=locator,
        )
        note = (
            f"end-to-end MFU {rate.mfu:.2%} of the {rate.mfu_basis}, measured by the job {rate.path} "
            f"({rate.model} on {rate.label}), applied to {estimate.hardware.name}'s dense bf16 peak for "
            f"{estimate.model.name}" + ("; a CPU figure, not a GPU measurement" if rate.cpu else "")
        )
    else:
        if not same or rate.phase not in ("prefill", "decode"):
            raise UsageError(
                f"{rate.path}: a serving scenario takes a prefill or decode job of {scenario.model} on {target}; "
                f"this is a {rate.phase} job of {rate.model} on {rate.hardware or rate.label}"
            )
        name = f"{rate.phase}_tokens_per_s_per_gpu"
        measured = {name: Quantity.point(rate.tokens_per_s_per_gpu)}
        estimate = load_and_estimate_serve(
            scenario,
            overrides={**measured, **overrides},
            hardware=hardware,
            tier=tier,
            samples=samples,
            seed=seed,
            locator=locator,
        )
        note = (
            f"{rate.phase} throughput {rate.tokens_per_s_per_gpu:.4g} tokens/s per GPU measured by the job {rate.path}"
        )
    for name in measured:
        if name in estimate.inputs and name not in overrides:
            estimate.inputs[name] = dataclasses.replace(estimate.inputs[name], origin="measured job", source=rate.path)
    estimate.method = "measured job"
    estimate.notes.insert(0, note)
    return estimate
