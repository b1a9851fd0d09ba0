"""NVML through pynvml (the ``nvidia-ml-py`` distribution): the session the NVIDIA backend runs on.

Only the NVIDIA backend (``nvml_fleet``, ``nvml_gpu`` and its helpers) uses :class:`NvmlSession`;
everything else reaches GPUs through the seam in ``meter.device.gpu``. The session turns pynvml's
exceptions into a few meanings: the library is unavailable (with the exact reason), a field is
not supported (the value is None, never 0), or the GPU was lost.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any, TypeVar

from meter.device.clock_events import CLOCK_EVENT_REASONS, THROTTLING_REASONS, decode_clock_events
from meter.device.gpu import GpuIdentity, GpuLost, GpuUnavailable

T = TypeVar("T")
__all__ = [
    "CLOCK_EVENT_REASONS",
    "THROTTLING_REASONS",
    "GpuIdentity",
    "GpuLost",
    "NvmlSession",
    "NvmlUnavailable",
    "decode_clock_events",
]


class NvmlUnavailable(GpuUnavailable):
    """NVML cannot be used on this machine; the message says exactly why."""


# Why NVML failed to start, by NVML error code name, in words a user can act on.
_INIT_FAILURES = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "libnvidia-ml.so.1 was not found: no NVIDIA driver is installed on this machine "
    "(or its library is not on the loader path)",
    "NVML_ERROR_DRIVER_NOT_LOADED": "the NVIDIA kernel driver is not loaded (no GPU, or the driver failed to start)",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "driver/library version mismatch: libnvidia-ml does not match the loaded "
    "kernel driver (usually after a driver upgrade; reboot or reload the driver)",
    "NVML_ERROR_NO_PERMISSION": "no permission to open the NVIDIA device files (/dev/nvidia*)",
    "NVML_ERROR_FUNCTION_NOT_FOUND": "libnvidia-ml is too old for this nvidia-ml-py (a function is missing)",
    "NVML_ERROR_GPU_IS_LOST": "a GPU has fallen off the bus or is otherwise inaccessible",
}


def load_pynvml() -> types.ModuleType:
    """Import pynvml, or say which package provides it."""
    try:
        import pynvml
    except ImportError:
        raise NvmlUnavailable("the pynvml module is missing: pip install nvidia-ml-py") from None
    return pynvml


def error_name(nv: types.ModuleType, exc: BaseException) -> str:
    """The NVML_ERROR_* name of a pynvml exception ('NVML_ERROR_UNKNOWN' if none matches)."""
    code = getattr(exc, "value", None)
    for name in dir(nv):
        if name.startswith("NVML_ERROR_") and getattr(nv, name) == code:
            return name
    return "NVML_ERROR_UNKNOWN"


class NvmlSession:
    """``with NvmlSession() as nvml:`` initialises NVML and always shuts it down again."""

    def __init__(self) -> None:
        self.nv = load_pynvml()
        self._handles: dict[int, Any] = {}

    def __enter__(self) -> NvmlSession:
        try:
            self.nv.nvmlInit()
        except self.nv.NVMLError as exc:
            name = error_name(self.nv, exc)
            raise NvmlUnavailable(_INIT_FAILURES.get(name, f"NVML failed to initialise ({name}: {exc})")) from None
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.nv.nvmlShutdown()
        except self.nv.NVMLError:
            pass  # shutting down after a lost GPU can fail; nothing is left to release

    # --- calls ---

    def query(self, fn: Callable[..., T], *args: Any) -> tuple[T | None, str]:
        """Call an NVML query: (value, "ok"), (None, "unsupported") or (None, "error").

        Raises GpuLost when the GPU is gone. "error" is anything else (a transient failure):
        the field stays enabled and is tried again next time.
        """
        try:
            return fn(*args), "ok"
        except self.nv.NVMLError as exc:
            name = error_name(self.nv, exc)
            if name in ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_GPU_NOT_FOUND"):
                raise GpuLost(f"GPU lost during an NVML call ({fn.__name__}): {exc}") from None
            return None, "unsupported" if name == "NVML_ERROR_NOT_SUPPORTED" else "error"

    def optional(self, fn: Callable[..., T], *args: Any) -> T | None:
        """An NVML query's value, or None where it is unsupported or failed (never a made-up 0)."""
        return self.query(fn, *args)[0]

    def driver_version(self) -> str | None:
        return _text(self.optional(self.nv.nvmlSystemGetDriverVersion))

    def nvml_version(self) -> str | None:
        return _text(self.optional(self.nv.nvmlSystemGetNVMLVersion))

    def cuda_driver_version(self) -> str | None:
        """The CUDA version the driver supports, e.g. '12.8'."""
        fn = getattr(self.nv, "nvmlSystemGetCudaDriverVersion_v2", None) or self.nv.nvmlSystemGetCudaDriverVersion
        version = self.optional(fn)
        if version is None:
            return None
        return f"{version // 1000}.{(version % 1000) // 10}"

    def device_count(self) -> int:
        try:
            return int(self.nv.nvmlDeviceGetCount())
        except self.nv.NVMLError as exc:
            raise NvmlUnavailable(f"NVML could not count GPUs ({error_name(self.nv, exc)}: {exc})") from None

    def handle(self, index: int) -> Any:
        if index not in self._handles:
            try:
                self._handles[index] = self.nv.nvmlDeviceGetHandleByIndex(index)
            except self.nv.NVMLError as exc:
                raise GpuLost(f"GPU {index} did not answer ({error_name(self.nv, exc)}: {exc})") from None
        return self._handles[index]

    def identity(self, index: int) -> GpuIdentity:
        h = self.handle(index)
        nv = self.nv
        memory = self.optional(nv.nvmlDeviceGetMemoryInfo, h)
        pci = self.optional(nv.nvmlDeviceGetPciInfo, h)
        mig = self.optional(nv.nvmlDeviceGetMigMode, h)
        return GpuIdentity(
            index=index,
            name=_text(self.optional(nv.nvmlDeviceGetName, h)) or f"GPU {index}",
            uuid=_text(self.optional(nv.nvmlDeviceGetUUID, h)) or "",
            pci_bus_id=_text(pci.busId) if pci is not None else None,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            mig_enabled=(bool(mig[0]) if isinstance(mig, (list, tuple)) else None) if mig is not None else None,
        )

    def identities(self) -> list[GpuIdentity]:
        return [self.identity(i) for i in range(self.device_count())]


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
