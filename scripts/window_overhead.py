#!/usr/bin/env python3
"""What a window of the Python API costs: microseconds per begin_window/end_window pair.

    python scripts/window_overhead.py [--windows 2000] [--ring-fill 36000] [--json]

Times pairs of empty windows, back to back, in three settings: no GPU (``gpus=[]``: timing only),
and every visible GPU through NVML with the sampler's ring nearly empty and then holding
``--ring-fill`` readings per GPU (an hour at 10 Hz). Reports the median and the 99th percentile
over the pairs, and, apart, what the deferred part costs: ending a window reads the energy
counters only; summarising the samples it spans waits until its figures are read (or the totals
are, at the latest a minute later), and ``summary_us`` is that work per window, timed by reading
every window once after the pairs. A loop that reads every window's figures pays both. It
measures this machine: the fake driver of the test suite answers an NVML call in about a
microsecond, a real one slower. scripts/window_cost.py times meter against Zeus side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: its meter


def _summaries(m, n: int) -> dict[str, float]:
    """Microseconds per window to work out the last ``n`` windows' figures (deferred until read)."""
    pending = m._ledger.kept[-n:]  # noqa: SLF001 (a benchmark of the internals' cost)
    t0 = time.perf_counter()
    for w in pending:
        w.energy_j  # noqa: B018 (the first read works the figures out)
    return {"windows": len(pending), "summary_us": (time.perf_counter() - t0) / max(1, len(pending)) * 1e6}


def time_pairs(m, n: int) -> list[float]:
    """Seconds per begin/end pair, one figure per pair."""
    out = []
    for i in range(n):
        name = f"w{i}"
        t0 = time.perf_counter()
        m.begin_window(name)
        m.end_window(name, tokens=1)
        out.append(time.perf_counter() - t0)
    return out


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "pairs": len(samples),
        "median_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e6,
    }


def _fill(m, readings: int) -> None:
    """Put ``readings`` more samples, all older than the windows to come, into every GPU's ring (as an
    hour of sampling at 10 Hz leaves it), in time order after the ones already there."""
    monitor = m._meter.monitor  # noqa: SLF001 (a benchmark of the internals' cost)
    for ring in monitor.sampler.rings.values():
        latest = ring.latest()
        if latest is None:
            continue
        step = (time.monotonic() - latest.t_s) / (readings + 1)
        for k in range(1, readings + 1):
            ring.append(type(latest)(**{**latest.as_dict(), "t_s": latest.t_s + k * step}))


def measure(windows: int, ring_fill: int) -> dict[str, Any]:
    import meter

    out: dict[str, Any] = {"windows": windows}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with meter.Meter(gpus=[], price_usd_per_gpu_hour=1.0, sync=None, max_windows=windows) as m:
            out["no_gpu"] = _summary(time_pairs(m, windows))
            out["no_gpu"].update(_summaries(m, windows))
        m = meter.Meter(price_usd_per_gpu_hour=1.0, sync=None, max_windows=3 * windows, segment_s=0)
    try:
        if m.telemetry_reason is not None:
            out["nvml"] = m.telemetry_reason
            return out
        out["gpus"] = len(m._meter.gpus)  # noqa: SLF001
        time_pairs(m, 50)  # warm-up
        out["nvml_ring_empty"] = _summary(time_pairs(m, windows))
        out["nvml_ring_empty"].update(_summaries(m, windows))
        m.windows  # noqa: B018 (the warm-up's too, before the fill pushes their samples out of the rings)
        _fill(m, ring_fill)
        out["ring_fill"] = ring_fill
        out["nvml_ring_full"] = _summary(time_pairs(m, windows // 4 or 1))
        out["nvml_ring_full"].update(_summaries(m, windows // 4 or 1))
    finally:
        m.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--ring-fill", type=int, default=36000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure(max(1, args.windows), max(0, args.ring_fill))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key in ("no_gpu", "nvml_ring_empty", "nvml_ring_full"):
        if key in result:
            s = result[key]
            print(
                f"{key:16s} {s['median_us']:9.1f} µs median  {s['p99_us']:9.1f} µs p99  ({s['pairs']} pairs);"
                f"  {s['summary_us']:7.1f} µs per window when its figures are read"
            )
    if "nvml" in result:
        print(f"no NVML here: {result['nvml']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
