"""Grouped GEMM: one matrix product per expert over rows sorted by expert.

``grouped_linear(x_ND, w_EOD, offsets_E)`` computes, for each expert e, its rows of ``x`` times
``w[e].T``. It uses ``torch.nn.functional.grouped_mm`` (``torch._grouped_mm`` on older torch)
where the device and dtype support it, and a per-expert loop of ``torch.mm`` elsewhere; both give
the same result and the same gradients. The loop needs the group sizes on the host (a device
sync), so it cannot be captured in a CUDA graph.

Shape legend: N rows (token-expert assignments), D input dim, O output dim, E experts.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F

Backend = Literal["grouped_mm", "loop"]

_GROUPED_MM = getattr(F, "grouped_mm", None) or getattr(torch, "_grouped_mm", None)


@functools.cache
def grouped_mm_supported(device_type: str, dtype: torch.dtype, capability: tuple[int, int] | None = None) -> bool:
    """Whether the fused grouped GEMM runs for this device type and dtype."""
    if _GROUPED_MM is None:
        return False
    if device_type == "cuda":
        # CUDA kernels exist for bf16 on sm80+ (and the fp8 variant on sm90); others fall back.
        return dtype == torch.bfloat16 and capability is not None and capability >= (8, 0)
    if device_type == "cpu":
        return dtype in (torch.float32, torch.bfloat16)
    return False


def pick_backend(x: torch.Tensor) -> Backend:
    capability = torch.cuda.get_device_capability(x.device) if x.device.type == "cuda" else None
    return "grouped_mm" if grouped_mm_supported(x.device.type, x.dtype, capability) else "loop"


def grouped_linear(
    x_ND: torch.Tensor, w_EOD: torch.Tensor, offsets_E: torch.Tensor, backend: Backend | None = None
) -> torch.Tensor:
    """Rows ``offsets[e-1]:offsets[e]`` of ``x`` times ``w[e].T``; ``offsets`` int32, cumulative.

    ``offsets[-1]`` must equal the number of rows.
    """
    backend = backend or pick_backend(x_ND)
    if backend == "grouped_mm":
        return _GROUPED_MM(x_ND, w_EOD.transpose(-2, -1), offs=offsets_E)
    # A readable reference path: one product per expert. .tolist() syncs device and host.
    bounds = [0, *offsets_E.tolist()]
    outs = [x_ND[lo:hi] @ w_EOD[e].transpose(0, 1) for e, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
    if not outs:
        return x_ND.new_zeros(0, w_EOD.shape[1])
    return torch.cat(outs, dim=0)


# --- FLOP counting ---------------------------------------------------------------------------


def _grouped_mm_flops(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """2 x (multiply-adds) of aten._grouped_mm for its four layouts (jagged dims counted once)."""
    if len(a_shape) == 2 and len(b_shape) == 3:  # [M, K] x [G, K, N] -> [M, N]
        (m, k), n = a_shape, b_shape[2]
        return 2 * m * k * n
    if len(a_shape) == 2 and len(b_shape) == 2:  # [N, M] x [M, K], jagged M -> [G, N, K]
        (n, m), k = a_shape, b_shape[1]
        return 2 * n * m * k
    if len(a_shape) == 3 and len(b_shape) == 3:  # [G, M, K] x [G, K, N]
        g, m, k = a_shape
        return 2 * g * m * k * b_shape[2]
    if len(a_shape) == 3 and len(b_shape) == 2:  # [G, M, K] x [K, N], jagged N -> [M, N]
        _, m, k = a_shape
        return 2 * m * k * b_shape[1]
    raise ValueError(f"unexpected grouped_mm shapes {a_shape} x {b_shape}")


@functools.cache
def register_flop_formulas() -> None:
    """Teach ``FlopCounterMode`` to count ``aten._grouped_mm`` (it counts 0 otherwise).

    Call before counting; idempotent. Kept out of import time on purpose.
    """
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    op = torch.ops.aten._grouped_mm
    if op not in flop_registry and op.default not in flop_registry:
        register_flop_formula(op)(_grouped_mm_flops)
