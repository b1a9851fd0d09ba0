"""Run a list of cases on one device and record each result as it finishes.

Per case: the memory it needs (its peak measured on the meta device, with the stated margin)
against what is free, then the build, a CUDA graph for decode where the step never syncs with the
host, the timed calls, each part of the layer timed on its own, and last the energy window: calls
back to back, no warm-up and no L2 flush inside it.

Out-of-memory and unsupported cases are recorded as such and the sweep goes on; Ctrl-C stops
the sweep and keeps what finished (the caller marks the run interrupted).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol

import torch

from kernels.args import ModelArgs
from meter.bench.memory_plan import MARGIN, PeakEstimate, planned_peak
from meter.bench.metrics import bound, case_metrics, part_result
from meter.bench.stats import summarize
from meter.bench.timer import CPU_DEFAULTS, GPU_DEFAULTS, back_to_back, time_cpu, time_cuda
from meter.bench.workloads import InsufficientMemory, UnsupportedCase, Workload, build_workload, capture_cuda_graph
from meter.device.select import ComputeDevice, free_memory_bytes
from meter.results.cases import BenchCase
from meter.results.document import Ceilings
from meter.results.records import CaseResult, TelemetryWindow, TimingSettings
from meter.telemetry.monitor import WindowHandle

ENERGY_WINDOW_SPARE = 1.05


class WindowMonitor(Protocol):
    """What the harness needs from telemetry: a window around each case."""

    min_window_s: float

    def window(self, name: str) -> contextlib.AbstractContextManager[WindowHandle[TelemetryWindow]]: ...


def run_cases(
    cases: list[BenchCase],
    models: Mapping[str, ModelArgs],
    device: ComputeDevice,
    *,
    record: Callable[[CaseResult], object],
    ceilings: Ceilings | None = None,
    settings: TimingSettings | None = None,
    monitor: WindowMonitor | None = None,
    cuda_graphs: bool = True,
    progress: Callable[[int, int, BenchCase], None] | None = None,
) -> None:
    """Measure each case and pass its result to ``record``; KeyboardInterrupt propagates after cleanup."""
    settings = settings or (GPU_DEFAULTS if device.kind == "cuda" else CPU_DEFAULTS)
    for i, case in enumerate(cases):
        if progress:
            progress(i, len(cases), case)
        record(
            run_case(
                case,
                models[case.model],
                device,
                ceilings=ceilings,
                settings=settings,
                monitor=monitor,
                cuda_graphs=cuda_graphs,
            )
        )


def run_case(
    case: BenchCase,
    a: ModelArgs,
    device: ComputeDevice,
    *,
    ceilings: Ceilings | None,
    settings: TimingSettings,
    monitor: WindowMonitor | None = None,
    cuda_graphs: bool = True,
) -> CaseResult:
    """Measure one case; a case that cannot run is recorded with its status and reason, never raised."""
    workload = None
    notes: list[str] = []
    try:
        free = free_memory_bytes(device)
        peak = check_memory(case, a, device, free)
        workload = build_workload(case, a, device, free_bytes=free)
        notes = list(workload.notes)
        if device.kind == "cuda" and cuda_graphs and case.phase == "decode":
            why_not = capture_cuda_graph(workload)
            if why_not:
                notes.append(why_not)
        call = _call(workload)
        timer = _timer(device, settings)
        stats = summarize(timer(call))
        parts = [part_result(p, summarize(timer(p.step)), device.hardware, ceilings) for p in workload.parts]
        telemetry = _energy(monitor, case.id, call, workload) if monitor else None
        metrics = case_metrics(
            median_s=stats.median_s,
            flops_per_call=workload.flops_per_call,
            bytes_per_call=workload.bytes_per_call,
            tokens_per_call=workload.tokens_per_call,
            dtype=case.dtype,
            fp8=bool(case.fp8),
            hardware=device.hardware,
            ceilings=ceilings,
        )
        return CaseResult(
            id=case.id,
            case=case,
            notes=notes,
            timing=stats,
            metrics=metrics,
            bound=bound(metrics, ceilings, case.dtype),
            details=replace(
                workload.details,
                input_sets=workload.n_inputs,
                cuda_graph=bool(workload.replay),
                peak_bytes=peak.peak_bytes if peak else None,
                peak_method=peak.method if peak else None,
            ),
            telemetry=telemetry,
            parts=parts,
        )
    except UnsupportedCase as exc:
        return _failed(case, "unsupported", str(exc), notes)
    except InsufficientMemory as exc:
        return _failed(case, "oom", f"skipped before allocating: {exc}", notes)
    except torch.OutOfMemoryError as exc:
        return _failed(case, "oom", str(exc).splitlines()[0][:200], notes)
    except MemoryError:
        return _failed(case, "oom", "host memory exhausted", notes)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one broken case must not end a sweep; the reason is recorded
        first_line = str(exc).splitlines()[0][:300] if str(exc) else ""
        return _failed(case, "error", f"{type(exc).__name__}: {first_line}", notes)
    finally:
        del workload
        gc.collect()
        if device.kind == "cuda":
            torch.cuda.empty_cache()


def check_memory(case: BenchCase, a: ModelArgs, device: ComputeDevice, free_bytes: int | None) -> PeakEstimate | None:
    """The case's planned peak; raises InsufficientMemory when it does not fit ``free_bytes`` with the margin."""
    if free_bytes is None:
        return None
    peak = planned_peak(case, a, device)
    need = peak.need_bytes()
    if need > free_bytes:
        raise InsufficientMemory(
            f"needs about {need / 2**30:.1f} GiB ({peak.method} peak {peak.peak_bytes / 2**30:.1f} GiB, "
            f"{MARGIN.describe()}), {free_bytes / 2**30:.1f} GiB free"
        )
    return peak


def _call(workload: Workload) -> Callable[[int], None]:
    replay = workload.replay
    return (lambda i: replay()) if replay else workload.step


def _timer(device: ComputeDevice, settings: TimingSettings) -> Callable[[Callable[[int], None]], list[float]]:
    if device.kind == "cuda":
        l2 = device.properties.get("l2_cache_bytes")
        return lambda call: time_cuda(call, settings, l2_bytes=l2, device=device.torch_device)
    return lambda call: time_cpu(call, settings)


def _energy(monitor: WindowMonitor, name: str, call: Callable[[int], None], workload: Workload) -> TelemetryWindow:
    """The telemetry window of back-to-back calls filling the monitor's shortest trustworthy window
    (with 5% to spare, so that jitter cannot leave it one counter update short); energy per call is
    the window's energy over the calls in it."""
    with monitor.window(name) as w:
        n = back_to_back(call, ENERGY_WINDOW_SPARE * monitor.min_window_s)
    tele = w.summary()
    per_call = tele.energy_j / n if tele.energy_j is not None else None
    return replace(
        tele,
        calls=n,
        energy_per_call_j=per_call,
        joules_per_token=per_call / workload.tokens_per_call if per_call is not None else None,
    )


def _failed(case: BenchCase, status: str, reason: str, notes: list[str]) -> CaseResult:
    return CaseResult(id=case.id, case=case, status=status, reason=reason, notes=notes)  # type: ignore[arg-type]
