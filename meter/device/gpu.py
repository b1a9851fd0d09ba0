"""The GPU seam: what every part of meter may ask of a GPU, whoever made it.

``open_gpus()`` is the one way in. It tries each vendor backend in order (``meter.device.nvidia``
today; an AMD backend over amdsmi would be one more package beside it and one more line in
``BACKENDS``) and returns a :class:`GpuFleet` of :class:`GpuDevice` objects. Nothing outside a
backend package calls a vendor library or names its variables: the monitor, the telemetry sources,
the exporter, ``meter watch`` and ``meter doctor`` all go through this protocol. Each backend owns
the environment variable its runtime reads to pick GPUs and the kubelet resources its device
plugin hands out (:func:`visible_devices_from_env`, :func:`kubelet_resource_prefixes`).

Units are base units on this side of the seam (W, J, Hz, bytes, ratios 0-1); a value a GPU cannot
give is None, never 0.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


@dataclass(frozen=True)
class GpuDescription:
    """What one GPU is and which telemetry fields it answers (``supported``: field -> answers)."""

    index: int
    name: str
    uuid: str
    pci_bus_id: str | None
    architecture: str
    mig_enabled: bool | None
    power_semantics: str  # what its power reading is: an instant value or an average, and over what
    supported: dict[str, bool] = field(default_factory=dict)


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

    def describe(self) -> GpuDescription: ...


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

    ``all_gpus``: every GPU the driver has. Otherwise those this process's GPU runtime sees
    (``visible`` is the backend's visible-devices variable, read by the backend as its runtime
    reads it), narrowed to the one with ``uuid`` when given and found, else to the
    ``cuda_index``-th visible one.
    """

    all_gpus: bool = False
    visible: str | None = field(default_factory=lambda: visible_devices_from_env())
    uuid: str | None = None
    cuda_index: int | None = None


# (vendor, backend package), tried in order. A backend package provides ``open_fleet(selection) ->
# GpuFleet``, ``system_info() -> SystemInfo``, ``VISIBLE_DEVICES_VARIABLE`` and
# ``KUBELET_RESOURCE_PREFIXES``; importing it must not load the vendor library.
BACKENDS: tuple[tuple[str, str], ...] = (("nvidia", "meter.device.nvidia"),)


def visible_devices_from_env(*, backends: Sequence[tuple[str, str]] = BACKENDS) -> str | None:
    """The GPUs this process's runtime may use, as the first backend whose variable is set spells them."""
    for _vendor, module in backends:
        value = os.environ.get(importlib.import_module(module).VISIBLE_DEVICES_VARIABLE)
        if value is not None:
            return value
    return None


def visible_devices_variables(*, backends: Sequence[tuple[str, str]] = BACKENDS) -> list[str]:
    """The variables the backends' runtimes read to choose GPUs, for messages that name them."""
    return [importlib.import_module(module).VISIBLE_DEVICES_VARIABLE for _vendor, module in backends]


def visible_devices_setting(*, backends: Sequence[tuple[str, str]] = BACKENDS) -> str:
    """How the visible-devices variables are set now, for messages: ``CUDA_VISIBLE_DEVICES='1,0'``."""
    return ", ".join(f"{name}={os.environ.get(name)!r}" for name in visible_devices_variables(backends=backends))


def kubelet_resource_prefixes(*, backends: Sequence[tuple[str, str]] = BACKENDS) -> tuple[str, ...]:
    """Prefixes of the kubelet resource names that are GPUs, over every backend's device plugin."""
    return tuple(p for _vendor, module in backends for p in importlib.import_module(module).KUBELET_RESOURCE_PREFIXES)


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
