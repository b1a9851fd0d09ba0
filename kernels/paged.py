"""A paged MLA latent cache with a block table, as vLLM and FlashMLA lay it out.

The cache is a pool of ``pages`` of ``page_size`` positions each; ``block_table [B, max_pages]``
(int32) names the pages of each sequence in order, so position ``t`` of sequence ``b`` lives in
page ``block_table[b, t // page_size]`` at offset ``t % page_size``. Sequences then grow without
a contiguous ``[B, T_max]`` reservation, and pages can be shared or reused. Entries of the block
table past a sequence's last page are never read.

Shape legend: B batch, S new positions, T positions, P pages, C kv_lora_rank, R qk_rope_head_dim.
"""

from __future__ import annotations

import torch
from torch import nn

from kernels.args import ModelArgs


def gather_pages(pages: torch.Tensor, block_table: torch.Tensor, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``[B, max_len, D]`` from ``pages [P, page_size, D]``; zeros at and past each sequence's length."""
    page_size = pages.shape[1]
    t = torch.arange(max_len, device=pages.device)
    slot = (t // page_size).clamp(max=block_table.shape[1] - 1).expand(len(lengths), -1)
    page = block_table.long().gather(1, slot)
    dense = pages[page, (t % page_size).expand_as(page)]
    valid = t[None, :] < lengths.long()[:, None]
    return torch.where(valid[..., None], dense, torch.zeros((), dtype=dense.dtype, device=dense.device))


class PagedLatentKVCache(nn.Module):
    """The MLA latent cache in pages: ``kv [P, page_size, C]``, ``pe [P, page_size, R]`` and a block table."""

    def __init__(
        self,
        block_table: torch.Tensor,
        num_pages: int,
        page_size: int,
        args: ModelArgs,
        dtype: torch.dtype,
        device=None,
    ):
        super().__init__()
        if block_table.dim() != 2:
            raise ValueError(f"block_table must be [batch, max_pages], not {list(block_table.shape)}")
        self.page_size = page_size
        self.register_buffer("block_table", block_table.to(device=device, dtype=torch.int32), persistent=False)
        self.register_buffer(
            "kv", torch.zeros(num_pages, page_size, args.kv_lora_rank, dtype=dtype, device=device), persistent=False
        )
        self.register_buffer(
            "pe", torch.zeros(num_pages, page_size, args.qk_rope_head_dim, dtype=dtype, device=device), persistent=False
        )

    @property
    def capacity(self) -> int:
        """Positions each sequence can hold."""
        return self.block_table.shape[1] * self.page_size

    def _slots(self, positions_BS: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        page = self.block_table.long().gather(1, positions_BS // self.page_size)
        return page, positions_BS % self.page_size

    def write(self, positions_BS: torch.Tensor, latent_BSC: torch.Tensor, k_pe_BSR: torch.Tensor) -> None:
        page, offset = self._slots(positions_BS)
        self.kv[page, offset] = latent_BSC
        self.pe[page, offset] = k_pe_BSR

    def dense(self, lengths_B: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Contiguous ``[B, max_len, C]`` and ``[B, max_len, R]`` copies, zero past each length."""
        return (
            gather_pages(self.kv, self.block_table, lengths_B, max_len),
            gather_pages(self.pe, self.block_table, lengths_B, max_len),
        )

    def pages(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(kv, pe, block_table)`` as the fused decode kernel takes them."""
        return self.kv, self.pe, self.block_table
