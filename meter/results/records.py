"""The measured parts of a run file: timing, rates, telemetry windows, case results, projections,
communication results and stragglers.

Every class here is built by the writers (the bench harness, the distributed assembly, the
telemetry monitor) and by the one loader (:mod:`meter.results.load`), so both sides validate the
same fields the same way: a time is a positive finite number, a ratio lies in [0, 1], an enum is
one of its values. The bounds are in each field's metadata (``gt``, ``ge``, ``between``) and are
checked by :func:`meter.config.schema.build_dataclass`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from meter.config.schema import between, ge, gt
from meter.results.cases import BenchCase, CommCase, Dtype, Phase

CaseStatus = Literal["ok", "oom", "unsupported", "error"]
MAX_LAYERS = 100_000  # layers of one kind in a model; a count beyond it is a broken file, not a model
Scope = Literal["world", "intra-node", "inter-node"]


def _opt(bounds: dict[str, float]) -> dict:
    """Metadata for an optional number: None (not measured) or within ``bounds``."""
    return {"default": None, "metadata": bounds}


@dataclass(frozen=True)
class TimingSettings:
    """How long and how often a case is timed."""

    warmup_s: float = field(default=0.2, metadata=ge(0))
    min_warmup_calls: int = field(default=2, metadata=ge(0))
    min_time_s: float = field(default=0.5, metadata=ge(0))  # keep timing until this much has been measured...
    min_repeats: int = field(default=5, metadata=ge(1))  # ...and at least this many calls
    max_repeats: int = field(default=200, metadata=ge(1))
    flush_l2: bool = True  # GPU only


@dataclass(frozen=True)
class Timing:
    """Seconds per call over the timed repeats: the median and the spread."""

    n: int = field(metadata=ge(1))
    median_s: float = field(metadata=gt(0))
    mean_s: float = field(metadata=gt(0))
    stdev_s: float = field(metadata=ge(0))
    min_s: float = field(metadata=gt(0))
    max_s: float = field(metadata=gt(0))
    p10_s: float = field(metadata=gt(0))
    p90_s: float = field(metadata=gt(0))
    iqr_s: float = field(metadata=ge(0))
    spread: float = field(metadata=ge(0))  # interquartile range over the median


@dataclass(frozen=True)
class CaseMetrics:
    """Rates and efficiencies of one case, from its median time and analytic FLOPs and bytes."""

    time_per_call_s: float = field(metadata=gt(0))
    time_per_token_s: float = field(metadata=gt(0))
    tokens_per_s: float = field(metadata=gt(0))
    flops_per_call: float = field(metadata=ge(0))
    bytes_per_call: float = field(metadata=ge(0))
    achieved_tflops: float = field(metadata=ge(0))
    achieved_gb_s: float = field(metadata=ge(0))
    arithmetic_intensity_flop_per_byte: float | None = field(**_opt(ge(0)))
    mfu: float | None = field(**_opt(ge(0)))  # against the dense bf16 datasheet peak
    peak_fraction_dtype: float | None = field(**_opt(ge(0)))  # against the peak of the precision used
    gemm_ceiling_fraction: float | None = field(**_opt(ge(0)))  # against the GEMM rate measured here
    copy_ceiling_fraction: float | None = field(**_opt(ge(0)))  # against the copy bandwidth measured here

    @property
    def tokens_per_call(self) -> float:
        return self.time_per_call_s / self.time_per_token_s


@dataclass(frozen=True)
class CaseDetails:
    """How the case ran: input rotation, CUDA graphs, and per-layer facts."""

    input_sets: int | None = field(**_opt(ge(1)))
    cuda_graph: bool | None = None
    local_experts: int | None = field(**_opt(ge(1)))
    rows_per_expert: float | None = field(**_opt(ge(0)))
    expert_gemm: str | None = None  # the grouped-GEMM backend (or fp8 scaling) the experts used
    cache_bytes: int | None = field(**_opt(ge(0)))
    # what ran the layer's heavy ops: grouped_mm, loop, sdpa-flash, fp8-... (absent in older files)
    backend: str | None = None
    fallback_reason: str | None = None  # why a slower path than the fused one ran, when one did
    peak_bytes: int | None = field(**_opt(ge(0)))  # live-tensor peak measured on the meta device before the run
    peak_method: str | None = None
    # MLA decode: the bytes its form moves (analytic; metrics.bytes_per_call) against the minimum
    bytes_minimum: float | None = field(**_opt(ge(0)))
    bytes_ratio_to_minimum: float | None = field(**_opt(ge(0)))
    bytes_model: str | None = None  # how metrics.bytes_per_call is counted, where it is only a bound
    block_h: int | None = field(**_opt(ge(1)))  # the fused kernel's launch plan
    block_n: int | None = field(**_opt(ge(1)))
    num_splits: int | None = field(**_opt(ge(1)))


@dataclass(frozen=True)
class PartResult:
    """A part of a case timed on its own: e.g. the expert GEMMs on pre-sorted, pre-quantised rows
    (without the gate, sort, quantisation and scatter the whole layer also does)."""

    name: str
    precision: str  # of the part's GEMMs: fp8, bf16, fp16, fp32
    timing: Timing
    flops_per_call: float = field(metadata=ge(0))
    achieved_tflops: float = field(metadata=ge(0))
    peak_fraction: float | None = field(**_opt(ge(0)))  # against the datasheet peak of that precision
    ceiling_fraction: float | None = field(**_opt(ge(0)))  # against the GEMM ceiling measured here in that precision


@dataclass(frozen=True)
class TelemetryWindow:
    """What one benchmark window cost: energy (the counter, or integrated power), power, clocks, throttling.

    With several devices the totals are at the top and each device's own window is in ``devices``.
    """

    name: str
    duration_s: float = field(metadata=ge(0))
    energy_j: float | None = field(**_opt(ge(0)))
    energy_method: Literal["counter", "integrated power"] | None = None
    energy_counter_j: float | None = field(**_opt(ge(0)))
    energy_integrated_j: float | None = field(**_opt(ge(0)))
    energy_disagreement: float | None = field(**_opt(ge(0)))  # |integrated - counter| / counter
    counter_reset: bool = False
    counter_updates: int = field(default=0, metadata=ge(0))
    avg_power_w: float | None = field(**_opt(ge(0)))
    peak_power_w: float | None = field(**_opt(ge(0)))
    avg_utilization_ratio: float | None = field(**_opt(between(0, 1)))
    avg_sm_clock_hz: float | None = field(**_opt(ge(0)))
    min_sm_clock_hz: float | None = field(**_opt(ge(0)))
    clock_event_reasons: list[str] = field(default_factory=list)
    throttle_reasons: list[str] = field(default_factory=list)
    n_samples: int = field(default=0, metadata=ge(0))
    power_semantics: str | None = None
    low_confidence: bool = False
    low_confidence_reasons: list[str] = field(default_factory=list)
    device: str | None = None  # the device key (gpu0, cpu) of a one-device window
    devices: Mapping[str, TelemetryWindow] | None = None  # each device's own window, when there are several
    start_s: float | None = None  # seconds since the monitor started
    end_s: float | None = None
    energy_per_call_j: float | None = field(**_opt(ge(0)))
    joules_per_token: float | None = field(**_opt(ge(0)))
    calls: int | None = field(**_opt(ge(1)))  # a case's window: the calls run back to back inside it


@dataclass(frozen=True)
class RankCaseResult:
    """One rank's figures for a case of a distributed run."""

    rank: int = field(metadata=ge(0))
    node_rank: int = field(metadata=ge(0))
    hostname: str
    device: str
    status: CaseStatus
    reason: str | None = None
    median_s: float | None = field(**_opt(gt(0)))
    tokens_per_s: float | None = field(**_opt(gt(0)))
    throttle_reasons: list[str] = field(default_factory=list)
    joules_per_token: float | None = field(**_opt(ge(0)))


