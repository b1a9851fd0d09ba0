"""FP8 (e4m3) expert GEMMs for inference, as DeepSeek serves them.

Two recipes:

- ``blockwise``: DeepSeek-V3's, activations scaled per 1x128 tile and weights per 128x128 block,
  one ``scaled_mm`` per expert (cuBLAS on sm90);
- ``rowwise``: one scale per activation row and per weight output channel. On sm90 this runs as
  one ``scaled_grouped_mm`` for all experts; elsewhere (and on the CPU, which implements rowwise
  ``scaled_mm``) as one ``scaled_mm`` per expert.

Weights are quantised once, at construction. The forward pass quantises activations on the fly.
No backward: training through these GEMMs is not implemented.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kernels.moe import GroupedExperts

Recipe = Literal["rowwise", "blockwise"]
FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
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


def fp8_support(device: torch.device, recipe: Recipe) -> str | None:
    """None when this recipe runs on the device, else the reason it does not."""
    if not hasattr(F, "scaled_mm") or not hasattr(F, "ScalingType"):
        return f"this torch ({torch.__version__}) has no torch.nn.functional.scaled_mm; fp8 GEMMs need torch >= 2.10"
    if device.type == "cpu":
        return None if recipe == "rowwise" else "blockwise fp8 GEMMs need an sm90 GPU (the CPU implements rowwise only)"
    if device.type != "cuda":
        return f"fp8 GEMMs are not supported on {device.type}"
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 9):
        return f"fp8 tensor cores need compute capability 8.9 or newer (this GPU has {capability[0]}.{capability[1]})"
    if recipe == "blockwise" and capability != (9, 0):
        return "DeepSeek's 1x128/128x128 blockwise fp8 GEMM is implemented for sm90 (Hopper) only"
    return None


class Fp8Experts(nn.Module):
    """Inference-only fp8 copy of a :class:`GroupedExperts` (same call signature)."""

    def __init__(self, experts: GroupedExperts, recipe: Recipe = "rowwise"):
        super().__init__()
        self.recipe, self.hidden, self.n_experts = recipe, experts.hidden, experts.n_experts
        with torch.no_grad():
            self._quantize_weights("w13", experts.w13)
            self._quantize_weights("w2", experts.w2)
        self.use_grouped = (
            recipe == "rowwise"
            and experts.w13.device.type == "cuda"
            and torch.cuda.get_device_capability(experts.w13.device) == (9, 0)
        )

    def _quantize_weights(self, name: str, w_EOI: torch.Tensor) -> None:
        if self.recipe == "rowwise":
            pairs = [quantize_rowwise(w) for w in w_EOI]  # a scale per output channel
            q = torch.stack([p[0] for p in pairs])
            s = torch.stack([p[1].squeeze(-1) for p in pairs])  # [E, O]
        else:
            pairs = [quantize_blockwise(w, 128, 128) for w in w_EOI]
            q = torch.stack([p[0] for p in pairs])
            s = torch.stack([p[1] for p in pairs])  # [E, O/128, I/128]
        self.register_buffer(f"{name}_q", q, persistent=False)
        self.register_buffer(f"{name}_scale", s.contiguous(), persistent=False)

    def forward(self, x_ND: torch.Tensor, tokens_per_expert_E: torch.Tensor) -> torch.Tensor:
        offsets = torch.cumsum(tokens_per_expert_E, dim=0, dtype=torch.int32)
        h = self._gemm(x_ND, "w13", offsets)
        gate, up = h.split(self.hidden, dim=-1)
        return self._gemm(F.silu(gate) * up, "w2", offsets).to(x_ND.dtype)

    def _gemm(self, x_ND: torch.Tensor, name: str, offsets: torch.Tensor) -> torch.Tensor:
        w_q, w_s = getattr(self, f"{name}_q"), getattr(self, f"{name}_scale")
        out_dtype = torch.bfloat16
        if self.use_grouped:
            x_q, x_s = quantize_rowwise(x_ND)
            return F.scaled_grouped_mm(
                x_q,
                w_q.transpose(-2, -1),
                x_s.squeeze(-1),
                F.ScalingType.RowWise,
                w_s,
                F.ScalingType.RowWise,
                offs=offsets,
                output_dtype=out_dtype,
            )
        bounds = [0, *offsets.tolist()]
        outs = []
        for e, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            rows = x_ND[lo:hi]
            if hi == lo:
                outs.append(rows.new_zeros(0, w_q.shape[1], dtype=out_dtype))
            elif self.recipe == "rowwise":
                x_q, x_s = quantize_rowwise(rows)
                outs.append(
                    F.scaled_mm(
                        x_q,
                        w_q[e].t(),
                        x_s,
                        F.ScalingType.RowWise,
                        w_s[e][None, :],
                        F.ScalingType.RowWise,
                        output_dtype=out_dtype,
                    )
                )
            else:
                x_q, x_s = quantize_blockwise(rows, 1, 128)
                # cuBLAS wants the 1x128 activation scales in column-major (outer-dim-major) layout.
                outs.append(
                    F.scaled_mm(
                        x_q,
                        w_q[e].t(),
                        x_s.t().contiguous().t(),
                        F.ScalingType.BlockWise1x128,
                        w_s[e].t().contiguous(),
                        F.ScalingType.BlockWise128x128,
                        output_dtype=out_dtype,
                    )
                )
        return torch.cat(outs, dim=0)
