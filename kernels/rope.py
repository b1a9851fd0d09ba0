"""Rotary position embedding, interleaved-pair convention (DeepSeek's and Llama's reference code).

Channels (2i, 2i+1) form one rotating pair; pair i turns by ``position * theta**(-2i/d)``.
"""

from __future__ import annotations

import torch


def rope_cache(
    rotary_dim: int,
    max_positions: int,
    theta: float,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin, each ``[max_positions, rotary_dim // 2]`` in float32."""
    inv_freq = theta ** (-torch.arange(0, rotary_dim, 2, dtype=torch.float32, device=device) / rotary_dim)
    angles = torch.outer(torch.arange(max_positions, dtype=torch.float32, device=device), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the last dim of ``x`` ``[..., S, H, D]`` by cos/sin ``[S, D/2]``, in float32 at least."""
    x_pairs = x.to(torch.promote_types(x.dtype, torch.float32)).unflatten(-1, (-1, 2))  # [..., S, H, D/2, 2]
    real, imag = x_pairs[..., 0], x_pairs[..., 1]
    c = cos[:, None, :]  # broadcast over heads
    s = sin[:, None, :]
    rotated = torch.stack((real * c - imag * s, real * s + imag * c), dim=-1)
    return rotated.flatten(-2).type_as(x)
