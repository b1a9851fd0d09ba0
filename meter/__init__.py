"""gpu-cost-meter: measure what training and serving a model really costs on GPUs.

Layers, bottom to top (nothing lower imports anything higher):

- ``meter.config``, ``meter.analytic``: YAML configs and the pure arithmetic of a model.
- ``meter.results``: the run-file contract (typed records, loader, writer); it probes nothing.
- ``meter.device``: the machine (the GPU seam and its vendor backends, RAPL, host probing).
- ``meter.telemetry``, ``meter.engines``: sampling; external tools' results.
- ``meter.bench``, ``meter.cost``: benchmarks and the cost model.
- ``meter.exporter``, ``meter.report``, ``meter.distributed``.
- ``meter.cli``: the ``meter`` command.

``meter.Meter`` is the Python API for metering a loop's windows (docs/measure.md); it is loaded on
first use, so ``import meter`` stays light (it imports neither torch nor NVML).
"""

from __future__ import annotations

import logging
from typing import Any

__version__ = "0.1.0"
__all__ = ["Meter", "MeterWarning", "__version__"]

# A library logs and the program decides where it goes: without this, Python's last-resort handler
# would print meter's warnings a second time beside what the CLI already says (meter serve sets up its own).
logging.getLogger("meter").addHandler(logging.NullHandler())

_LAZY = {"Meter": "meter.measure.api", "MeterWarning": "meter.measure.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'meter' has no attribute {name!r}")
