"""Run a list of cases on one device and record each result as it finishes.

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
from meter.bench.metrics import bound, case_metrics
from meter.bench.stats import summarize
from meter.bench.timer import CPU_DEFAULTS, GPU_DEFAULTS, time_cpu, time_cuda
from meter.bench.workloads import InsufficientMemory, UnsupportedCase, build_workload, capture_cuda_graph
from meter.device.select import ComputeDevice, free_memory_bytes
from meter.results.cases import BenchCase
from meter.results.document import Ceilings
from meter.results.records import CaseResult, TelemetryWindow, TimingSettings


class WindowHandle(Protocol):
    def summary(self) -> TelemetryWindow: ...


class WindowMonitor(Protocol):
    """What the harness needs from telemetry: a window around each case."""

    min_window_s: float

    def window(self, name: str) -> contextlib.AbstractContextManager[WindowHandle]: ...


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
    if monitor is not None and monitor.min_window_s > settings.min_time_s:
        # Energy needs windows longer than the counter's update period: repeat short cases more.
        settings = replace(settings, min_time_s=monitor.min_window_s, max_repeats=max(settings.max_repeats, 100_000))
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
        workload = build_workload(case, a, device, free_bytes=free_memory_bytes(device))
        notes = list(workload.notes)
        if device.kind == "cuda" and cuda_graphs and case.phase == "decode":
            why_not = capture_cuda_graph(workload)
            if why_not:
                notes.append(why_not)
        replay = workload.replay
        call = (lambda i: replay()) if replay else workload.step
        window = monitor.window(case.id) if monitor else contextlib.nullcontext()
        with window as w:
            if device.kind == "cuda":
                samples = time_cuda(
                    call, settings, l2_bytes=device.properties.get("l2_cache_bytes"), device=device.torch_device
                )
            else:
                samples = time_cpu(call, settings)
        stats = summarize(samples)
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
            details=replace(workload.details, input_sets=workload.n_inputs, cuda_graph=bool(workload.replay)),
            telemetry=_with_energy_per_token(w.summary(), stats.mean_s, workload.tokens_per_call) if monitor else None,
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


def _failed(case: BenchCase, status: str, reason: str, notes: list[str]) -> CaseResult:
    return CaseResult(id=case.id, case=case, status=status, reason=reason, notes=notes)  # type: ignore[arg-type]


def _with_energy_per_token(tele: TelemetryWindow, mean_call_s: float, tokens_per_call: int) -> TelemetryWindow:
    """Energy of one call: the window's average power times the mean call time (the window also
    holds the short gaps between calls), and per token."""
    power = tele.avg_power_w
    per_call = power * mean_call_s if power is not None else None
    return replace(
        tele,
        energy_per_call_j=per_call,
        joules_per_token=per_call / tokens_per_call if per_call is not None else None,
    )
