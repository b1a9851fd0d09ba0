"""Dense layers: SwiGLU FFN and grouped-query attention (GQA), for dense models such as Llama.

Shapes: B batch, S new positions, T cached positions, D model dim, H query heads, G KV heads,
Dh head dim, F FFN hidden dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernels.args import ModelArgs
from kernels.rope import apply_rope, rope_cache


class SwiGLU(nn.Module):
    """``w2(silu(w1 x) * w3 x)``; w1 and w3 are one fused [2F, D] projection (one GEMM, not two)."""

    def __init__(self, dim: int, hidden: int, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.hidden = hidden
        self.w13 = nn.Linear(dim, 2 * hidden, bias=False, dtype=dtype, device=device)
        self.w2 = nn.Linear(hidden, dim, bias=False, dtype=dtype, device=device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x).split(self.hidden, dim=-1)
        return self.w2(F.silu(gate) * up)


class KVCache(nn.Module):
    """Per-head K and V for GQA decode: ``[B, T_max, G, Dh]`` each."""

    def __init__(self, batch: int, max_len: int, n_kv_heads: int, head_dim: int, dtype: torch.dtype, device=None):
        super().__init__()
        self.register_buffer(
            "k", torch.zeros(batch, max_len, n_kv_heads, head_dim, dtype=dtype, device=device), persistent=False
        )
        self.register_buffer(
            "v", torch.zeros(batch, max_len, n_kv_heads, head_dim, dtype=dtype, device=device), persistent=False
        )


class GQAttention(nn.Module):
    """Grouped-query attention with RoPE; causal SDPA for training/prefill, a KV cache for decode."""

    def __init__(self, args: ModelArgs, max_seq_len: int, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        if args.attention != "gqa":
            raise ValueError("GQAttention needs a GQA model (kv_lora_rank == 0)")
        self.n_heads, self.n_kv_heads, self.head_dim = args.n_heads, args.n_kv_heads, args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False, dtype=dtype, device=device)
        self.wkv = nn.Linear(args.dim, 2 * args.n_kv_heads * args.head_dim, bias=False, dtype=dtype, device=device)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False, dtype=dtype, device=device)
        cos, sin = rope_cache(args.head_dim, max_seq_len, args.rope_theta, device=device)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _project(self, x: torch.Tensor, start_pos: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, s, _ = x.shape
        q = self.wq(x).view(b, s, self.n_heads, self.head_dim)
        k, v = self.wkv(x).view(b, s, 2, self.n_kv_heads, self.head_dim).unbind(2)
        cos, sin = self.cos[start_pos : start_pos + s], self.sin[start_pos : start_pos + s]
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Causal attention over the whole sequence: ``x [B, S, D] -> [B, S, D]``."""
        q, k, v = self._project(x, 0)
        out = _sdpa_gqa(q, k, v, causal=True)
        return self.wo(out.flatten(2))

    def decode(self, x: torch.Tensor, cache: KVCache, start_pos: int) -> torch.Tensor:
        """``x [B, S_new, D]`` at positions start_pos.. against the cache (which it extends)."""
        q, k, v = self._project(x, start_pos)
        end = start_pos + x.shape[1]
        cache.k[:, start_pos:end] = k
        cache.v[:, start_pos:end] = v
        out = _sdpa_gqa(q, cache.k[:, :end], cache.v[:, :end], causal=True)
        return self.wo(out.flatten(2))


def _sdpa_gqa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """SDPA over [B, S, H, Dh] queries and [B, T, G, Dh] keys/values; queries are the last S of T."""
    s, t = q.shape[1], k.shape[1]
    q, k, v = (z.transpose(1, 2) for z in (q, k, v))
    # enable_gqa lets SDPA share each KV head across its query group without copying K and V.
    gqa = {"enable_gqa": True} if q.shape[1] != k.shape[1] else {}
    if causal and s == t:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
    elif causal and s > 1:
        mask = causal_block_mask(s, t, q.device)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **gqa)
    else:
        out = F.scaled_dot_product_attention(q, k, v, **gqa)
    return out.transpose(1, 2)


def causal_block_mask(s: int, t: int, device) -> torch.Tensor:
    """Boolean mask letting the last ``s`` of ``t`` positions see themselves and everything before."""
    query_pos = torch.arange(t - s, t, device=device)[:, None]
    key_pos = torch.arange(t, device=device)[None, :]
    return key_pos <= query_pos
