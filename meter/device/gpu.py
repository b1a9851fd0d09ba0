"""The GPU seam: what every part of meter may ask of a GPU, whoever made it.

``open_gpus()`` is the one way in. It tries each vendor backend in order (NVML for NVIDIA today;
an AMD backend over amdsmi would be one more module and one more line in ``BACKENDS``) and returns
a :class:`GpuFleet` of :class:`GpuDevice` objects. Nothing outside a backend module calls a
vendor library: the monitor, the telemetry sources, the exporter, ``meter watch`` and
``meter doctor`` all go through this protocol.

Units are base units on this side of the seam (W, J, Hz, bytes, ratios 0-1); a value a GPU cannot
give is None, never 0.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from meter.device.reading import Reading
from meter.errors import MeterError


class GpuUnavailable(MeterError):
    """No GPU library can be used on this machine; the message says exactly why."""


class GpuLost(MeterError):
    """A GPU stopped answering (fell off the bus, driver reset) during a run."""


@dataclass(frozen=True)
class GpuIdentity:
    """What identifies one physical GPU: index, name, UUID and bus id."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str | None
    memory_total_bytes: int | None
    mig_enabled: bool | None


@dataclass(frozen=True)
class GpuHealth:
    """Error counters of one GPU; None where the GPU has no such counter.

    ``xid_errors`` counts the XID events seen since the device was opened, by XID code (None where
    the GPU cannot report them).
    ECC counts are the driver's: ``volatile`` since the driver loaded, ``aggregate`` over the
    board's life. Row remapping (Ampere and newer HBM GPUs) counts rows remapped for correctable
    and uncorrectable errors; ``row_remap_pending`` means a reset is needed to apply one.
    """

    xid_errors: dict[int, int] | None = None
    last_xid: int | None = None
    ecc_corrected_volatile: int | None = None
    ecc_uncorrected_volatile: int | None = None
    ecc_corrected_aggregate: int | None = None
    ecc_uncorrected_aggregate: int | None = None
    remapped_rows_correctable: int | None = None
    remapped_rows_uncorrectable: int | None = None
    row_remap_pending: bool | None = None
    row_remap_failure: bool | None = None


@dataclass(frozen=True)
class GpuProcess:
    """A compute process holding memory on a GPU (pid as the driver sees it: the host's pid namespace)."""

    pid: int
    used_memory_bytes: int | None


@dataclass(frozen=True)
class SystemInfo:
    """The driver stack behind a fleet."""

    vendor: str
    library: str
    driver_version: str | None
    library_version: str | None
    runtime_version: str | None  # the CUDA (or ROCm) version the driver supports


class GpuDevice(Protocol):
    """One GPU, read through its vendor's library."""

    index: int
    identity: GpuIdentity
    architecture: str
    power_semantics: str

    def read(self) -> Reading:
        """One telemetry sample (raises GpuLost once the GPU is gone)."""
        ...

    def read_energy_j(self) -> float | None:
        """The energy counter alone, for window edges; None without a counter."""
        ...

    def health(self) -> GpuHealth: ...

    def processes(self) -> list[GpuProcess]: ...

    def describe(self) -> dict[str, Any]: ...


class GpuFleet(Protocol):
    """The GPUs a backend opened, and the library session behind them (closed by ``close``)."""

    gpus: Sequence[GpuDevice]
    unopened: Sequence[tuple[int, str]]  # (index, why) for GPUs that did not answer when opened

    def system(self) -> SystemInfo: ...

    def close(self) -> None: ...

    def __enter__(self) -> GpuFleet: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class Selection:
    """Which GPUs to open.

    ``all_gpus``: every GPU the driver has. Otherwise those this process's CUDA sees
    (``visible`` is CUDA_VISIBLE_DEVICES, read by the backend as CUDA reads it), narrowed to the one
    with ``uuid`` when given and found, else to the ``cuda_index``-th visible one.
    """

    all_gpus: bool = False
    visible: str | None = field(default_factory=lambda: os.environ.get("CUDA_VISIBLE_DEVICES"))
    uuid: str | None = None
    cuda_index: int | None = None


# (library, module providing ``open_fleet(selection) -> GpuFleet`` and ``system_info() -> SystemInfo``),
# tried in order.
BACKENDS: tuple[tuple[str, str], ...] = (("nvml", "meter.device.nvml_fleet"),)


def open_gpus(selection: Selection | None = None, *, backends: Sequence[tuple[str, str]] = BACKENDS) -> GpuFleet:
    """Open the GPUs through the first backend that works; GpuUnavailable says why none did."""
    selection = selection or Selection()
    reasons = []
    for library, module in backends:
        try:
            return importlib.import_module(module).open_fleet(selection)
        except GpuUnavailable as exc:
            reasons.append(str(exc) if len(backends) == 1 else f"{library}: {exc}")
    raise GpuUnavailable("; ".join(reasons) or "no GPU backend is configured")


def system_info(*, backends: Sequence[tuple[str, str]] = BACKENDS) -> SystemInfo:
    """The driver stack of the first backend that starts, without opening any GPU."""
    reasons = []
    for library, module in backends:
        try:
            return importlib.import_module(module).system_info()
        except GpuUnavailable as exc:
            reasons.append(str(exc) if len(backends) == 1 else f"{library}: {exc}")
    raise GpuUnavailable("; ".join(reasons) or "no GPU backend is configured")
