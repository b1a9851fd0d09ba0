"""Rotary position embedding, interleaved-pair convention (DeepSeek's and Llama's reference code).

Channels (2i, 2i+1) form one rotating pair; pair i turns by ``position * theta**(-2i/d)``.

YaRN (DeepSeek-V2/V3's context extension, ``precompute_freqs_cis`` and ``MLA.__init__`` in
DeepSeek-V3's ``inference/model.py``): when a model runs past the ``original_seq_len`` it was
pre-trained at, the slow-turning pairs (fewer than ``beta_slow`` turns over the original length)
turn ``rope_factor`` times slower, the fast ones (more than ``beta_fast`` turns) are left alone,
a linear ramp blends the pairs between, and the softmax scale is multiplied by ``mscale**2`` with
``mscale = 0.1 * mscale_cfg * ln(rope_factor) + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Yarn:
    """YaRN settings of a model (DeepSeek's field names)."""

    original_seq_len: int
    factor: float
    beta_fast: float
    beta_slow: float
    mscale: float

    def applies(self, max_seq_len: int) -> bool:
        """DeepSeek's rule: only a layer built for more positions than the original length is extended."""
        return self.factor > 1.0 and max_seq_len > self.original_seq_len

    @property
    def softmax_scale_factor(self) -> float:
        m = 0.1 * self.mscale * math.log(self.factor) + 1.0
        return m * m

    def correction_range(self, rotary_dim: int, theta: float) -> tuple[int, int]:
        """The pair indices (low, high) between which the ramp blends interpolated and original frequencies."""

        def pair_turning(turns: float) -> float:  # the dim whose pair turns `turns` times over the original length
            return rotary_dim * math.log(self.original_seq_len / (turns * 2 * math.pi)) / (2 * math.log(theta))

        low = math.floor(pair_turning(self.beta_fast))
        high = math.ceil(pair_turning(self.beta_slow))
        return max(low, 0), min(high, rotary_dim - 1)

    def frequencies(self, inv_freq: torch.Tensor, rotary_dim: int, theta: float) -> torch.Tensor:
        """``inv_freq`` blended with ``inv_freq / factor`` along the ramp (float32, as DeepSeek's)."""
        low, high = self.correction_range(rotary_dim, theta)
        if low == high:
            high += 0.001  # DeepSeek's guard against a zero-width ramp
        ramp = (
            (torch.arange(rotary_dim // 2, dtype=torch.float32, device=inv_freq.device) - low) / (high - low)
        ).clamp(0, 1)
        keep = 1 - ramp  # 1 for fast pairs (left alone), 0 for slow pairs (interpolated)
        return inv_freq / self.factor * (1 - keep) + inv_freq * keep


def rope_cache(
    rotary_dim: int,
    max_positions: int,
    theta: float,
    device: torch.device | str | None = None,
    yarn: Yarn | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each ``[max_positions, rotary_dim // 2]`` in float32; YaRN-extended when it applies."""
    inv_freq = theta ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float32, device=device) / rotary_dim)
    if yarn is not None and yarn.applies(max_positions):
        inv_freq = yarn.frequencies(inv_freq, rotary_dim, theta)
    angles = torch.outer(torch.arange(max_positions, dtype=torch.float32, device=device), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the last dim of ``x`` ``[..., S, H, D]`` by cos/sin ``[S, D/2]`` (or ``[B, S, D/2]``
    for a position per sequence), in float32 at least."""
    x_pairs = x.to(torch.promote_types(x.dtype, torch.float32)).unflatten(-1, (-1, 2))  # [..., S, H, D/2, 2]
    real, imag = x_pairs[..., 0], x_pairs[..., 1]
    c = cos.unsqueeze(-2)  # broadcast over heads
    s = sin.unsqueeze(-2)
    rotated = torch.stack((real * c - imag * s, real * s + imag * c), dim=-1)
    return rotated.flatten(-2).type_as(x)
