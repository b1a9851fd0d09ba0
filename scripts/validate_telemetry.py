#!/usr/bin/env python3
"""Check the sampler on a real GPU: against nvidia-smi, and counter energy against integrated power.

    python scripts/validate_telemetry.py [--seconds 12] [--out FILE]

Runs a steady bf16 GEMM load on CUDA device 0 for ``--seconds`` inside one telemetry window
sampled at 100 Hz, while nvidia-smi is queried every 0.5 s; each nvidia-smi answer is paired with
the sampler's reading nearest in time. Needs a GPU, torch with CUDA and nvidia-smi.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: its meter

from meter.jsonable import to_jsonable  # noqa: E402
from meter.results.atomic import write_json_atomic  # noqa: E402
from meter.telemetry.validate import compare, steady_load  # noqa: E402


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
