"""The run document: metadata that makes a result trustworthy later, and everything the run measured.

Schema: docs/run-file.md. The writers build these classes (:class:`meter.results.runfile.RunRecorder`);
the readers get them from :func:`meter.results.load.load_run`; nothing else reads a run file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from meter.config.schema import ALLOW_EMPTY, between, ge, gt
from meter.results.acceptance import AcceptanceReport
from meter.results.job import JobResult
from meter.results.records import CaseResult, CommResult, Projection, Straggler, TimingSettings

SCHEMA = "gpu-cost-meter/run"
SCHEMA_VERSION = 3
RunStatus = Literal["running", "complete", "interrupted", "failed"]
# bench: meter measured layers and collectives; acceptance: meter acceptance on a new machine;
# job: the user's own command or loop, measured; import: results another tool measured
# (nccl-tests), converted into the run file's terms.
RunKind = Literal["bench", "acceptance", "job", "import"]
STATUSES: tuple[str, ...] = RunStatus.__args__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DeviceInfo:
    """The device the cases ran on."""

    kind: Literal["cuda", "cpu"]
    torch_device: str
    name: str
    uuid: str | None = None
    hardware_config: str | None = None  # the matched hardware config; None for an unknown GPU
    memory_bytes: int | None = field(default=None, metadata=ge(0))
    sm_count: int | None = field(default=None, metadata=ge(1))
    l2_cache_bytes: int | None = field(default=None, metadata=ge(0))
    compute_capability: str | None = None
    threads: int | None = field(default=None, metadata=ge(1))
    cpu_count: int | None = field(default=None, metadata=ge(1))

    @property
    def cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def label(self) -> str:
        """How tables name the device; a CPU is always called one."""
        return f"CPU ({self.name})" if self.cpu else self.name


@dataclass(frozen=True)
class HardwareSummary:
    """The hardware config the figures are measured against: datasheet peaks and where they come from."""

    name: str
    display_name: str
    peak_tflops: Mapping[str, float] = field(default_factory=dict, metadata=gt(0))
    memory_bandwidth_gb_s: float | None = field(default=None, metadata=gt(0))
    nvlink_bandwidth_gb_s: float | None = field(default=None, metadata=gt(0))
    network_bandwidth_gb_s: float | None = field(default=None, metadata=gt(0))
    source: str | None = None

    def peak_flops(self, dtype: str) -> float | None:
        tflops = self.peak_tflops.get(dtype)
        return tflops * 1e12 if tflops else None

    @property
    def memory_bandwidth_bytes_per_s(self) -> float | None:
        return self.memory_bandwidth_gb_s * 1e9 if self.memory_bandwidth_gb_s else None


@dataclass(frozen=True)
class SoftwareInfo:
    meter: str | None = None
    python: str | None = None
    platform: str | None = None
    torch: str | None = None
    torch_cuda: str | None = None  # the CUDA toolkit torch was built with
    torch_git: str | None = None
    cudnn: int | None = None
    nvidia_ml_py: str | None = None
    driver: str | None = None  # NVIDIA driver version, from NVML
    cuda_driver: str | None = None  # the CUDA version the driver supports, from NVML


@dataclass(frozen=True)
class GitInfo:
    sha: str | None = None
    dirty: bool | None = None
    source: str = "not a git checkout"  # git, or METER_GIT_SHA in images


@dataclass(frozen=True)
class HostInfo:
    hostname: str | None = None
    cpu: str | None = None
    cpu_count: int | None = field(default=None, metadata=ge(1))


@dataclass(frozen=True)
class ModelSummary:
    n_layers: int = field(metadata=ge(0))
    n_moe_layers: int = field(metadata=ge(0))
    n_dense_ffn_layers: int = field(metadata=ge(0))
    attention: Literal["mla", "gqa", "compressed"]  # compressed: DeepSeek-V4 (its MoE layers benchmarked)
    dim: int = field(metadata=ge(1))


@dataclass(frozen=True)
class MethodInfo:
    """How the figures were measured."""

    timer: str
    statistic: str
    settings: TimingSettings
    inputs: str
    cuda_graphs: bool
    flops: str
    cpu_run: bool


@dataclass(frozen=True)
class CeilingsMethod:
    copy: str
    gemm: str
    timer: str
    settings: TimingSettings


@dataclass(frozen=True)
class CeilingsMachine:
    """The machine a ceiling was measured on; a cached ceiling of another machine is measured again."""

    kind: Literal["cuda", "cpu"]
    name: str  # the CPU model or the GPU name
    torch: str
    cpu_flags: list[str] = field(default_factory=list)  # the SIMD flags GEMMs depend on
    threads: int | None = field(default=None, metadata=ge(1))  # torch's intra-op threads
    driver: str | None = None  # the GPU driver
    cuda: str | None = None


@dataclass(frozen=True)
class CeilingsLoad:
    """How busy the machine was while the ceilings were measured (a loaded machine gives low ceilings)."""

    cpu_count: int = field(metadata=ge(1))
    loadavg_1m: float | None = field(default=None, metadata=ge(0))  # before measuring
    others_busy_cpus: float | None = field(default=None, metadata=ge(0))  # CPUs' worth used by other processes
    loaded: bool = False


@dataclass(frozen=True)
class CeilingsRepeat:
    """The same ceilings measured again at the end of a CPU run: how far the machine's own speed moved
    between the two (a CPU shared with other work moves several-fold). Cost bands carry it."""

    copy_bytes_per_s: float = field(metadata=gt(0))
    gemm_flops_per_s: Mapping[str, float] = field(metadata=gt(0))
    measured_at: str


@dataclass(frozen=True)
class Ceilings:
    """Ceilings measured on the device itself: a large copy and a large GEMM."""

    device_key: str
    copy_bytes_per_s: float = field(metadata=gt(0))  # bytes read plus bytes written
    gemm_flops_per_s: Mapping[str, float] = field(metadata=gt(0))  # by dtype
    measured_at: str
    method: CeilingsMethod
    machine: CeilingsMachine | None = None
    load: CeilingsLoad | None = None
    gemm_sizes: Mapping[str, int] = field(default_factory=dict, metadata=ge(1))  # the n of each best rate
    flags: list[str] = field(default_factory=list)  # why not to trust them as they are
    repeat: CeilingsRepeat | None = None

    def gemm(self, dtype: str) -> float | None:
        return self.gemm_flops_per_s.get(dtype)

    def repeat_ratio(self, what: str) -> float | None:
        """These ceilings over the repeat measurement's, for ``copy`` or a GEMM dtype; None without one."""
        if self.repeat is None:
            return None
        if what == "copy":
            return self.copy_bytes_per_s / self.repeat.copy_bytes_per_s
        again = self.repeat.gemm_flops_per_s.get(what)
        return self.gemm_flops_per_s[what] / again if again and what in self.gemm_flops_per_s else None


