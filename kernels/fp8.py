"""FP8 (e4m3) expert GEMMs for inference, as DeepSeek serves them.

Two recipes:

- ``blockwise``: DeepSeek-V3's, activations scaled per 1x128 tile and weights per 128x128 block,
  one ``scaled_mm`` per expert (cuBLAS on sm90);
- ``rowwise``: one scale per activation row and per weight output channel. On sm90 this runs as
  one ``scaled_grouped_mm`` for all experts (when the probe in :mod:`kernels.ops` passes);
  elsewhere (and on a CPU whose torch has a rowwise ``scaled_mm`` kernel: 2.13 has, 2.11 has
  not) as one ``scaled_mm`` per expert. :func:`fp8_support` says which, from a probe.

Weights are quantised once, at construction. ``forward`` quantises activations on the fly (in
fp32, as part of the layer); :meth:`Fp8Experts.quantize` and :meth:`Fp8Experts.gemm` split that
so the GEMMs can be timed on pre-quantised inputs. No backward: training through these GEMMs is
not implemented.

Scale layouts are cuBLAS's (``aten/src/ATen/native/cuda/ScaledBlas.cpp``, mirrored by torch's
meta kernel): for ``(BlockWise1x128, BlockWise128x128)`` the activation scales are ``[M, K/128]``
with strides ``(1, M)`` (outer-dim-major), and the weight scales ``[L4, N/128]`` with strides
``(1, L4)``, where ``L4`` is ``K/128`` rounded up to a multiple of 4 (the padding is never read).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kernels import ops
from kernels.args import Fp8Recipe
from kernels.fp8_quant import (
    BLOCK,
    FP8,
    FP8_MAX,
    blockwise_mm,
    dequantize_blockwise,
    padded_k_blocks,
    padded_weight_scales,
    quantize_blockwise,
    quantize_rowwise,
    weight_scales_for_mm,
)
from kernels.grouped import group_bounds
from kernels.moe import GroupedExperts

__all__ = [  # the quantisation primitives are kernels.fp8_quant's, named here as before
    "BLOCK",
    "FP8",
    "FP8_MAX",
    "Fp8Experts",
    "Fp8Recipe",
    "blockwise_mm",
    "dequantize_blockwise",
    "fp8_support",
    "padded_k_blocks",
    "padded_weight_scales",
    "quantize_blockwise",
    "quantize_rowwise",
    "weight_scales_for_mm",
]


def fp8_support(device: torch.device, recipe: Fp8Recipe, dims: tuple[int, ...] = ()) -> str | None:
    """None when this recipe runs on the device (for these GEMM dimensions), else the reason it does not."""
    if ops.SCALED_MM is None:
        return f"this torch ({torch.__version__}) has no torch.nn.functional.scaled_mm; fp8 GEMMs need torch >= 2.10"
    if recipe == "blockwise":
        odd = [d for d in dims if d % BLOCK]
        if odd:
            return f"blockwise fp8 needs GEMM dimensions that are multiples of {BLOCK} ({odd} are not)"
    odd = [d for d in dims if d % 16]
    if odd:
        return f"fp8 GEMMs need dimensions that are multiples of 16 ({odd} are not)"
    if device.type == "meta":
        return None  # memory planning: no values are computed, the op's meta kernel checks shapes and layouts
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if capability < (8, 9):
            return (
                f"fp8 tensor cores need compute capability 8.9 or newer (this GPU has {capability[0]}.{capability[1]})"
            )
        if recipe == "blockwise" and capability != (9, 0):
            return "DeepSeek's 1x128/128x128 blockwise fp8 GEMM is implemented for sm90 (Hopper) only"
    elif device.type != "cpu":
        return f"fp8 GEMMs are not supported on {device.type}"
    # Whether the op runs is what a tiny product on this device says (cached per process), never
    # what the torch version suggests: torch 2.11's CPU build has F.scaled_mm and no kernel for it.
    op = "scaled_mm_blockwise" if recipe == "blockwise" else "scaled_mm_rowwise"
    probe = ops.probe_ops(str(device))
    if not probe.ok(op):
        where = "the CPU" if device.type == "cpu" else str(device)
        hint = " (DeepSeek's blockwise recipe is implemented for sm90 GPUs)" if recipe == "blockwise" else ""
        return f"{op} failed its probe on {where}: {probe.reason(op)}{hint}"
    return None


class Fp8Experts(nn.Module):
    """Inference-only fp8 copy of a :class:`GroupedExperts` (same call signature)."""

    def __init__(self, experts: GroupedExperts, recipe: Fp8Recipe = "rowwise"):
        super().__init__()
        self.recipe, self.hidden, self.n_experts = recipe, experts.hidden, experts.n_experts
        with torch.no_grad():
            self._quantize_weights("w13", experts.w13)
            self._quantize_weights("w2", experts.w2)
        self.use_grouped, self.fallback_reason = self._grouped_choice(experts.w13.device)

    @property
    def backend(self) -> str:
        """What runs the GEMMs, as the bench records it."""
        if self.use_grouped:
            return f"fp8-{self.recipe} scaled_grouped_mm"
        return f"fp8-{self.recipe} scaled_mm per expert"

    def _grouped_choice(self, device: torch.device) -> tuple[bool, str | None]:
        if self.recipe == "blockwise":
            return False, None  # torch has no grouped kernel for DeepSeek's scales: one GEMM per expert is the design
        if device.type != "cuda":
            return False, f"scaled_grouped_mm runs on sm90 GPUs only (this is {device.type})"
        if torch.cuda.get_device_capability(device) != (9, 0):
            return False, "scaled_grouped_mm runs on sm90 GPUs only"
        probe = ops.probe_ops(str(device))
        if not probe.ok("scaled_grouped_mm_rowwise"):
            return False, f"scaled_grouped_mm failed its probe: {probe.reason('scaled_grouped_mm_rowwise')}"
        return True, None

    def _quantize_weights(self, name: str, w_EOI: torch.Tensor) -> None:
        if self.recipe == "rowwise":
            pairs = [quantize_rowwise(w) for w in w_EOI]  # a scale per output channel
            q = torch.stack([p[0] for p in pairs])
            s = torch.stack([p[1].squeeze(-1) for p in pairs])  # [E, O]
        else:
            pairs = [quantize_blockwise(w, BLOCK, BLOCK) for w in w_EOI]
            q = torch.stack([p[0] for p in pairs])
            # [E, O/128, L4] row-major, so that scale[e].t() is [L4, O/128] with strides (1, L4)
            s = padded_weight_scales(torch.stack([p[1] for p in pairs]))
        self.register_buffer(f"{name}_q", q, persistent=False)
        self.register_buffer(f"{name}_scale", s.contiguous(), persistent=False)

    def dequantized_weight(self, name: str, e: int) -> torch.Tensor:
        """Expert ``e``'s quantised weight ``[O, I]`` back in float32 (for references)."""
        q, s = getattr(self, f"{name}_q")[e], getattr(self, f"{name}_scale")[e]
        if self.recipe == "rowwise":
            return q.float() * s.float()[:, None]
        kb = math.ceil(q.shape[1] / BLOCK)
        return dequantize_blockwise(q, s[:, :kb], BLOCK, BLOCK)

    def quantize(self, x_ND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations in this recipe's fp8 form: rowwise [N, 1] scales, or 1x128 tiles [N, D/128]."""
        return quantize_rowwise(x_ND) if self.recipe == "rowwise" else quantize_blockwise(x_ND, 1, BLOCK)

    def forward(self, x_ND: torch.Tensor, tokens_per_expert_E: torch.Tensor) -> torch.Tensor:
        offsets = torch.cumsum(tokens_per_expert_E, dim=0, dtype=torch.int32)
        h = self.gemm(*self.quantize(x_ND), "w13", offsets)
        gate, up = h.split(self.hidden, dim=-1)
        return self.gemm(*self.quantize(F.silu(gate) * up), "w2", offsets).to(x_ND.dtype)

    def gemm(self, x_q: torch.Tensor, x_s: torch.Tensor, name: str, offsets: torch.Tensor) -> torch.Tensor:
        """Pre-quantised rows (sorted by expert) times each expert's ``name`` weight; bf16 out."""
        w_q, w_s = getattr(self, f"{name}_q"), getattr(self, f"{name}_scale")
        if self.use_grouped:
            return F.scaled_grouped_mm(
                x_q,
                w_q.transpose(-2, -1),
                x_s.squeeze(-1),
                F.ScalingType.RowWise,
                w_s,
                F.ScalingType.RowWise,
                offs=offsets,
                output_dtype=torch.bfloat16,
            )
        bounds = group_bounds(offsets, x_q.shape[0])  # a device sync: this path cannot be graph-captured
        outs = []
        for e, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
            if hi == lo:
                outs.append(x_q.new_zeros(0, w_q.shape[1], dtype=torch.bfloat16))
            elif self.recipe == "rowwise":
                outs.append(
                    F.scaled_mm(
                        x_q[lo:hi],
                        w_q[e].t(),
                        x_s[lo:hi],
                        F.ScalingType.RowWise,
                        w_s[e][None, :],
                        F.ScalingType.RowWise,
                        output_dtype=torch.bfloat16,
                    )
                )
            else:
                outs.append(blockwise_mm(x_q[lo:hi], x_s[lo:hi], w_q[e], w_s[e].t()))
        return torch.cat(outs, dim=0)
