"""Timing one call, many times: CUDA events on a GPU, the wall clock on a CPU.

On a GPU each call is bracketed by its own pair of events after an L2 flush (a write of twice the
L2 size, outside the events), following a warm-up; on a CPU each call is timed with
``time.perf_counter``. Either way the result is a list of per-call seconds for `stats.summarize`.

Energy is measured apart (:func:`back_to_back`): calls issued one after another for the length of
the telemetry window, with no flush and no warm-up between them, so that the window holds the work
and nothing else.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from meter.results.records import TimingSettings

CPU_DEFAULTS = TimingSettings(warmup_s=0.2, min_warmup_calls=2, min_time_s=0.5, min_repeats=5, max_repeats=100)
GPU_DEFAULTS = TimingSettings(warmup_s=0.5, min_warmup_calls=10, min_time_s=1.0, min_repeats=20, max_repeats=2000)


def _repeats(estimate_s: float, s: TimingSettings) -> int:
    wanted = int(s.min_time_s / estimate_s) + 1 if estimate_s > 0 else s.max_repeats
    return max(s.min_repeats, min(s.max_repeats, wanted))


def time_cpu(call: Callable[[int], None], s: TimingSettings = CPU_DEFAULTS) -> list[float]:
    """Per-call wall-clock seconds of ``call(i)`` after warm-up."""
    i = 0
    start = time.perf_counter()
    while i < s.min_warmup_calls or time.perf_counter() - start < s.warmup_s:
        call(i)
        i += 1
    estimate = (time.perf_counter() - start) / i
    samples = []
    planned = _repeats(estimate, s)
    begin = time.perf_counter()
    # The warm-up only estimates; keep going until the time is really measured (a telemetry
    # window relies on it), within max_repeats.
    while len(samples) < s.max_repeats and (len(samples) < planned or time.perf_counter() - begin < s.min_time_s):
        t0 = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - t0)
        i += 1
    return samples


def time_cuda(
    call: Callable[[int], None], s: TimingSettings = GPU_DEFAULTS, *, l2_bytes: int | None = None, device: str = "cuda"
) -> list[float]:
    """Per-call seconds of ``call(i)`` measured with CUDA events, L2 flushed before each call."""
    import torch

    flush = torch.empty(2 * (l2_bytes or 64 * 2**20), dtype=torch.int8, device=device) if s.flush_l2 else None
    torch.cuda.synchronize(device)
    i = 0
    start = time.perf_counter()
    while i < s.min_warmup_calls or time.perf_counter() - start < s.warmup_s:
        call(i)
        torch.cuda.synchronize(device)
        i += 1
    estimate = (time.perf_counter() - start) / i
    chunk = _repeats(estimate, s)
    pairs: list[tuple] = []
    wall = time.perf_counter()
    # Calls are issued in chunks; after each, the wall clock says whether enough time has passed
    # (the warm-up estimate can be off), so the measured span is never shorter than min_time_s.
    while len(pairs) < s.max_repeats and (len(pairs) < chunk or time.perf_counter() - wall < s.min_time_s):
        for _ in range(min(chunk, s.max_repeats - len(pairs))):
            if flush is not None:
                flush.random_(-128, 127)  # evict L2 with fresh data, outside the timed region
            b, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            b.record()
            call(i)
            e.record()
            pairs.append((b, e))
            i += 1
        torch.cuda.synchronize(device)
    return [b.elapsed_time(e) / 1e3 for b, e in pairs]


def energy_calls(median_s: float, window_s: float, limit: int = 1_000_000) -> int:
    """How many back-to-back calls fill a telemetry window of ``window_s`` at ``median_s`` each."""
    if median_s <= 0:
        return 1
    return max(1, min(limit, math.ceil(window_s / median_s)))


def back_to_back(call: Callable[[int], None], min_s: float, max_calls: int = 1_000_000) -> int:
    """Calls ``call(0), call(1), ...`` with nothing between them until ``min_s`` of wall time has
    passed (at least one call); returns how many ran. On a GPU the host runs ahead of the device
    until the launch queue is full; the window's closing edge syncs, so the window holds every
    call counted, and lasts at least ``min_s``."""
    begin, n = time.perf_counter(), 0
    while n < max_calls and (n == 0 or time.perf_counter() - begin < min_s):
        call(n)
        n += 1
    return n
