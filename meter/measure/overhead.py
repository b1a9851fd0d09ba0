"""What a window of the Python API costs: microseconds per begin_window/end_window pair.

    python -m meter.measure.overhead [--windows 2000] [--ring-fill 36000] [--json]

Times pairs of empty windows, back to back, in three settings: no GPU (``gpus=[]``: timing only),
and every visible GPU through NVML with the sampler's ring nearly empty and then holding
``--ring-fill`` readings per GPU (an hour at 10 Hz), since a window's summary reads the samples
it spans. Reports the median and the 99th percentile over the pairs. It measures this machine:
the fake driver of the test suite answers an NVML call in about a microsecond, a real one slower.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from typing import Any


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
        m = meter.Meter(price_usd_per_gpu_hour=1.0, sync=None, max_windows=2 * windows, segment_s=0)
    try:
        if m.telemetry_reason is not None:
            out["nvml"] = m.telemetry_reason
            return out
        out["gpus"] = len(m._meter.gpus)  # noqa: SLF001
        time_pairs(m, 50)  # warm-up
        out["nvml_ring_empty"] = _summary(time_pairs(m, windows))
        _fill(m, ring_fill)
        out["ring_fill"] = ring_fill
        out["nvml_ring_full"] = _summary(time_pairs(m, windows // 4 or 1))
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
            print(f"{key:16s} {s['median_us']:9.1f} µs median  {s['p99_us']:9.1f} µs p99  ({s['pairs']} pairs)")
    if "nvml" in result:
        print(f"no NVML here: {result['nvml']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
