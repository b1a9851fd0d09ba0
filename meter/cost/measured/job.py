"""A measured job's rate: the MFU it achieved end to end, its throughput and power, as the cost model takes it.

A job's MFU already includes everything the job did (communication, pipeline bubbles, data
loading, the output head); :mod:`meter.cost.job_pipeline` prices a scenario at it.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter.errors import MeterError
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
