"""The sampler against nvidia-smi: a steady load in one window, nvidia-smi's answers paired with the
sampler's readings nearest in time, and the median differences per field.

Used by ``meter acceptance`` and by scripts/validate_telemetry.py (the same check on its own).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
