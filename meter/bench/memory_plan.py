"""How much memory a case needs, measured on torch's meta device: no GPU, no allocation, no time.

The case is built and run exactly as the bench runs it (the same builder, two calls so that a
training step's gradients are freed and made again), but on meta tensors, which have shapes and
no data. A dispatch mode counts the bytes of every storage while it is alive; the largest total
is the case's peak of live tensors. Backends are chosen as on the target device, and SDPA is made
to allocate what the target's fused kernel keeps (:mod:`meter.bench.sdpa`).

What this leaves out is covered by the stated margin, :data:`MARGIN`: the caching allocator's
rounding and fragmentation (10%) and a fixed reserve for the CUDA context's workspaces (cuBLAS,
cuDNN), the L2-flush buffer and the timer's events (1 GiB). Peaks are cached per case, target
and torch version, in memory and under the meter cache directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from kernels.args import ModelArgs
from meter.device.select import ComputeDevice
from meter.errors import OutputError
from meter.results.cases import BenchCase

PLAN_VERSION = 1  # bump when what is measured changes, so cached peaks are measured again


@dataclass(frozen=True)
class MemoryMargin:
    """What is added to a measured peak before comparing it with a device's memory."""

    ratio: float = 0.10  # allocator rounding and fragmentation
    reserve_bytes: int = 2**30  # CUDA context workspaces, the L2-flush buffer, events

    def need_bytes(self, peak_bytes: float) -> int:
        return int(peak_bytes * (1 + self.ratio) + self.reserve_bytes)

    def describe(self) -> str:
        return f"peak x {1 + self.ratio:g} + {self.reserve_bytes / 2**30:g} GiB"


MARGIN = MemoryMargin()


@dataclass(frozen=True)
class PeakEstimate:
    """A case's peak of live tensor bytes, and how it was obtained."""

    peak_bytes: int
    method: str  # "meta device" or "analytic (...)" when the case cannot run on meta tensors
    note: str | None = None

    def need_bytes(self, margin: MemoryMargin = MARGIN) -> int:
        return margin.need_bytes(self.peak_bytes)


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of every storage created inside the mode while it is alive; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _track(self, t: object) -> None:
        if not isinstance(t, torch.Tensor):
            return
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._seen:
            return  # a view of a storage already counted
        n = storage.nbytes()
        self._seen.add(key)
        self.live += n
        self.peak = max(self.peak, self.live)
        # Storages keep their Python object for as long as they live, so this runs when the memory is freed.
        weakref.finalize(storage, self._release, key, n)

    def _release(self, key: int, n: int) -> None:
        self._seen.discard(key)
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            self._track(t)
        return out


def measure_peak(case: BenchCase, a: ModelArgs, target: ComputeDevice) -> int:
    """Peak live bytes of building ``case`` and running it twice, on meta tensors, as ``target`` would."""
    from meter.bench.sdpa import FusedSdpaOnMeta
    from meter.bench.workloads import build_workload

    meta = dataclasses.replace(target, torch_device="meta")
    counter = LiveBytes()
    with FusedSdpaOnMeta(target), counter:
        workload = build_workload(case, a, meta, target=target)
        workload.step(0)
        workload.step(1)
        for part in workload.parts:
            part.step(0)
        del workload
    return counter.peak


_memo: dict[str, PeakEstimate] = {}


def planned_peak(case: BenchCase, a: ModelArgs, target: ComputeDevice, *, use_disk: bool = True) -> PeakEstimate:
    """The case's peak (cached); raises the builder's UnsupportedCase for a case the target cannot run."""
    key = _key(case, a, target)
    if key in _memo:
        return _memo[key]
    estimate = _read_cache(key) if use_disk else None
    if estimate is None:
        estimate = _estimate(case, a, target)
        if use_disk:
            _write_cache(key, estimate)
    _memo[key] = estimate
    return estimate


def _estimate(case: BenchCase, a: ModelArgs, target: ComputeDevice) -> PeakEstimate:
    from meter.bench.workloads import UnsupportedCase, estimate_memory_bytes

    try:
        return PeakEstimate(measure_peak(case, a, target), "meta device")
    except UnsupportedCase:
        raise
    except Exception as exc:  # an op with no meta kernel (a Triton kernel): the analytic estimate, said to be one
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return PeakEstimate(int(estimate_memory_bytes(case, a)), "analytic (pessimistic)", f"not on meta: {first}")


def _key(case: BenchCase, a: ModelArgs, target: ComputeDevice) -> str:
    ident = {
        "version": PLAN_VERSION,
        "torch": torch.__version__,
        "case": case.as_dict(),
        "args": dataclasses.asdict(a),
        "target": [target.kind, target.capability, target.present, target.name],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_path(key: str):
    from meter.bench.ceilings import cache_dir

    return cache_dir() / "peaks" / f"{key}.json"


def _read_cache(key: str) -> PeakEstimate | None:
    try:
        raw = json.loads(_cache_path(key).read_text(encoding="utf-8"))
        return PeakEstimate(int(raw["peak_bytes"]), str(raw["method"]), raw.get("note"))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or unreadable: measure again


def _write_cache(key: str, estimate: PeakEstimate) -> None:
    from meter.results.atomic import write_json_atomic

    try:
        write_json_atomic(_cache_path(key), dataclasses.asdict(estimate))
    except OutputError:
        pass  # only a cache


def fits(estimate: PeakEstimate, capacity_bytes: int | None, margin: MemoryMargin = MARGIN) -> bool | None:
    """Whether the case fits ``capacity_bytes`` with the margin; None when the capacity is unknown."""
    if capacity_bytes is None:
        return None
    return estimate.need_bytes(margin) <= capacity_bytes
