"""Grouped GEMM: one matrix product per expert over rows sorted by expert.

``grouped_linear(x_ND, w_EOD, offsets_E)`` computes, for each expert e, its rows of ``x`` times
``w[e].T``. It uses ``torch.nn.functional.grouped_mm`` (``torch._grouped_mm`` on older torch)
where the device, dtype and shapes allow it, and a per-expert loop of ``torch.mm`` elsewhere;
both give the same result and the same gradients. The loop needs the group sizes on the host (a
device sync), so it can never be captured in a CUDA graph. :func:`choose_backend` says which
one runs and why, so a fall-back is recorded rather than silent.

Shape legend: N rows (token-expert assignments), D input dim, O output dim, E experts.
"""

from __future__ import annotations

import functools
from typing import Literal

import torch

from kernels.ops import GROUPED_MM, GROUPED_MM_NAME

Backend = Literal["grouped_mm", "loop"]
STRIDE_ALIGNMENT_BYTES = 16  # grouped_mm's operands need row strides that are multiples of 16 bytes


def _unsupported(device_type: str, dtype: torch.dtype, capability: tuple[int, int] | None) -> str | None:
    if GROUPED_MM is None:
        return f"this torch ({torch.__version__}) has neither F.grouped_mm nor torch._grouped_mm"
    if device_type == "cuda":
        # CUDA kernels exist for bf16 on sm80+ (and the fp8 variant on sm90); others fall back.
        if dtype != torch.bfloat16:
            return f"the CUDA grouped GEMM is bf16 only (not {str(dtype).removeprefix('torch.')})"
        if capability is None or capability < (8, 0):
            return "the CUDA grouped GEMM needs compute capability 8.0 or newer"
        return None
    if device_type == "cpu":
        return None if dtype in (torch.float32, torch.bfloat16) else f"no CPU grouped GEMM for {dtype}"
    return f"no grouped GEMM on {device_type}"


def choose_backend(
    device_type: str, dtype: torch.dtype, capability: tuple[int, int] | None, dims: tuple[int, ...] = ()
) -> tuple[Backend, str | None]:
    """(backend, why the loop) for GEMMs of these inner and outer dimensions; the reason is None for grouped_mm.

    ``dims`` are every K and N the layer's grouped GEMMs use (forward and backward read both as
    row strides): one that is not a multiple of 16 bytes makes grouped_mm fail ("strides should
    be multiple of 16 bytes"), so those shapes take the loop.
    """
    why = _unsupported(device_type, dtype, capability)
    if why:
        return "loop", why
    element = torch.empty((), dtype=dtype).element_size()
    misaligned = sorted({d for d in dims if (d * element) % STRIDE_ALIGNMENT_BYTES})
    if misaligned:
        multiple = STRIDE_ALIGNMENT_BYTES // element
        return (
            "loop",
            f"{GROUPED_MM_NAME} needs dimensions that are multiples of {multiple} in {dtype} (not {misaligned})",
        )
    return "grouped_mm", None


def pick_backend(x: torch.Tensor, dims: tuple[int, ...] = ()) -> Backend:
    capability = torch.cuda.get_device_capability(x.device) if x.device.type == "cuda" else None
    return choose_backend(x.device.type, x.dtype, capability, dims)[0]


def group_bounds(offsets_E: torch.Tensor, n_rows: int) -> list[int]:
    """Each group's row bounds on the host: ``[0, offsets...]``, a device-to-host sync.

    On the meta device (memory planning) offsets have no values; an even split gives the same
    tensors in total, which is all a memory plan needs.
    """
    if offsets_E.device.type == "meta":
        e = offsets_E.shape[0]
        return [n_rows * i // e for i in range(e + 1)]
    return [0, *offsets_E.tolist()]


def grouped_linear(
    x_ND: torch.Tensor, w_EOD: torch.Tensor, offsets_E: torch.Tensor, backend: Backend | None = None
) -> torch.Tensor:
    """Rows ``offsets[e-1]:offsets[e]`` of ``x`` times ``w[e].T``; ``offsets`` int32, cumulative.

    ``offsets[-1]`` must equal the number of rows.
    """
    backend = backend or pick_backend(x_ND, tuple(w_EOD.shape[1:]))
    if backend == "grouped_mm":
        return GROUPED_MM(x_ND, w_EOD.transpose(-2, -1), offs=offsets_E)
    # A readable reference path: one product per expert.
    bounds = group_bounds(offsets_E, x_ND.shape[0])
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
