"""What sampling costs a benchmark: throughput with the sampler off, at 10 Hz and at 100 Hz.

Trials at each rate are interleaved over several rounds (so drift in clocks or load affects every
rate alike) and the median throughput per rate is compared with the median with sampling off.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from meter.telemetry.monitor import Monitor


def throughput(call: Callable[[int], None], seconds: float, sync: Callable[[], None] | None = None) -> float:
    """Calls per second of ``call`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        call(n)
        n += 1
    if sync:
        sync()
    return n / (time.perf_counter() - start)


def measure_overhead(
    call: Callable[[int], None],
    make_monitor: Callable[[float], Monitor],
    *,
    rates_hz: tuple[float, ...] = (10.0, 100.0),
    rounds: int = 5,
    trial_s: float = 2.0,
    sync: Callable[[], None] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Median throughput with sampling off and at each rate, and the relative cost of each rate."""
    rng = random.Random(seed)
    per_rate: dict[float, list[float]] = {0.0: [], **{r: [] for r in rates_hz}}
    samples_taken: dict[float, int] = {r: 0 for r in rates_hz}
    call(0)  # warm-up outside the trials
    for _ in range(rounds):
        order = list(per_rate)
        rng.shuffle(order)
        for rate in order:
            if rate == 0.0:
                per_rate[rate].append(throughput(call, trial_s, sync))
                continue
            with make_monitor(1.0 / rate) as monitor:
                per_rate[rate].append(throughput(call, trial_s, sync))
                samples_taken[rate] += monitor.sampler.ticks
    base = statistics.median(per_rate[0.0])
    rows = []
    for rate, values in per_rate.items():
        median = statistics.median(values)
        rows.append(
            {
                "rate_hz": rate,
                "calls_per_s_median": median,
                "calls_per_s_spread": (max(values) - min(values)) / median if median else None,
                "overhead": 1.0 - median / base if rate else 0.0,
                "samples_per_s": samples_taken.get(rate, 0) / (rounds * trial_s) if rate else 0.0,
            }
        )
    return {"rounds": rounds, "trial_s": trial_s, "rates": rows}