@dataclass(frozen=True)
class RanksSummary:
    """How the ranks of a distributed case compare; a case's own figures are the slowest rank's."""

    count: int = field(metadata=ge(1))
    slowest_rank: int | None = field(**_opt(ge(0)))
    median_s_min: float | None = field(**_opt(gt(0)))
    median_s_median: float | None = field(**_opt(gt(0)))
    median_s_max: float | None = field(**_opt(gt(0)))
    spread_across_ranks: float | None = field(**_opt(ge(0)))
    note: str | None = None


@dataclass(frozen=True)
class CaseResult:
    """One case as measured: status, timing, rates, telemetry. Only ``ok`` cases carry timing and metrics."""

    id: str
    case: BenchCase
    status: CaseStatus = "ok"
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    timing: Timing | None = None
    metrics: CaseMetrics | None = None
    bound: Literal["compute", "memory"] | None = None
    details: CaseDetails | None = None
    telemetry: TelemetryWindow | None = None
    per_rank: list[RankCaseResult] | None = None
    ranks: RanksSummary | None = None
    parts: list[PartResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.metrics is not None and self.timing is not None


@dataclass(frozen=True)
class ProjectionLayer:
    """One layer kind in a whole-model projection: which case measured it and how many the model has."""

    case_id: str
    count: int = field(metadata=between(0, MAX_LAYERS))
    time_per_token_s: float = field(metadata=gt(0))
    flops_per_token: float = field(metadata=ge(0))


NOT_INCLUDED = [
    "embedding and output head",
    "MTP modules",
    "communication (expert and pipeline parallel)",
    "pipeline bubbles and recomputation",
]


@dataclass(frozen=True)
class Projection:
    """Whole-model time per token on the measured device: layers x measured per-layer time."""

    model: str
    phase: Phase
    dtype: Dtype
    batch: int = field(metadata=ge(1))
    seq: int = field(metadata=ge(0))
    context: int = field(metadata=ge(0))
    layers: Mapping[str, ProjectionLayer]
    time_per_token_s: float = field(metadata=gt(0))
    tokens_per_s: float = field(metadata=gt(0))
    flops_per_token: float = field(metadata=ge(0))  # analytic, the measured layers only
    mfu: float | None = field(**_opt(ge(0)))  # against the dense bf16 peak; None without a datasheet
    not_included: list[str] = field(default_factory=lambda: list(NOT_INCLUDED))


@dataclass(frozen=True)
class CommResult:
    """One collective in one scope, in nccl-tests' terms (algbw = S / t, busbw = algbw x factor)."""

    id: str
    scope: Scope
    group_size: int = field(metadata=ge(1))
    case: CommCase
    time_s: float = field(metadata=gt(0))  # median over rounds of each round's slowest rank
    time_min_s: float = field(metadata=gt(0))
    time_max_s: float = field(metadata=gt(0))
    message_bytes: int = field(metadata=ge(0))
    bytes_to_peers_per_rank: float = field(metadata=ge(0))
    algbw_gb_s: float = field(metadata=ge(0))
    busbw_gb_s: float = field(metadata=ge(0))
    verified: bool
    ranks: int = field(metadata=ge(1))
    per_rank_median_s: Mapping[str, float] = field(default_factory=dict, metadata=gt(0))
    time_per_token_s: float | None = field(**_opt(gt(0)))  # dispatch and combine

    @property
    def peer_bytes_per_s(self) -> float:
        """Bytes a rank sent to its peers per second: what the EP cost model divides by."""
        return self.bytes_to_peers_per_rank / self.time_s


@dataclass(frozen=True)
class Straggler:
    """A rank more than the threshold slower than the median rank in a case, or throttled."""

    case: str
    rank: int = field(metadata=ge(0))
    node_rank: int = field(metadata=ge(0))
    hostname: str
    device: str
    slowdown: float
    reasons: list[str] = field(default_factory=list)
