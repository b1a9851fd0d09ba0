"""Pure-torch reference of :func:`kernels.triton.mla_decode.mla_decode`, with the same signature.

It gathers each sequence's pages into a dense ``[B, T, C]`` view, computes the scores of all
heads in fp32, masks what a token may not see and applies one softmax: the obvious algorithm the
kernel's split-KV loop must agree with. It runs anywhere torch does and needs no Triton. Positions
past each sequence's length are replaced by zeros before use, so (like the kernel) it gives finite
results whatever unused pages hold.
"""

from __future__ import annotations

import torch

from kernels.paged import gather_pages


def mla_decode_reference(
    q_lat: torch.Tensor,
    q_pe: torch.Tensor,
    kv: torch.Tensor,
    pe: torch.Tensor,
    block_table: torch.Tensor,
    lengths: torch.Tensor,
    softmax_scale: float,
    plan: object = None,
) -> torch.Tensor:
    """``o_lat [B, S, H, C]`` in the dtype of ``q_lat``; ``plan`` is accepted and ignored."""
    s = q_lat.shape[1]
    max_len = block_table.shape[1] * kv.shape[1]
    acc = torch.promote_types(q_lat.dtype, torch.float32)
    kv_d = gather_pages(kv, block_table, lengths, max_len).to(acc)
    pe_d = gather_pages(pe, block_table, lengths, max_len).to(acc)
    scores = torch.einsum("bshc,btc->bsht", q_lat.to(acc), kv_d) + torch.einsum("bshr,btr->bsht", q_pe.to(acc), pe_d)
    t = torch.arange(max_len, device=q_lat.device)
    limit = lengths.long()[:, None] - s + torch.arange(s, device=q_lat.device)[None, :] + 1  # [B, S]
    visible = t[None, None, :] < limit[..., None]  # [B, S, T]
    scores = (scores * softmax_scale).masked_fill(~visible[:, :, None, :], float("-inf"))
    return torch.einsum("bsht,btc->bshc", scores.softmax(dim=-1), kv_d).to(q_lat.dtype)