@dataclass(frozen=True)
class TelemetrySource:
    """A device the telemetry sampled, as its source describes itself."""

    kind: Literal["gpu", "cpu"]
    index: int | None = field(default=None, metadata=ge(0))
    name: str | None = None
    uuid: str | None = None
    pci_bus_id: str | None = None
    architecture: str | None = None
    mig_enabled: bool | None = None
    power_semantics: str | None = None
    supported: Mapping[str, bool] = field(default_factory=dict)
    domains: list[str] | None = None  # RAPL domains of a CPU source


@dataclass(frozen=True)
class TelemetryInfo:
    """The sampler's settings and what each device supports, or why there was no telemetry."""

    enabled: bool | None = None
    reason: str | None = None
    interval_s: float | None = field(default=None, metadata=gt(0))
    counter_period_s: float | None = field(default=None, metadata=gt(0))
    counter_period: str | None = None  # measured, or assumed
    min_window_s: float | None = field(default=None, metadata=gt(0))
    devices: list[TelemetrySource] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    per_rank: list[TelemetryInfo] | None = None  # distributed runs: one entry per rank


@dataclass(frozen=True)
class RankInfo:
    rank: int = field(metadata=ge(0))
    local_rank: int = field(metadata=ge(0))
    device: str
    uuid: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    node_rank: int = field(metadata=ge(0))
    hostname: str
    ranks: list[RankInfo] = field(default_factory=list)


