"""Which fused GEMM ops this torch has, and whether each one really runs on a device.

torch moves these ops between releases (``torch._grouped_mm`` became ``F.grouped_mm``; fp8 GEMMs
moved from ``torch._scaled_mm`` to ``F.scaled_mm`` with explicit scaling types), and a GPU image
may carry an older torch than CI. :func:`detect_ops` says which names exist; :func:`probe_ops`
runs each op once on small random operands on a device and checks the result against the same
product in float64, so a layout the kernel rejects (or accepts but reads wrongly) is known before
any benchmark relies on it. The layers read the probe to choose their backend, and the bench
records it, so a fall-back to a slower path is always visible.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from kernels.fp8_quant import (
    blockwise_mm,
    dequantize_blockwise,
    quantize_blockwise,
    quantize_rowwise,
    weight_scales_for_mm,
)


def _first(*candidates: tuple[object, str, str]) -> tuple[object | None, str | None]:
    for owner, attr, label in candidates:
        fn = getattr(owner, attr, None)
        if fn is not None:
            return fn, label
    return None, None


GROUPED_MM, GROUPED_MM_NAME = _first((F, "grouped_mm", "F.grouped_mm"), (torch, "_grouped_mm", "torch._grouped_mm"))
# fp8 GEMMs are written against the scaling-type API (F.scaled_mm(..., F.ScalingType.RowWise, ...)).
SCALED_MM, SCALED_MM_NAME = _first((F, "scaled_mm", "F.scaled_mm")) if hasattr(F, "ScalingType") else (None, None)
SCALED_GROUPED_MM, SCALED_GROUPED_MM_NAME = (
    _first((F, "scaled_grouped_mm", "F.scaled_grouped_mm")) if hasattr(F, "ScalingType") else (None, None)
)


@dataclass(frozen=True)
class OpNames:
    """The fused GEMM entry points this torch provides (None: absent)."""

    torch_version: str
    grouped_mm: str | None
    scaled_mm: str | None
    scaled_grouped_mm: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def detect_ops() -> OpNames:
    return OpNames(torch.__version__, GROUPED_MM_NAME, SCALED_MM_NAME, SCALED_GROUPED_MM_NAME)


@dataclass(frozen=True)
class ProbeResult:
    """One op run once on a device: ok, or the reason it cannot be used there."""

    op: str
    ok: bool
    reason: str | None = None
    rel_error: float | None = None  # ||out - ref|| / ||ref|| against the float64 product


@dataclass(frozen=True)
class OpProbe:
    """Every probed op on one device (``device`` as torch names it, e.g. ``cuda:0``)."""

    device: str
    results: dict[str, ProbeResult] = field(default_factory=dict)

    def ok(self, op: str) -> bool:
        r = self.results.get(op)
        return bool(r and r.ok)

    def reason(self, op: str) -> str | None:
        r = self.results.get(op)
        return None if r is None or r.ok else r.reason

    def as_dict(self) -> dict:
        return {"device": self.device, "results": {k: asdict(v) for k, v in self.results.items()}}


# What each probe accepts: fp8 products are exact on the quantised operands up to the bf16 output
# rounding (about 4e-3), so 2e-2 separates a right layout from a wrong one by far.
FP8_TOLERANCE = 2e-2
BF16_TOLERANCE = 2e-2
PROBE_OPS = ("grouped_mm_bf16", "scaled_mm_rowwise", "scaled_mm_blockwise", "scaled_grouped_mm_rowwise")


@functools.cache
def probe_ops(device: str) -> OpProbe:
    """Run each fused op once on ``device`` (cached per process). Never raises for an op that fails."""
    dev = torch.device(device)
    if dev.type == "meta":
        raise ValueError("ops cannot be probed on the meta device (it computes no values)")
    results = {}
    for name in PROBE_OPS:
        results[name] = _run_probe(name, dev)
    return OpProbe(str(dev), results)


def _run_probe(name: str, dev: torch.device) -> ProbeResult:
    fn = {
        "grouped_mm_bf16": _probe_grouped_mm,
        "scaled_mm_rowwise": _probe_scaled_rowwise,
        "scaled_mm_blockwise": _probe_scaled_blockwise,
        "scaled_grouped_mm_rowwise": _probe_scaled_grouped,
    }[name]
    try:
        out, ref, tolerance = fn(dev)
    except _Absent as exc:
        return ProbeResult(name, False, str(exc))
    except Exception as exc:  # the op exists but refuses these operands here: say exactly why
        first = str(exc).strip().splitlines()[0].split(". ")[0][:200] if str(exc).strip() else ""
        return ProbeResult(name, False, f"{type(exc).__name__}: {first}")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    err = float((out.double().cpu() - ref).norm() / ref.norm())
    if not err < tolerance:  # also catches NaN
        return ProbeResult(name, False, f"wrong result: relative error {err:.3g} (> {tolerance})", err)
    return ProbeResult(name, True, None, err)


class _Absent(Exception):
    pass


def _need(fn: object, what: str) -> None:
    if fn is None:
        raise _Absent(f"this torch ({torch.__version__}) has no {what}")


def _probe_grouped_mm(dev: torch.device):
    _need(GROUPED_MM, "F.grouped_mm or torch._grouped_mm")
    g = torch.Generator().manual_seed(0)
    counts = [16, 0, 40, 8]  # an empty group and uneven sizes, as routing produces
    x = torch.randn(sum(counts), 64, generator=g)
    w = torch.randn(len(counts), 32, 64, generator=g)
    offs = torch.tensor(counts).cumsum(0).to(torch.int32)
    out = GROUPED_MM(x.to(dev, torch.bfloat16), w.to(dev, torch.bfloat16).transpose(-2, -1), offs=offs.to(dev))
    xb, wb = x.bfloat16().double(), w.bfloat16().double()
    bounds = [0, *offs.tolist()]
    ref = torch.cat([xb[lo:hi] @ wb[e].T for e, (lo, hi) in enumerate(zip(bounds, bounds[1:]))])
    return out, ref, BF16_TOLERANCE


def _probe_scaled_rowwise(dev: torch.device):
    _need(SCALED_MM, "F.scaled_mm with F.ScalingType (torch >= 2.10)")
    g = torch.Generator().manual_seed(1)
    x, w = torch.randn(32, 256, generator=g), torch.randn(384, 256, generator=g)
    xq, xs = quantize_rowwise(x)
    wq, ws = quantize_rowwise(w)
    out = SCALED_MM(
        xq.to(dev),
        wq.to(dev).t(),
        xs.to(dev),
        F.ScalingType.RowWise,
        ws.to(dev).t(),
        F.ScalingType.RowWise,
        output_dtype=torch.bfloat16,
    )
    ref = (xq.double() * xs.double()) @ (wq.double() * ws.double()).T
    return out, ref, FP8_TOLERANCE


def _probe_scaled_blockwise(dev: torch.device):
    _need(SCALED_MM, "F.scaled_mm with F.ScalingType (torch >= 2.10)")
    g = torch.Generator().manual_seed(2)
    # K = 256 gives 2 scale blocks along K, which cuBLAS wants padded to 4; N = 384 gives 3 blocks:
    # a transposed or unpadded scale layout fails here (or computes a wrong product) instead of later.
    x, w = torch.randn(32, 256, generator=g), torch.randn(384, 256, generator=g)
    xq, xs = quantize_blockwise(x, 1, 128)
    wq, ws = quantize_blockwise(w, 128, 128)
    out = blockwise_mm(xq.to(dev), xs.to(dev), wq.to(dev), weight_scales_for_mm(ws).to(dev))
    ref = dequantize_blockwise(xq, xs, 1, 128).double() @ dequantize_blockwise(wq, ws, 128, 128).double().T
    return out, ref, FP8_TOLERANCE


def _probe_scaled_grouped(dev: torch.device):
    _need(SCALED_GROUPED_MM, "F.scaled_grouped_mm (torch >= 2.10)")
    g = torch.Generator().manual_seed(3)
    counts = [32, 0, 48, 16]
    x = torch.randn(sum(counts), 256, generator=g)
    w = torch.randn(len(counts), 384, 256, generator=g)
    xq, xs = quantize_rowwise(x)
    pairs = [quantize_rowwise(we) for we in w]
    wq = torch.stack([p[0] for p in pairs])
    ws = torch.stack([p[1].squeeze(-1) for p in pairs])
    offs = torch.tensor(counts).cumsum(0).to(torch.int32)
    out = SCALED_GROUPED_MM(
        xq.to(dev),
        wq.to(dev).transpose(-2, -1),
        xs.squeeze(-1).to(dev),
        F.ScalingType.RowWise,
        ws.to(dev),
        F.ScalingType.RowWise,
        offs=offs.to(dev),
        output_dtype=torch.bfloat16,
    )
    xd = xq.double() * xs.double()
    bounds = [0, *offs.tolist()]
    ref = torch.cat(
        [xd[lo:hi] @ (wq[e].double() * ws[e].double()[:, None]).T for e, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    )
    return out, ref, FP8_TOLERANCE
