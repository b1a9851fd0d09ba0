"""The device checks of ``meter acceptance``: environment and ops, ceilings against the datasheet,
power and clocks under a steady load, the energy counter against integrated power, the sampler
against nvidia-smi, and the sampler's overhead at 100 Hz. Each returns its :class:`Check` rows."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from meter.acceptance.targets import check, info
from meter.device.select import ComputeDevice
from meter.results.acceptance import Check
from meter.results.document import Ceilings, OpsInfo

# The steady load: a large GEMM on a GPU; on a CPU dry run a small one (the plumbing, not the figure).
GPU_LOAD_N, CPU_LOAD_N = 8192, 384


def environment(device: ComputeDevice, ops: OpsInfo, software) -> tuple[list[Check], dict[str, str | None]]:
    cpu = device.kind == "cpu"
    env = {
        "device": device.label,
        "hardware_config": device.hardware.name if device.hardware else None,
        "compute_capability": device.properties.get("compute_capability"),
        "driver": software.driver,
        "cuda_driver": software.cuda_driver,
        "torch": software.torch,
        "torch_cuda": software.torch_cuda,
        "grouped_mm": ops.grouped_mm,
        "scaled_mm": ops.scaled_mm,
        "scaled_grouped_mm": ops.scaled_grouped_mm,
    }
    rows = [
        info("environment", "device", detail=f"{device.label}; driver {env['driver']}, CUDA {env['cuda_driver']}"),
        info("environment", "torch", detail=f"{software.torch} (CUDA build {software.torch_cuda})"),
        info(
            "environment",
            "hardware config",
            detail=env["hardware_config"] or "NO MATCH: no datasheet to judge this GPU by (add a hardware config)",
        ),
    ]
    for p in ops.probes:
        verdict = "n/a" if cpu else ("pass" if p.ok else "fail")
        rows.append(
            Check(
                section="environment",
                name=f"op {p.op}",
                verdict=verdict,  # type: ignore[arg-type]
                value=p.rel_error,
                unit="rel. error",
                target="runs, within 2e-2 of float64",
                detail="ok" if p.ok else p.reason,
            )
        )
    return rows, env


def ceilings(device: ComputeDevice, c: Ceilings) -> list[Check]:
    cpu, hw = device.kind == "cpu", device.hardware
    bw = hw.memory_bandwidth_bytes_per_s if hw else None
    rows = [
        check(
            "ceilings",
            f"copy {c.copy_bytes_per_s / 1e9:.0f} GB/s" + (f" of {bw / 1e9:.0f}" if bw else ""),
            "copy",
            c.copy_bytes_per_s / bw if bw else None,
            "ratio",
            cpu=cpu,
        )
    ]
    for dtype, key in (("bf16", "bf16"), ("fp8", "fp8")):
        rate = c.gemm(dtype)
        peak = hw.peak_flops(dtype) if hw else None
        name = f"{dtype} GEMM " + (f"{rate / 1e12:.0f} TFLOP/s" if rate else "not measured")
        name += f" of {peak / 1e12:.0f}" if peak else ""
        rows.append(check("ceilings", name, key, rate / peak if rate and peak else None, "ratio", cpu=cpu))
    return rows


@dataclass(frozen=True)
class Load:
    """A call that keeps the device busy, and how to wait for it."""

    call: Callable[[], None]
    sync: Callable[[], None]
    flops_per_call: float


def gemm_load(device: ComputeDevice) -> Load:
    import torch

    n = GPU_LOAD_N if device.kind == "cuda" else CPU_LOAD_N
    dtype = torch.bfloat16 if device.kind == "cuda" else torch.float32
    a = torch.randn(n, n, device=device.torch_device, dtype=dtype)
    b = torch.randn(n, n, device=device.torch_device, dtype=dtype)

    def sync() -> None:
        if device.kind == "cuda":
            torch.cuda.synchronize(device.torch_device)

    return Load(lambda: torch.mm(a, b), sync, 2.0 * n**3)


def steady_load_checks(device: ComputeDevice, monitor, seconds: float) -> list[Check]:
    """Power limit, clocks and slowdowns under load; counter energy against integrated power; nvidia-smi."""
    from meter.telemetry.validate import compare, steady_load

    load = gemm_load(device)
    for _ in range(3):
        load.call()
    load.sync()
    result = steady_load(monitor, load.call, load.sync, seconds)
    w, cpu, hw = result.window, device.kind == "cpu", device.hardware
    readings = result.readings
    limits = [r.power_limit_w for r in readings if r.power_limit_w is not None]
    clocks = [r.sm_clock_hz for r in readings if r.sm_clock_hz is not None]
    tdp = hw.tdp_w if hw else None
    limit = statistics.median(limits) if limits else None
    slowdowns = [r for r in w.throttle_reasons if r != "sw_power_cap"]
    source = "the fake NVML driver's GPU (CPU dry run)" if cpu else "the GPU under load"
    rows = [
        info(
            "power and clocks",
            "load",
            (load.flops_per_call * result.calls / w.duration_s / 1e12) if w.duration_s else None,
            "TFLOP/s",
            f"{result.calls} GEMMs in {w.duration_s:.1f} s; {source}",
        ),
        check(
            "power and clocks",
            f"power limit {limit:.0f} W" + (f" of {tdp:.0f} W TDP" if tdp else "") if limit else "power limit",
            "power_limit",
            limit / tdp if limit and tdp else None,
            "ratio",
            cpu=cpu,
        ),
        info(
            "power and clocks",
            "power under load",
            w.avg_power_w,
            "W",
            f"peak {w.peak_power_w:.0f} W" if w.peak_power_w is not None else None,
        ),
        info(
            "power and clocks",
            "SM clock under load (median)",
            statistics.median(clocks) / 1e6 if clocks else None,
            "MHz",
            f"min {min(clocks) / 1e6:.0f} MHz" if clocks else "no clock readings",
        ),
        check(
            "power and clocks",
            "thermal or hardware slowdown",
            "slowdown",
            float(len(slowdowns)) if w.n_samples else None,
            "reasons",
            cpu=cpu,
            detail=(", ".join(slowdowns) or "none")
            + ("; power cap reached (sw_power_cap)" if "sw_power_cap" in w.throttle_reasons else ""),
        ),
        check(
            "telemetry",
            f"energy counter vs integrated power over {w.duration_s:.1f} s",
            "energy",
            w.energy_disagreement,
            "rel. diff",
            cpu=cpu,
            detail=None if w.energy_disagreement is not None else "no energy counter or no power readings",
        ),
    ]
    comparison = compare(result.smi_pairs) if result.smi_pairs else {}
    for field, key, label in (("power.draw", "smi_power", "power"), ("clocks.sm", "smi_clock", "SM clock")):
        c = comparison.get(field) or {}
        n = c.get("n", 0)
        rows.append(
            check(
                "telemetry",
                f"sampler vs nvidia-smi, {label}",
                key,
                c.get("median_rel_diff"),
                "rel. diff",
                cpu=cpu,
                detail=f"{n} paired readings" if n else (result.smi_reason or "no paired readings"),
            )
        )
    return rows


def overhead(device: ComputeDevice, make_monitor, *, rounds: int, trial_s: float) -> list[Check]:
    from meter.telemetry.overhead import measure_overhead

    load = gemm_load(device)
    r = measure_overhead(
        lambda i: load.call(), make_monitor, rates_hz=(100.0,), rounds=rounds, trial_s=trial_s, sync=load.sync
    )
    row = next(x for x in r["rates"] if x["rate_hz"] == 100.0)
    return [
        check(
            "telemetry",
            "sampler overhead at 100 Hz",
            "overhead",
            max(row["overhead"], 0.0),
            "of throughput",
            cpu=device.kind == "cpu",
            detail=f"{rounds} interleaved rounds of {trial_s:g} s; {row['samples_per_s']:.0f} samples/s "
            f"(throughput spread {row['calls_per_s_spread'] * 100:.1f}%)",
        )
    ]
