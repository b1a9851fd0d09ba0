"""What a sweep will need on a GPU before anyone pays for one: memory per case, and device time.

For each case: its peak memory measured on the meta device (:mod:`meter.bench.memory_plan`) and
whether it fits the target with the stated margin; its time per call from a roofline at the
hardware's datasheet peaks times a stated efficiency (the larger of FLOPs over the peak of the
case's precision and bytes over the memory bandwidth); and its device time from the timer's own
rules (warm-up, timed repeats with an L2 flush before each, each part timed alone, the energy
window). The total adds what a run spends once: starting the process and measuring the ceilings.
Pure arithmetic around one measurement per case; no GPU is touched.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Literal

from kernels.args import ModelArgs
from meter.bench.memory_plan import MARGIN, MemoryMargin, planned_peak
from meter.bench.timer import GPU_DEFAULTS, energy_calls
from meter.device.select import ComputeDevice
from meter.results.cases import BenchCase
from meter.results.records import TimingSettings

FLUSH_BYTES = 2 * 64 * 2**20  # the timer's L2 flush when the L2 size is unknown: twice 64 MiB, written


@dataclass(frozen=True)
class PlanAssumptions:
    """What the device time rests on, stated so that it can be argued with."""

    efficiency: float = 0.5  # of the datasheet peaks, compute and memory alike
    settings: TimingSettings = GPU_DEFAULTS
    telemetry_window_s: float = 1.0  # the energy window of back-to-back calls (the monitor's minimum)
    case_overhead_s: float = 1.0  # build with random weights, CUDA-graph capture, teardown; plus the case's planning
    startup_s: float = 30.0  # importing torch, CUDA's context, the op probes
    ceilings_s: float = 15.0  # a fresh machine measures its copy, bf16/fp16/fp32 and fp8 GEMM ceilings once


@dataclass(frozen=True)
class CasePlan:
    case: BenchCase
    status: Literal["runs", "does not fit", "unsupported"]
    reason: str | None = None
    peak_bytes: int | None = None
    peak_method: str | None = None
    need_bytes: int | None = None
    fits: bool | None = None
    backend: str | None = None
    flops_per_call: float | None = None
    bytes_per_call: float | None = None
    time_per_call_s: float | None = None  # the roofline at the stated efficiency
    bound: Literal["compute", "memory"] | None = None
    calls: int | None = None  # warm-up, timed, parts and the energy window
    device_s: float = 0.0


@dataclass(frozen=True)
class SweepPlan:
    target: str
    capacity_bytes: int | None
    margin: str
    assumptions: PlanAssumptions
    cases: list[CasePlan] = field(default_factory=list)

    @property
    def cases_s(self) -> float:
        return sum(c.device_s for c in self.cases)

    @property
    def estimated(self) -> bool:
        """Whether every case that runs has a device time (it needs the hardware's datasheet peaks)."""
        return all(c.time_per_call_s is not None for c in self.cases if c.status == "runs")

    @property
    def total_device_s(self) -> float | None:
        """The cases, plus what a run does once (start-up, ceilings); None when not every case is estimated."""
        if not self.estimated:
            return None
        fixed = self.assumptions.startup_s + self.assumptions.ceilings_s if self.cases else 0.0
        return self.cases_s + fixed


def plan_sweep(
    cases: list[BenchCase],
    models: dict[str, ModelArgs],
    target: ComputeDevice,
    *,
    capacity_bytes: int | None,
    assumptions: PlanAssumptions = PlanAssumptions(),
    margin: MemoryMargin = MARGIN,
) -> SweepPlan:
    """Every case's memory and device time on ``target`` (a GPU config, or one that is here)."""
    label = target.hardware.name if target.hardware else target.name
    if capacity_bytes is not None and (target.hardware is None or capacity_bytes != target.hardware.memory_bytes):
        label += f" with {capacity_bytes / 2**30:g} GiB"
    return SweepPlan(
        target=label,
        capacity_bytes=capacity_bytes,
        margin=margin.describe(),
        assumptions=assumptions,
        cases=[plan_case(c, models[c.model], target, capacity_bytes, assumptions, margin) for c in cases],
    )


def plan_case(
    case: BenchCase,
    a: ModelArgs,
    target: ComputeDevice,
    capacity_bytes: int | None,
    assumptions: PlanAssumptions,
    margin: MemoryMargin = MARGIN,
) -> CasePlan:
    from meter.bench.workloads import UnsupportedCase

    started = time.perf_counter()
    try:
        peak = planned_peak(case, a, target)
        shape = _shape(case, a, target)
    except UnsupportedCase as exc:
        return CasePlan(case, "unsupported", str(exc))
    planning_s = time.perf_counter() - started
    need = margin.need_bytes(peak.peak_bytes)
    fits = None if capacity_bytes is None else need <= capacity_bytes
    common = dict(
        peak_bytes=peak.peak_bytes,
        peak_method=peak.method,
        need_bytes=need,
        fits=fits,
        backend=shape["backend"],
        flops_per_call=shape["flops"],
        bytes_per_call=shape["bytes"],
    )
    if fits is False:
        why = f"needs {need / 2**30:.1f} GiB ({margin.describe()}) of {capacity_bytes / 2**30:.1f} GiB"
        return CasePlan(case, "does not fit", why, device_s=planning_s, **common)
    t, bound = roofline_s(shape["flops"], shape["bytes"], shape["precision"], target, assumptions.efficiency)
    if t is None:
        return CasePlan(case, "runs", "no datasheet peaks: device time not estimated", **common)
    calls, seconds = timed_calls(t, assumptions.settings)
    for part_flops, precision in shape["parts"]:
        tp, _ = roofline_s(part_flops, shape["bytes"], precision, target, assumptions.efficiency)
        part_calls, part_s = timed_calls(tp or t, assumptions.settings)
        calls, seconds = calls + part_calls, seconds + part_s
    n_energy = energy_calls(t, assumptions.telemetry_window_s) if assumptions.telemetry_window_s > 0 else 0
    calls, seconds = calls + n_energy, seconds + n_energy * t
    flushes = calls * FLUSH_BYTES / _bandwidth(target, assumptions.efficiency)
    device_s = seconds + flushes + assumptions.case_overhead_s + planning_s
    return CasePlan(case, "runs", None, time_per_call_s=t, bound=bound, calls=calls, device_s=device_s, **common)


def roofline_s(
    flops: float, bytes_moved: float, precision: str, target: ComputeDevice, efficiency: float
) -> tuple[float | None, str | None]:
    """Seconds per call: the larger of compute and memory time at ``efficiency`` of the peaks."""
    hw = target.hardware
    peak = hw.peak_flops(precision) if hw else None
    bandwidth = hw.memory_bandwidth_bytes_per_s if hw else None
    if not peak or not bandwidth:
        return None, None
    compute, memory = flops / (peak * efficiency), bytes_moved / (bandwidth * efficiency)
    return max(compute, memory), ("compute" if compute >= memory else "memory")


def timed_calls(t: float, s: TimingSettings) -> tuple[int, float]:
    """(calls, seconds) the CUDA timer spends on a call of ``t`` seconds: warm-up, then timed repeats."""
    warm_calls = max(s.min_warmup_calls, math.ceil(s.warmup_s / t))
    repeats = max(s.min_repeats, min(s.max_repeats, int(s.min_time_s / t) + 1))
    timed = min(s.max_repeats, max(repeats, math.ceil(s.min_time_s / t)))
    return warm_calls + timed, (warm_calls + timed) * t


def _bandwidth(target: ComputeDevice, efficiency: float) -> float:
    bw = target.hardware.memory_bandwidth_bytes_per_s if target.hardware else None
    return (bw or 1e12) * efficiency


def _shape(case: BenchCase, a: ModelArgs, target: ComputeDevice) -> dict:
    """FLOPs, bytes and parts of one call, from the workload built on the meta device (no values)."""
    import dataclasses

    from meter.bench.sdpa import FusedSdpaOnMeta
    from meter.bench.workloads import build_workload

    with FusedSdpaOnMeta(target):
        w = build_workload(case, a, dataclasses.replace(target, torch_device="meta"), target=target)
    precision = "fp8" if case.fp8 else case.dtype
    return {
        "flops": w.flops_per_call,
        "bytes": w.bytes_per_call,
        # An fp8 layer also runs its router and shared expert in bf16: its roofline takes the bf16 peak.
        "precision": case.dtype if case.fp8 else precision,
        "parts": [(p.flops_per_call, p.precision) for p in w.parts],
        "backend": w.details.backend,
    }
