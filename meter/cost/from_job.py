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
from dataclasses import dataclass

from meter.config.paths import ConfigLocator
from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario
from meter.cost.estimate import DEFAULT_SAMPLES, CostEstimate, estimate_serve, estimate_train
from meter.errors import MeterError, UsageError
from meter.results.document import RunDocument


@dataclass(frozen=True)
class JobRate:
    """What a measured job achieved, as the cost model takes it."""

    path: str
    model: str
    phase: str
    seq: int
    gpus: int
    tokens_per_s: float
    mfu: float
    mfu_basis: str
    device_name: str
    hardware: str | None
    cpu: bool
    avg_power_w: float | None  # per GPU
    joules_per_token: float | None

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def label(self) -> str:
        return f"CPU ({self.device_name})" if self.cpu else self.device_name


def job_rate(doc: RunDocument, path: str) -> JobRate:
    """The job's rate, or one line saying what the job lacks to have one."""
    job = doc.job
    work = job.work if job is not None else None
    if work is None or work.model is None or not work.tokens or not work.tokens_per_s:
        raise MeterError(
            f"{path}: the job has no token count for a model (meter measure --tokens N or --tokens-from-log "
            "with --model; tokens= and model= in the Python API)"
        )
    gpus = job.cost.gpus if job.cost is not None else len(job.gpus)
    if not gpus:
        raise MeterError(f"{path}: the job's GPU count is unknown (no NVML saw them); measure it with --gpus N")
    if work.mfu is None:
        raise MeterError(f"{path}: the job has no MFU ({work.mfu_basis or 'its GPUs match no hardware config'})")
    if work.mfu > 1:
        raise MeterError(
            f"{path}: field 'job.work.mfu': above 1, which no GPU achieves: the token count, the model or its "
            f"sequence length is not what the job ran (got {work.mfu:.4g})"
        )
    energy = job.energy_j
    return JobRate(
        path=str(path),
        model=work.model,
        phase=work.phase or "train",
        seq=work.seq or 0,
        gpus=gpus,
        tokens_per_s=work.tokens_per_s,
        mfu=work.mfu,
        mfu_basis=work.mfu_basis or "dense bf16 datasheet peak",
        device_name=doc.metadata.device.name,
        hardware=doc.metadata.hardware.name if doc.metadata.hardware else None,
        cpu=doc.metadata.device.cpu,
        avg_power_w=energy / job.duration_s / gpus if energy is not None and job.duration_s > 0 else None,
        joules_per_token=work.joules_per_token,
    )


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
        estimate = estimate_train(
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
        estimate = estimate_serve(
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


def job_calibration(doc: RunDocument, path: str, scenario: Scenario, locator: ConfigLocator | None) -> dict:
    """``meter calibrate`` of a measured job: the scenario at the job's rate, beside its own figures."""
    rate = job_rate(doc, path)
    measured = estimate_from_job(scenario, rate, samples=0, locator=locator)
    if scenario.kind == "train":
        reported = estimate_train(scenario, samples=0, locator=locator)
    else:
        reported = estimate_serve(scenario, samples=0, locator=locator)
    return {
        "run": path,
        "device": rate.label,
        "cpu": rate.cpu,
        "scenario": scenario.name,
        "kind": scenario.kind,
        "method": measured.method,
        "notes": measured.notes,
        "measured": {k: v.point for k, v in measured.outputs.items()},
        "reported_inputs": {k: v.point for k, v in reported.outputs.items()},
        "reproductions": [r.as_dict() for r in reported.reproductions],
        "efficiency": {
            rate.phase: [
                {
                    "efficiency": rate.mfu,
                    "basis": rate.mfu_basis,
                    "batch": None,
                    "seq": rate.seq,
                    "context": rate.seq if rate.phase == "decode" else None,
                    "tokens_per_s_per_gpu": rate.tokens_per_s_per_gpu,
                }
            ]
        },
    }