@dataclass(frozen=True)
class DistributedLayout:
    world_size: int = field(metadata=ge(1))
    local_world_size: int = field(metadata=ge(1))
    n_nodes: int = field(metadata=ge(1))
    backend: str
    launcher: str
    nodes: list[NodeInfo] = field(default_factory=list)


@dataclass(frozen=True)
class OpProbeInfo:
    """One fused op run once on the run's device against a float64 reference."""

    op: str
    ok: bool
    reason: str | None = None
    rel_error: float | None = field(default=None, metadata=ge(0))


@dataclass(frozen=True)
class OpsInfo:
    """Which fused GEMM ops this torch has (the name found, or null), and how each fared on the device."""

    torch_version: str
    grouped_mm: str | None = None
    scaled_mm: str | None = None
    scaled_grouped_mm: str | None = None
    probed_on: str | None = None
    probes: list[OpProbeInfo] = field(default_factory=list)

    def probe(self, op: str) -> OpProbeInfo | None:
        return next((p for p in self.probes if p.op == op), None)


@dataclass(frozen=True)
class ImportInfo:
    """Where an imported run's results came from: the tool, its version and its output file."""

    tool: str
    path: str
    version: str | None = None
    command: str | None = None  # the tool's command line, when its output names it
    notes: list[str] = field(default_factory=list)
    vendor: str | None = None  # the GPUs' maker, where the tool or the device names tell (NVIDIA, AMD)


@dataclass(frozen=True)
class RunMetadata:
    """Where and how a run was measured: device, driver, CUDA, torch, git sha, method.

    ``method`` describes meter's own benchmark method (bench runs); a job or an import has none.
    """

    device: DeviceInfo
    software: SoftwareInfo
    git: GitInfo
    host: HostInfo
    method: MethodInfo | None = None
    imported: ImportInfo | None = None
    hardware: HardwareSummary | None = None
    command: list[Annotated[str, ALLOW_EMPTY]] = field(default_factory=list)
    suite: str | None = None
    models: Mapping[str, ModelSummary] = field(default_factory=dict)
    ceilings: Ceilings | None = None
    telemetry: TelemetryInfo | None = None
    distributed: DistributedLayout | None = None
    ops: OpsInfo | None = None  # version 3


@dataclass(frozen=True)
class TimelineSeries:
    """One device's samples, thinned evenly for plots."""

    label: str
    t_s: list[float]
    power_w: list[float | None] = field(metadata=ge(0))
    utilization_ratio: list[float | None] = field(metadata=between(0, 1))
    sm_clock_hz: list[float | None] = field(metadata=ge(0))
    throttle_reasons: list[list[str]]
    thinned_every: int = field(default=1, metadata=ge(1))


@dataclass(frozen=True)
class Timeline:
    interval_s: float = field(metadata=gt(0))
    devices: Mapping[str, TimelineSeries] = field(default_factory=dict)


@dataclass(kw_only=True)
class RunDocument:
    """One run file. Mutable at the top: the recorder appends cases and sets the status as the run goes."""

    schema: Literal["gpu-cost-meter/run"] = SCHEMA
    schema_version: int = SCHEMA_VERSION
    kind: RunKind = "bench"
    run_id: str
    status: RunStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    metadata: RunMetadata
    cases: list[CaseResult]
    projections: list[Projection] = field(default_factory=list)
    communication: list[CommResult] = field(default_factory=list)
    stragglers: list[Straggler] = field(default_factory=list)
    telemetry_timeline: Timeline | None = None
    job: JobResult | None = None  # kind job: the measured job
    extras: Mapping[str, Any] = field(default_factory=dict)  # added by later steps (meter run's cost lines)
    acceptance: AcceptanceReport | None = None  # kind "acceptance": the steps and checks of meter acceptance

    @property
    def device(self) -> DeviceInfo:
        return self.metadata.device

    @property
    def cpu(self) -> bool:
        return self.metadata.device.cpu

    def ok_cases(self) -> list[CaseResult]:
        return [c for c in self.cases if c.ok]

    def models_measured(self) -> set[str]:
        return {c.case.model for c in self.cases}
