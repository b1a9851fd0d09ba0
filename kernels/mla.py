"""Multi-head latent attention (MLA), as in DeepSeek-V2/V3.

Queries go through a low-rank path (``wq_a`` -> norm -> ``wq_b``; a plain ``wq`` when
``q_lora_rank`` is 0). Keys and values are compressed into one latent of ``kv_lora_rank`` values
(normalised), plus a decoupled RoPE key of ``qk_rope_head_dim`` values shared by all heads. Decode
caches only those ``kv_lora_rank + qk_rope_head_dim`` values per token (576 for V3). RoPE is
YaRN-extended, as in DeepSeek's reference, when the layer is built for more positions than the
model's ``original_seq_len`` (see :mod:`kernels.rope`).

Decode forms, all against that latent cache:

- ``naive``: up-project the cached latent into per-head keys and values (``wkv_b``) at every step,
  then ordinary attention;
- ``absorbed``: fold ``wkv_b``'s key half into the query and its value half into the output, so
  attention runs over the latent directly: MQA with one 576-wide key and a 512-wide value. In
  eager PyTorch the ``B x H x T`` scores go through memory and the cache is read twice;
- ``fused``: the absorbed form with its attention in one Triton kernel
  (:mod:`kernels.triton.mla_decode`) that reads each cache tile once; needs the ``triton`` extra
  and a CUDA GPU (or ``TRITON_INTERPRET=1``).

The cache is a :class:`LatentKVCache` (contiguous ``[B, T_max]``) or a
:class:`kernels.paged.PagedLatentKVCache` (pages and a block table). ``start_pos`` is one int for
the whole batch, or an int tensor ``[B]`` for a ragged batch of sequences at different positions.

Shape legend: B batch, S new positions, T cached positions, D model dim, H heads, C kv_lora_rank,
R qk_rope_head_dim, P qk_nope_head_dim, V v_head_dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernels.args import MlaDecodeForm, ModelArgs
from kernels.dense import causal_block_mask
from kernels.paged import PagedLatentKVCache
from kernels.rope import Yarn, apply_rope, rope_cache

DECODE_FORMS: tuple[str, ...] = ("absorbed", "naive", "fused")
Positions = int | torch.Tensor  # one start position for the batch, or [B, S] positions


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
        # As a paged cache, each sequence is one page of T_max positions.
        self.register_buffer(
            "block_table", torch.arange(batch, dtype=torch.int32, device=device)[:, None], persistent=False
        )

    @property
    def bytes_per_token(self) -> int:
        return (self.kv.shape[-1] + self.pe.shape[-1]) * self.kv.element_size()

    @property
    def capacity(self) -> int:
        return self.kv.shape[1]

    def write(self, positions_BS: torch.Tensor, latent_BSC: torch.Tensor, k_pe_BSR: torch.Tensor) -> None:
        rows = torch.arange(self.kv.shape[0], device=self.kv.device)[:, None]
        self.kv[rows, positions_BS] = latent_BSC
        self.pe[rows, positions_BS] = k_pe_BSR

    def dense(self, lengths_B: torch.Tensor, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, max_len, C]`` and ``[B, max_len, R]``, zero past each length (a copy)."""
        valid = (torch.arange(max_len, device=self.kv.device)[None, :] < lengths_B[:, None])[..., None]
        zero = torch.zeros((), dtype=self.kv.dtype, device=self.kv.device)
        return torch.where(valid, self.kv[:, :max_len], zero), torch.where(valid, self.pe[:, :max_len], zero)

    def pages(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(kv, pe, block_table)`` as the fused decode kernel takes them."""
        return self.kv, self.pe, self.block_table


Cache = LatentKVCache | PagedLatentKVCache


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
        yarn = Yarn(a.original_seq_len, a.rope_factor, a.beta_fast, a.beta_slow, a.mscale)
        self.yarn = yarn.applies(max_seq_len)
        self.softmax_scale = self.qk_dim**-0.5 * (yarn.softmax_scale_factor if self.yarn else 1.0)
        cos, sin = rope_cache(self.rope, max_seq_len, a.rope_theta, device=device, yarn=yarn)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    # --- shared pieces ---

    def _queries(self, x: torch.Tensor, pos: Positions) -> tuple[torch.Tensor, torch.Tensor]:
        """(q_nope [B, S, H, P], q_pe [B, S, H, R]) with RoPE applied."""
        b, s, _ = x.shape
        q = self.wq_b(self.q_norm(self.wq_a(x))) if self.args.q_lora_rank else self.wq(x)
        q_nope, q_pe = q.view(b, s, self.n_heads, self.qk_dim).split([self.nope, self.rope], dim=-1)
        return q_nope, apply_rope(q_pe, *self._rope(pos, s))

    def _latent(self, x: torch.Tensor, pos: Positions) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised latent [B, S, C], RoPE key [B, S, R])."""
        kv, k_pe = self.wkv_a(x).split([self.args.kv_lora_rank, self.rope], dim=-1)
        k_pe = apply_rope(k_pe.unsqueeze(2), *self._rope(pos, x.shape[1])).squeeze(2)
        return self.kv_norm(kv), k_pe

    def _rope(self, pos: Positions, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin ``[S, R/2]`` from one start position, or ``[B, S, R/2]`` from per-sequence positions."""
        if isinstance(pos, int):
            return self.cos[pos : pos + length], self.sin[pos : pos + length]
        return self.cos[pos], self.sin[pos]

    def _expand(self, latent: torch.Tensor, k_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head keys [B, T, H, P+R] and values [B, T, H, V] from the latent (the naive form)."""
        b, t, _ = latent.shape
        k_nope, v = (
            self.wkv_b(latent).view(b, t, self.n_heads, self.nope + self.v_dim).split([self.nope, self.v_dim], dim=-1)
        )
        k = torch.cat([k_nope, k_pe.unsqueeze(2).expand(-1, -1, self.n_heads, -1)], dim=-1)
        return k, v

    def _w_kv_b(self) -> torch.Tensor:
        return self.wkv_b.weight.view(self.n_heads, self.nope + self.v_dim, -1)  # [H, P+V, C]

    def _absorb_query(self, q_nope: torch.Tensor) -> torch.Tensor:
        """``q_lat [B, S, H, C]``: W_UK folded into the query."""
        return torch.einsum("bshp,hpc->bshc", q_nope, self._w_kv_b()[:, : self.nope])

    def _absorb_output(self, o_lat: torch.Tensor) -> torch.Tensor:
        """Per-head values ``[B, S, H, V]`` from the latent output: W_UV folded into the output."""
        return torch.einsum("bshc,hvc->bshv", o_lat, self._w_kv_b()[:, self.nope :])

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
        self,
        x: torch.Tensor,
        cache: Cache,
        start_pos: int | torch.Tensor,
        form: MlaDecodeForm = "absorbed",
        plan=None,
    ) -> torch.Tensor:
        """New tokens ``x [B, S, D]`` at positions start_pos.. against the cache, which they extend.

        ``start_pos`` is an int (the whole batch at one position) or an int tensor ``[B]`` (each
        sequence at its own). ``plan`` (a :class:`kernels.triton.plan.DecodePlan`) overrides the
        fused kernel's tile sizes and splits; the other forms ignore it.
        """
        if form not in DECODE_FORMS:
            raise ValueError(f"unknown decode form {form!r}")
        b, s, _ = x.shape
        if isinstance(start_pos, int):
            pos: Positions = start_pos
            positions = None
        else:
            positions = start_pos.to(device=x.device, dtype=torch.long)[:, None] + torch.arange(s, device=x.device)
            pos = positions
        q_nope, q_pe = self._queries(x, pos)
        latent, k_pe = self._latent(x, pos)
        self._write(cache, positions, start_pos, latent, k_pe)
        if form == "fused":
            lengths = (
                torch.full((b,), start_pos + s, dtype=torch.int32, device=x.device)
                if positions is None
                else (positions[:, -1] + 1).to(torch.int32)
            )
            out = self._fused_attention(q_nope, q_pe, cache, lengths, plan)
        else:
            kv, pe, mask = self._dense_cache(cache, positions, start_pos, s)
            if form == "absorbed":
                out = self._absorbed_attention(q_nope, q_pe, kv, pe, mask)
            else:
                k, v = self._expand(kv, pe)
                q = torch.cat([q_nope, q_pe], dim=-1)
                out = F.scaled_dot_product_attention(
                    q.transpose(1, 2),
                    k.transpose(1, 2),
                    v.transpose(1, 2),
                    attn_mask=None if mask is None else mask[:, None],
                    scale=self.softmax_scale,
                ).transpose(1, 2)
        return self.wo(out.flatten(2))

    @staticmethod
    def _write(cache: Cache, positions, start_pos, latent, k_pe) -> None:
        if positions is None and isinstance(cache, LatentKVCache):  # slices: no index tensors on the hot path
            end = start_pos + latent.shape[1]
            cache.kv[:, start_pos:end] = latent
            cache.pe[:, start_pos:end] = k_pe
            return
        if positions is None:
            positions = start_pos + torch.arange(latent.shape[1], device=latent.device).expand(latent.shape[0], -1)
        cache.write(positions, latent, k_pe)

    @staticmethod
    def _dense_cache(cache: Cache, positions, start_pos, s: int):
        """``(kv [B, T, C], pe [B, T, R], mask [B or 1, S, T] or None)`` for the eager forms.

        One start position over a contiguous cache gives views of the first ``start_pos + s``
        positions (no copy), as before ragged batches existed. Otherwise the cache is copied out to
        its capacity, zero past each sequence's length (a page past the end may hold anything),
        and the mask lets each token see its own sequence up to itself.
        """
        if positions is None:
            end = start_pos + s
            mask = causal_block_mask(s, end, cache.kv.device)[None] if s > 1 else None
            if isinstance(cache, LatentKVCache):
                return cache.kv[:, :end], cache.pe[:, :end], mask
            lengths = torch.full((cache.block_table.shape[0],), end, device=cache.kv.device)
            return (*cache.dense(lengths, end), mask)
        t = cache.capacity
        kv, pe = cache.dense(positions[:, -1] + 1, t)
        mask = torch.arange(t, device=positions.device)[None, None, :] <= positions[..., None]
        return kv, pe, mask

    def _absorbed_attention(self, q_nope, q_pe, kv_BTC, pe_BTR, mask) -> torch.Tensor:
        q_lat = self._absorb_query(q_nope)
        scores = (
            torch.einsum("bshc,btc->bsht", q_lat, kv_BTC) + torch.einsum("bshr,btr->bsht", q_pe, pe_BTR)
        ) * self.softmax_scale
        if mask is not None:
            scores = scores.masked_fill(~mask[:, :, None, :], float("-inf"))
        probs = scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).type_as(q_nope)
        o_lat = torch.einsum("bsht,btc->bshc", probs, kv_BTC)
        return self._absorb_output(o_lat)

    def _fused_attention(self, q_nope, q_pe, cache: Cache, lengths_B: torch.Tensor, plan) -> torch.Tensor:
        from kernels.triton import FusedUnavailable, fused_decode_unavailable

        why = fused_decode_unavailable(q_nope.device.type)
        if why:
            raise FusedUnavailable(why)
        from kernels.triton.mla_decode import mla_decode

        kv, pe, block_table = cache.pages()
        o_lat = mla_decode(
            self._absorb_query(q_nope).contiguous(),
            q_pe.contiguous(),
            kv,
            pe,
            block_table,
            lengths_B,
            self.softmax_scale,
            plan,
        )
        return self._absorb_output(o_lat)
