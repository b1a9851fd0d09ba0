"""FP8 (e4m3) quantisation and DeepSeek's blockwise ``scaled_mm``: the primitives under :mod:`kernels.fp8`.

Below both :mod:`kernels.fp8` (the experts that use them) and :mod:`kernels.ops` (whose probes check
the fused ops against them), so neither imports the other for them. Scale layouts: see kernels.fp8.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
BLOCK = 128
_EPS = 1e-12


def quantize_rowwise(x_RC: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 values, float32 dequantisation scale per row [R, 1]); ``x ~= q * scale``."""
    amax = x_RC.abs().amax(dim=-1, keepdim=True).float().clamp(min=_EPS)
    scale = amax / FP8_MAX
    return (x_RC.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale


def quantize_blockwise(x_RC: torch.Tensor, block_rows: int, block_cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 values, float32 scales [ceil(R/br), ceil(C/bc)]), one scale per block."""
    r, c = x_RC.shape
    pr, pc = math.ceil(r / block_rows) * block_rows, math.ceil(c / block_cols) * block_cols
    padded = F.pad(x_RC.float(), (0, pc - c, 0, pr - r))
    blocks = padded.view(pr // block_rows, block_rows, pc // block_cols, block_cols)
    scale = blocks.abs().amax(dim=(1, 3)).clamp(min=_EPS) / FP8_MAX  # [Rb, Cb]
    q = (blocks / scale[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX)
    return q.view(pr, pc)[:r, :c].to(FP8), scale


def dequantize_blockwise(q_RC: torch.Tensor, scale: torch.Tensor, block_rows: int, block_cols: int) -> torch.Tensor:
    full = scale.repeat_interleave(block_rows, 0).repeat_interleave(block_cols, 1)
    return q_RC.float() * full[: q_RC.shape[0], : q_RC.shape[1]]


def padded_k_blocks(k: int) -> int:
    """L4: the K/128 scale blocks of a 128x128-scaled operand, rounded up to a multiple of 4."""
    return -(-math.ceil(k / BLOCK) // 4) * 4


def padded_weight_scales(scale_OK: torch.Tensor) -> torch.Tensor:
    """128x128 weight scales ``[..., N/128, K/128]`` padded along K to ``[..., N/128, L4]``, row-major.
    The padded blocks hold 1.0 and are never read."""
    kb = scale_OK.shape[-1]
    return F.pad(scale_OK, (0, padded_k_blocks(kb * BLOCK) - kb), value=1.0).contiguous()


def weight_scales_for_mm(scale_OK: torch.Tensor) -> torch.Tensor:
    """128x128 weight scales ``[N/128, K/128]`` in the layout ``scaled_mm`` wants for ``w.t()``:
    ``[L4, N/128]`` with strides ``(1, L4)``."""
    return padded_weight_scales(scale_OK).t()


def blockwise_mm(x_q: torch.Tensor, x_scale: torch.Tensor, w_q: torch.Tensor, w_scale_mm: torch.Tensor) -> torch.Tensor:
    """``x @ w.T`` in DeepSeek's recipe: ``x`` [M, K] fp8 with 1x128 scales [M, K/128] (any layout),
    ``w`` [N, K] fp8 with scales from :func:`weight_scales_for_mm`; bf16 out."""
    return F.scaled_mm(
        x_q,
        w_q.t(),
        x_scale.t().contiguous().t(),  # outer-dim-major: strides (1, M)
        F.ScalingType.BlockWise1x128,
        w_scale_mm,
        F.ScalingType.BlockWise128x128,
        output_dtype=torch.bfloat16,
    )
