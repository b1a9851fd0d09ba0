"""A measured job: the user's own command (``meter measure -- CMD``) or loop (``meter.Meter``).

A job run file (``kind: job``) holds one :class:`JobResult`: what ran, how it ended, what each
GPU it could use did over the whole job (a :class:`TelemetryWindow` per GPU plus its peak
memory), what it cost, and, when the job said how much work it did, tokens per second, achieved
TFLOP/s, MFU and joules per token. Windows opened through the Python API are kept as
:class:`JobWindow` records. Energy that was not measured is None, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from meter.config.schema import ALLOW_EMPTY, between, ge, gt
from meter.results.cases import Phase
from meter.results.records import TelemetryWindow

JobSource = Literal["measure", "api"]
TokensSource = Literal["--tokens", "log", "api"]


def _opt(bounds: dict[str, float]) -> dict:
    return {"default": None, "metadata": bounds}


@dataclass(frozen=True)
class JobGpu:
    """One GPU the job could use: who it is, and its own window over the job."""

    key: str  # gpu<NVML index>, as the telemetry names it
    name: str
    index: int | None = field(**_opt(ge(0)))  # NVML index
    uuid: str | None = None
    hardware_config: str | None = None  # the matched hardware config; None for an unknown GPU
    peak_memory_used_bytes: int | None = field(**_opt(ge(0)))  # the most seen in any sample
    memory_total_bytes: int | None = field(**_opt(ge(0)))
    telemetry: TelemetryWindow | None = None


@dataclass(frozen=True)
class JobWork:
    """The work the job reported, and the rates it gives.

    ``achieved_tflops`` is per GPU (the job's FLOPs over its GPU-seconds); ``mfu`` is that against
    the dense bf16 datasheet peak of the GPUs' hardware config, as DeepSeek reports MFU.
    """

    tokens: float = field(metadata=ge(0))
    tokens_source: TokensSource
    tokens_per_s: float | None = field(**_opt(ge(0)))
    model: str | None = None
    phase: Phase | None = None
    seq: int | None = field(**_opt(ge(1)))  # sequence (train, prefill) or context (decode) length
    flops_per_token: float | None = field(**_opt(gt(0)))  # analytic, meter.analytic
    achieved_tflops: float | None = field(**_opt(ge(0)))
    mfu: float | None = field(**_opt(ge(0)))
    mfu_basis: str | None = None  # what the MFU is measured against, or why there is none
    joules_per_token: float | None = field(**_opt(ge(0)))


@dataclass(frozen=True)
class JobCost:
    """Dollars: the GPUs' time at a rental price, and the energy at an electricity price and PUE."""

    gpus: int = field(metadata=ge(0))
    gpu_hours: float = field(metadata=ge(0))
    usd_per_gpu_hour: float | None = field(**_opt(ge(0)))
    price_source: str | None = None
    gpu_usd: float | None = field(**_opt(ge(0)))
    energy_kwh: float | None = field(**_opt(ge(0)))  # the GPUs' energy, before PUE
    pue: float | None = field(**_opt(ge(1)))
    usd_per_kwh: float | None = field(**_opt(ge(0)))
    energy_source: str | None = None
    energy_usd: float | None = field(**_opt(ge(0)))
    total_usd: float | None = field(**_opt(ge(0)))  # gpu_usd + energy_usd, where both are known


@dataclass(frozen=True)
class JobWindow:
    """A window of the Python API: its time, energy, dollars and, with a token count, its rates.

    ``usd`` is the GPUs' time at the rental price; ``energy_usd`` the energy at PUE x $/kWh.
    """

    name: Annotated[str, ALLOW_EMPTY]
    start_s: float  # seconds since the meter started
    end_s: float
    duration_s: float = field(metadata=ge(0))
    gpus: int = field(default=0, metadata=ge(0))
    energy_j: float | None = field(**_opt(ge(0)))
    usd: float | None = field(**_opt(ge(0)))
    energy_usd: float | None = field(**_opt(ge(0)))
    tokens: float | None = field(**_opt(ge(0)))
    tokens_per_s: float | None = field(**_opt(ge(0)))
    joules_per_token: float | None = field(**_opt(ge(0)))
    achieved_tflops: float | None = field(**_opt(ge(0)))  # per GPU, with a model
    mfu: float | None = field(**_opt(ge(0)))
    telemetry: TelemetryWindow | None = None


@dataclass(frozen=True)
class JobWindowTotal:
    """Every window of one name, added up (the run file keeps at most so many windows one by one)."""

    name: Annotated[str, ALLOW_EMPTY]
    count: int = field(metadata=ge(1))
    duration_s: float = field(metadata=ge(0))
    energy_j: float | None = field(**_opt(ge(0)))  # None when any of them had no energy reading
    usd: float | None = field(**_opt(ge(0)))
    tokens: float | None = field(**_opt(ge(0)))  # None when none of them was given a count


@dataclass(frozen=True)
class JobResult:
    """One measured job.

    ``exit_status`` is the command's, or, for a command killed by a signal, minus the signal
    number (as Python reports it); ``signal`` names it. ``interrupted`` is true when meter passed
    Ctrl-C or SIGTERM on to the job. ``telemetry`` sums the GPUs; ``energy_reason`` says why there
    is no energy (no NVML, a GPU without counter or power).
    """

    source: JobSource
    duration_s: float = field(metadata=ge(0))
    command: list[Annotated[str, ALLOW_EMPTY]] = field(default_factory=list)
    exit_status: int | None = None
    signal: str | None = None
    interrupted: bool = False
    gpus: list[JobGpu] = field(default_factory=list)
    telemetry: TelemetryWindow | None = None
    energy_reason: str | None = None
    avg_utilization_ratio: float | None = field(**_opt(between(0, 1)))  # mean over the GPUs
    work: JobWork | None = None
    cost: JobCost | None = None
    windows: list[JobWindow] = field(default_factory=list)
    window_totals: list[JobWindowTotal] = field(default_factory=list)
    windows_not_kept: int = field(default=0, metadata=ge(0))  # windows beyond the API's max_windows
    notes: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float | None:
        return self.telemetry.energy_j if self.telemetry is not None else None
