"""Check the sampler on a real GPU: against nvidia-smi, and counter energy against integrated power.

    python -m meter.telemetry.validate [--seconds 12] [--out FILE]

Runs a steady bf16 GEMM load on CUDA device 0 for ``--seconds`` inside one telemetry window
sampled at 100 Hz, while nvidia-smi is queried every 0.5 s; each nvidia-smi answer is paired with
the sampler's reading nearest in time. Needs a GPU, torch with CUDA and nvidia-smi.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meter.jsonable import to_jsonable
from meter.results.atomic import write_json_atomic

SMI_FIELDS = ("power.draw", "clocks.sm", "utilization.gpu", "temperature.gpu", "memory.used")
SAMPLER_FIELDS = {
    "power.draw": ("power_w", 1.0),
    "clocks.sm": ("sm_clock_hz", 1e6),
    "utilization.gpu": ("utilization_ratio", 0.01),
    "temperature.gpu": ("temperature_c", 1.0),
    "memory.used": ("memory_used_bytes", 2**20),
}


def query_smi(index: int) -> dict[str, float | None]:
    out = subprocess.run(
        ["nvidia-smi", f"--id={index}", f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    values = [v.strip() for v in out.stdout.strip().split(",")]
    return {f: (float(v) if v not in ("[N/A]", "N/A", "") else None) for f, v in zip(SMI_FIELDS, values)}


def compare(pairs: list[tuple[dict, Any]]) -> dict[str, Any]:
    """Per field: median absolute and relative difference between nvidia-smi and the sampler."""
    result = {}
    for smi_field, (attr, scale) in SAMPLER_FIELDS.items():
        diffs = []
        for smi, reading in pairs:
            mine = getattr(reading, attr)
            if smi[smi_field] is None or mine is None:
                continue
            mine = mine / scale
            diffs.append((abs(mine - smi[smi_field]), abs(mine - smi[smi_field]) / max(abs(smi[smi_field]), 1e-9)))
        result[smi_field] = {
            "n": len(diffs),
            "median_abs_diff": statistics.median(d[0] for d in diffs) if diffs else None,
            "median_rel_diff": statistics.median(d[1] for d in diffs) if diffs else None,
        }
    return result


@dataclass
class SteadyLoad:
    """A steady load inside one telemetry window, with nvidia-smi's answers paired to the sampler's readings."""

    window: Any  # TelemetryWindow
    calls: int
    readings: list = field(default_factory=list)  # the sampler's readings inside the window
    smi_pairs: list[tuple[dict, Any]] = field(default_factory=list)
    smi_reason: str | None = None  # why there are no pairs, when there are none


def steady_load(
    monitor,
    call: Callable[[], None],
    sync: Callable[[], None],
    seconds: float,
    *,
    smi_period_s: float = 0.5,
) -> SteadyLoad:
    """Run ``call`` back to back for ``seconds`` inside one window of a started ``monitor`` (its
    first source), querying nvidia-smi every ``smi_period_s`` and pairing each answer with the
    sampler's reading nearest in time."""
    source = monitor.sources[0]
    index = source.describe().index
    ring = monitor.sampler.rings[source.key]
    smi_reason = None
    if shutil.which("nvidia-smi") is None:
        smi_reason = "nvidia-smi is not installed: no comparison"
    elif index is None:
        smi_reason = "the telemetry source is not a GPU: no nvidia-smi comparison"
    pairs: list[tuple[dict, Any]] = []
    errors: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                smi = query_smi(index)
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                errors.append(f"nvidia-smi failed: {exc}")
                return
            t = (t0 + time.monotonic()) / 2
            near = ring.between(t - 0.05, t + 0.05)
            if near:
                pairs.append((smi, min(near, key=lambda r: abs(r.t_s - t))))
            stop.wait(smi_period_s)

    poller = threading.Thread(target=poll, daemon=True) if smi_reason is None else None
    calls = 0
    with monitor.window("steady-load") as w:
        if poller is not None:
            poller.start()
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                for _ in range(10):
                    call()
                calls += 10
                sync()
        finally:
            stop.set()
            if poller is not None:
                poller.join()
    window = w.summary()
    start = monitor.t0 + (window.start_s or 0.0)
    inside = ring.between(start, start + window.duration_s)
    if smi_reason is None and not pairs:
        smi_reason = errors[0] if errors else "no nvidia-smi answer fell near a sampler reading"
    return SteadyLoad(window, calls, inside, pairs, smi_reason)


def main(argv: list[str] | None = None) -> int:
    import torch

    from meter.config.hardware import list_hardware
    from meter.device.select import select_device
    from meter.telemetry.monitor import monitor_for_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() or shutil.which("nvidia-smi") is None:
        print("validate: needs a CUDA GPU and nvidia-smi", file=sys.stderr)
        return 2
    device = select_device("cuda", list_hardware())
    monitor, why = monitor_for_device(device, interval_s=0.01)
    if monitor is None:
        print(f"validate: {why}", file=sys.stderr)
        return 2
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    with monitor:
        for _ in range(20):
            torch.mm(a, b)
        torch.cuda.synchronize()
        load = steady_load(monitor, lambda: torch.mm(a, b), torch.cuda.synchronize, args.seconds)
    window = load.window
    report = {
        "device": device.info(),
        "gemm": "8192^3 bf16 torch.mm",
        "calls": load.calls,
        "achieved_tflops": load.calls * 2 * 8192**3 / window.duration_s / 1e12,
        "window": window,
        "telemetry": monitor.describe(),
        "energy_counter_vs_integrated": window.energy_disagreement,
        "nvidia_smi_pairs": len(load.smi_pairs),
        "nvidia_smi_comparison": compare(load.smi_pairs),
    }
    if args.out:
        write_json_atomic(args.out, to_jsonable(report))
    print(
        json.dumps(
            {k: report[k] for k in ("achieved_tflops", "energy_counter_vs_integrated", "nvidia_smi_comparison")},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
