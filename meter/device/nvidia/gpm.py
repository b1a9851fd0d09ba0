"""GPU Performance Monitoring (NVML GPM, Hopper and newer): SM, tensor-core and DRAM activity.

GPM metrics are rates between two samples the driver takes: each read takes a new sample and
reports the metrics between it and the previous one, at most every ``MIN_PERIOD_S`` (shorter
intervals are noise). Where the device does not support GPM every value is None, never 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from meter.device.nvidia.nvml import NvmlSession, error_name

MIN_PERIOD_S = 0.1
# (attribute of GpmValues, pynvml constant name): percent in NVML, a ratio here
METRICS = (
    ("sm_activity_ratio", "NVML_GPM_METRIC_SM_UTIL"),
    ("tensor_activity_ratio", "NVML_GPM_METRIC_ANY_TENSOR_UTIL"),
    ("dram_bandwidth_ratio", "NVML_GPM_METRIC_DRAM_BW_UTIL"),
)


@dataclass(frozen=True)
class GpmValues:
    sm_activity_ratio: float | None = None
    tensor_activity_ratio: float | None = None
    dram_bandwidth_ratio: float | None = None


NONE = GpmValues()


class NvmlGpm:
    """GPM for one device handle; ``supported`` is decided once, when it is opened."""

    def __init__(self, session: NvmlSession, handle: Any):
        self.session, self.handle = session, handle
        nv = session.nv
        support = session.optional(getattr(nv, "nvmlGpmQueryDeviceSupport", _missing), handle)
        self.supported = bool(support is not None and support.isSupportedDevice)
        self._previous: Any = None
        self._previous_t = 0.0
        self.values = NONE

    def read(self) -> GpmValues:
        if not self.supported:
            return NONE
        now = time.monotonic()
        if self._previous is not None and now - self._previous_t < MIN_PERIOD_S:
            return self.values
        nv = self.session.nv
        sample = nv.nvmlGpmSampleAlloc()
        if self.session.query(nv.nvmlGpmSampleGet, self.handle, sample)[1] != "ok":
            nv.nvmlGpmSampleFree(sample)
            return self.values
        if self._previous is not None:
            self.values = self._metrics(self._previous, sample)
            nv.nvmlGpmSampleFree(self._previous)
        self._previous, self._previous_t = sample, now
        return self.values

    def _metrics(self, first: Any, second: Any) -> GpmValues:
        nv = self.session.nv
        request = nv.c_nvmlGpmMetricsGet_t()
        request.version = nv.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(METRICS)
        request.sample1, request.sample2 = first, second
        for i, (_, constant) in enumerate(METRICS):
            request.metrics[i].metricId = getattr(nv, constant)
        try:
            nv.nvmlGpmMetricsGet(request)
        except nv.NVMLError as exc:
            if error_name(nv, exc) == "NVML_ERROR_NOT_SUPPORTED":
                self.supported = False
            return NONE
        values = {}
        for i, (attr, _) in enumerate(METRICS):
            metric = request.metrics[i]
            ok = metric.nvmlReturn == nv.NVML_SUCCESS and 0.0 <= metric.value <= 100.0
            values[attr] = metric.value / 100.0 if ok else None
        return GpmValues(**values)

    def close(self) -> None:
        if self._previous is not None:
            try:
                self.session.nv.nvmlGpmSampleFree(self._previous)
            except self.session.nv.NVMLError:
                pass
            self._previous = None


def _missing(*_args: Any) -> None:
    """Stands in for a GPM call an older nvidia-ml-py lacks: reads as unsupported."""
    return None
