"""The run file's metadata parts that are not probed: the timestamp and the hardware config's summary.

Probing the machine (git, software, host, command line) is the device layer's job: meter/device/host.py.
"""

from __future__ import annotations

import datetime as dt

from meter.config.hardware import HardwareSpec
from meter.results.document import HardwareSummary


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def hardware_summary(spec: HardwareSpec | None) -> HardwareSummary | None:
    """The hardware config a run's figures are measured against: peaks, bandwidths, and their source."""
    if spec is None:
        return None
    peak_source = spec.source_for("peak_tflops.bf16")
    return HardwareSummary(
        name=spec.name,
        display_name=spec.display_name,
        peak_tflops=dict(spec.peak_tflops),
        memory_bandwidth_gb_s=spec.memory_bandwidth_gb_s,
        nvlink_bandwidth_gb_s=spec.nvlink_bandwidth_gb_s,
        network_bandwidth_gb_s=spec.network_bandwidth_gb_s,
        source=peak_source.source if peak_source else None,
    )
