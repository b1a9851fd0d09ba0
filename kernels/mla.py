"""Multi-head latent attention (MLA), as in DeepSeek-V2/V3.

Queries go through a low-rank path (``wq_a`` -> norm -> ``wq_b``; a plain ``wq`` when
``q_lora_rank`` is 0). Keys and values are compressed into one latent of ``kv_lora_rank`` values
(normalised), plus a decoupled RoPE key of ``qk_rope_head_dim`` values shared by all heads. Decode
caches only those ``kv_lora_rank + qk_rope_head_dim`` values per token (576 for V3).

Decode forms, both against that latent cache:

- ``naive``: up-project the cached latent into per-head keys and values (``wkv_b``) at every step,
  then ordinary attention;
- ``absorbed``: fold ``wkv_b``'s key half into the query and its value half into the output, so
  attention runs over the latent directly: MQA with one 576-wide key and a 512-wide value.

Shape legend: B batch, S new positions, T cached positions, D model dim, H heads, C kv_lora_rank,
R qk_rope_head_dim, P qk_nope_head_dim, V v_head_dim.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from kernels.args import ModelArgs
from kernels.dense import causal_block_mask
from kernels.rope import apply_rope, rope_cache

DecodeForm = Literal["naive", "absorbed"]


class LatentKVCache(nn.Module):
    """The MLA cache: normalised latent ``kv [B, T_max, C]`` and RoPE key ``pe [B, T_max, R]``."""

    def __init__(self, batch: int, max_len: int, args: ModelArgs, dtype: torch.dtype, device=None):
        super().__init__()
        self.register_buffer(
            "kv", torch.zeros(batch, max_len, args.kv_lora_rank, dtype=dtype, device=device), persistent=False
        )
        self.register_buffer(
            "pe", torch.zeros(batch, max_len, args.qk_rope_head_dim, dtype=dtype, device=device), persistent=False
        )

    @property
    def bytes_per_token(self) -> int:
        return (self.kv.shape[-1] + self.pe.shape[-1]) * self.kv.element_size()


class MLA(nn.Module):
    def __init__(self, args: ModelArgs, max_seq_len: int, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        if args.attention != "mla":
            raise ValueError("MLA needs kv_lora_rank > 0")
        a = args
        self.args = a
        self.n_heads, self.nope, self.rope, self.v_dim = a.n_heads, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim
        self.qk_dim = a.qk_head_dim
        kw = dict(bias=False, dtype=dtype, device=device)
        if a.q_lora_rank:
            self.wq_a = nn.Linear(a.dim, a.q_lora_rank, **kw)
            self.q_norm = nn.RMSNorm(a.q_lora_rank, eps=a.norm_eps, dtype=dtype, device=device)
            self.wq_b = nn.Linear(a.q_lora_rank, a.n_heads * self.qk_dim, **kw)
        else:
            self.wq = nn.Linear(a.dim, a.n_heads * self.qk_dim, **kw)
        self.wkv_a = nn.Linear(a.dim, a.kv_lora_rank + self.rope, **kw)
        self.kv_norm = nn.RMSNorm(a.kv_lora_rank, eps=a.norm_eps, dtype=dtype, device=device)
        self.wkv_b = nn.Linear(a.kv_lora_rank, a.n_heads * (self.nope + self.v_dim), **kw)
        self.wo = nn.Linear(a.n_heads * self.v_dim, a.dim, **kw)
        self.softmax_scale = self.qk_dim**-0.5
        cos, sin = rope_cache(self.rope, max_seq_len, a.rope_theta, device=device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    # --- shared pieces ---

    def _queries(self, x: torch.Tensor, start_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(q_nope [B, S, H, P], q_pe [B, S, H, R]) with RoPE applied."""
        b, s, _ = x.shape
        q = self.wq_b(self.q_norm(self.wq_a(x))) if self.args.q_lora_rank else self.wq(x)
        q_nope, q_pe = q.view(b, s, self.n_heads, self.qk_dim).split([self.nope, self.rope], dim=-1)
        return q_nope, apply_rope(q_pe, *self._rope(start_pos, s))

    def _latent(self, x: torch.Tensor, start_pos: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised latent [B, S, C], RoPE key [B, S, R])."""
        kv, k_pe = self.wkv_a(x).split([self.args.kv_lora_rank, self.rope], dim=-1)
        k_pe = apply_rope(k_pe.unsqueeze(2), *self._rope(start_pos, x.shape[1])).squeeze(2)
        return self.kv_norm(kv), k_pe

    def _rope(self, start_pos: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[start_pos : start_pos + length], self.sin[start_pos : start_pos + length]

    def _expand(self, latent: torch.Tensor, k_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head keys [B, T, H, P+R] and values [B, T, H, V] from the latent (the naive form)."""
        b, t, _ = latent.shape
        k_nope, v = (
            self.wkv_b(latent).view(b, t, self.n_heads, self.nope + self.v_dim).split([self.nope, self.v_dim], dim=-1)
        )
        k = torch.cat([k_nope, k_pe.unsqueeze(2).expand(-1, -1, self.n_heads, -1)], dim=-1)
        return k, v

    # --- training and prefill ---

    def forward(self, x: torch.Tensor, cache: LatentKVCache | None = None) -> torch.Tensor:
        """Causal attention over the whole sequence ``x [B, S, D]``; fills ``cache`` when given."""
        q_nope, q_pe = self._queries(x, 0)
        latent, k_pe = self._latent(x, 0)
        if cache is not None:
            s = x.shape[1]
            cache.kv[:, :s] = latent.detach()
            cache.pe[:, :s] = k_pe.detach()
        k, v = self._expand(latent, k_pe)
        q = torch.cat([q_nope, q_pe], dim=-1)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=self.softmax_scale
        )
        return self.wo(out.transpose(1, 2).flatten(2))

    # --- decode ---

    def decode(
        self, x: torch.Tensor, cache: LatentKVCache, start_pos: int, form: DecodeForm = "absorbed"
    ) -> torch.Tensor:
        """New tokens ``x [B, S, D]`` at positions start_pos.. against the cache, which they extend."""
        s = x.shape[1]
        end = start_pos + s
        q_nope, q_pe = self._queries(x, start_pos)
        latent, k_pe = self._latent(x, start_pos)
        cache.kv[:, start_pos:end] = latent
        cache.pe[:, start_pos:end] = k_pe
        kv, pe = cache.kv[:, :end], cache.pe[:, :end]
        mask = causal_block_mask(s, end, x.device) if s > 1 else None
        if form == "absorbed":
            out = self._absorbed_attention(q_nope, q_pe, kv, pe, mask)
        elif form == "naive":
            k, v = self._expand(kv, pe)
            q = torch.cat([q_nope, q_pe], dim=-1)
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, scale=self.softmax_scale
            ).transpose(1, 2)
        else:
            raise ValueError(f"unknown decode form {form!r}")
        return self.wo(out.flatten(2))

    def _absorbed_attention(self, q_nope, q_pe, kv_BTC, pe_BTR, mask) -> torch.Tensor:
        w = self.wkv_b.weight.view(self.n_heads, self.nope + self.v_dim, -1)  # [H, P+V, C]
        q_lat = torch.einsum("bshp,hpc->bshc", q_nope, w[:, : self.nope])  # absorb W_UK into q
        scores = (
            torch.einsum("bshc,btc->bsht", q_lat, kv_BTC) + torch.einsum("bshr,btr->bsht", q_pe, pe_BTR)
        ) * self.softmax_scale
        if mask is not None:
            scores = scores.masked_fill(~mask[None, :, None, :], float("-inf"))
        probs = scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).type_as(q_nope)
        o_lat = torch.einsum("bsht,btc->bshc", probs, kv_BTC)
        return torch.einsum("bshc,hvc->bshv", o_lat, w[:, self.nope :])  # absorb W_UV into the output
