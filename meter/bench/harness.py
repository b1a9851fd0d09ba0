"""Run a list of cases on one device and record each result as it finishes.

Out-of-memory and unsupported cases are recorded as such and the sweep goes on; Ctrl-C stops
the sweep and keeps what finished (the caller marks the run interrupted).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import torch

from kernels.args import ModelArgs
from meter.bench.cases import BenchCase
from meter.bench.ceilings import Ceilings
from meter.bench.metrics import bound, case_metrics
from meter.bench.stats import summarize
from meter.bench.timer import CPU_DEFAULTS, GPU_DEFAULTS, TimingSettings, time_cpu, time_cuda
from meter.bench.workloads import InsufficientMemory, UnsupportedCase, build_workload, capture_cuda_graph
from meter.device.select import ComputeDevice, free_memory_bytes


class TelemetryWindow(Protocol):
    def summary(self) -> dict[str, Any]: ...


class WindowMonitor(Protocol):
    """What the harness needs from telemetry: a window around each case."""

    min_window_s: float

    def window(self, name: str) -> contextlib.AbstractContextManager[TelemetryWindow]: ...


def run_cases(
    cases: list[BenchCase],
    models: Mapping[str, ModelArgs],
    device: ComputeDevice,
    *,
    record: Callable[[dict[str, Any]], None],
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
) -> dict[str, Any]:
    result: dict[str, Any] = {"id": case.id, "case": case.as_dict(), "status": "ok", "reason": None}
    workload = None
    try:
        workload = build_workload(case, a, device, free_bytes=free_memory_bytes(device))
        result["notes"] = list(workload.notes)
        if device.kind == "cuda" and cuda_graphs and case.phase == "decode":
            why_not = capture_cuda_graph(workload)
            if why_not:
                result["notes"].append(why_not)
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
        result["telemetry"] = (
            _with_energy_per_token(w.summary(), stats.mean_s, workload.tokens_per_call) if monitor else None
        )
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
        result.update(
            timing=stats.as_dict(),
            metrics=metrics,
            bound=bound(metrics, ceilings, case.dtype),
            details={**workload.details, "input_sets": workload.n_inputs, "cuda_graph": bool(workload.replay)},
        )
    except UnsupportedCase as exc:
        result.update(status="unsupported", reason=str(exc))
    except InsufficientMemory as exc:
        result.update(status="oom", reason=f"skipped before allocating: {exc}")
    except torch.OutOfMemoryError as exc:
        result.update(status="oom", reason=str(exc).splitlines()[0][:200])
    except MemoryError:
        result.update(status="oom", reason="host memory exhausted")
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # one broken case must not end a sweep; the reason is recorded
        result.update(
            status="error", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        )
    finally:
        del workload
        gc.collect()
        if device.kind == "cuda":
            torch.cuda.empty_cache()
    return result


def _with_energy_per_token(tele: dict[str, Any], mean_call_s: float, tokens_per_call: int) -> dict[str, Any]:
    """Energy of one call: the window's average power times the mean call time (the window also
    holds the short gaps between calls), and per token."""
    power = tele.get("avg_power_w")
    per_call = power * mean_call_s if power is not None else None
    return {
        **tele,
        "energy_per_call_j": per_call,
        "joules_per_token": per_call / tokens_per_call if per_call is not None else None,
    }
