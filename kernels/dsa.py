"""DeepSeek Sparse Attention (DSA, DeepSeek-V3.2): a lightning indexer picks the tokens MLA attends.

From the V3.2-Exp paper (eq. 1) and DeepSeek's ``inference/model.py``: for each query token t the
indexer scores every earlier token s as

    I(t, s) = sum_j w(t, j) * ReLU(q(t, j) . k(s))

with ``index_n_heads`` query heads ``q(t, j)`` (``wq_b`` from MLA's normalised query LoRA, RoPE on
the first ``qk_rope_head_dim`` values), one key ``k(s)`` per token shared by the heads (``wk`` and
a LayerNorm), and per-head weights ``w(t, j)`` (``weights_proj``, scaled by H_I^-1/2 and
d_I^-1/2). The ``index_topk`` best-scoring tokens are kept; MLA then attends only those, in its
MQA ("absorbed") form, gathering their latents from the cache.

DeepSeek runs the scores in fp8 (q and k quantised to e4m3 with one float32 scale per 128
values, after a Hadamard rotation that spreads outliers). ``index_fp8=True`` reproduces the
quantisation numerically (quantise, then compute in the layer's dtype), not the fp8 speed; the
rotation is left out (it changes no selection in exact arithmetic: it is orthogonal and applied
to q and k alike).

``torch.utils.flop_counter.FlopCounterMode`` counts the matrix products here: the projections
(``nn.Linear``), the indexer's q.k products and its head-weighted sum (two einsums), and the
sparse attention's three einsums over the gathered tokens; ReLU, top-k, gathers, softmax and
norms count 0. Prefill scores every (query, key) pair and masks the future, and a query with
fewer than top-k earlier tokens still runs its top-k slots (masked): ``dsa_layer_flops(...,
pairs="full")`` in ``meter.analytic.sparse_attention`` counts exactly that.

Shape legend: B batch, S new positions, T cached positions, K selected tokens, H heads,
I indexer heads, E indexer head dim, C kv_lora_rank, R qk_rope_head_dim.
"""

from __future__ import annotations

import torch
from torch import nn

from kernels.args import ModelArgs
from kernels.dense import causal_block_mask
from kernels.mla import MLA, LatentKVCache
from kernels.rope import apply_rope

FP8_E4M3_MAX = 448.0


def quantize_fp8_blocks(x: torch.Tensor, block: int = 128) -> torch.Tensor:
    """``x`` rounded through float8 e4m3 with one float32 scale per ``block`` values of the last
    dimension (DeepSeek's ``act_quant``), returned in ``x``'s dtype."""
    shape = x.shape
    blocks = x.reshape(*shape[:-1], shape[-1] // block, block).float()
    scale = blocks.abs().amax(dim=-1, keepdim=True).clamp(min=1e-12) / FP8_E4M3_MAX
    q = (blocks / scale).to(torch.float8_e4m3fn).float() * scale
    return q.reshape(shape).to(x.dtype)


class IndexerKeyCache(nn.Module):
    """The indexer's keys ``k [B, T_max, E]`` (DeepSeek keeps them in fp8 plus a scale: 132 B a token)."""

    def __init__(self, batch: int, max_len: int, args: ModelArgs, dtype: torch.dtype, device=None):
        super().__init__()
        s = args.sparse_attention
        assert s is not None
        self.register_buffer(
            "k", torch.zeros(batch, max_len, s.index_head_dim, dtype=dtype, device=device), persistent=False
        )


class LightningIndexer(nn.Module):
    def __init__(self, args: ModelArgs, dtype: torch.dtype | None = None, device=None, *, fp8: bool = False):
        super().__init__()
        s = args.sparse_attention
        if s is None:
            raise ValueError("LightningIndexer needs a model with sparse_attention")
        if fp8 and s.index_head_dim % s.index_quant_block:
            raise ValueError("index_head_dim must be a multiple of index_quant_block for fp8 scores")
        self.n_heads, self.head_dim, self.rope = s.index_n_heads, s.index_head_dim, args.qk_rope_head_dim
        self.block, self.fp8 = s.index_quant_block, fp8
        kw = dict(bias=False, dtype=dtype, device=device)
        self.wq_b = nn.Linear(args.q_lora_rank or args.dim, self.n_heads * self.head_dim, **kw)
        self.wk = nn.Linear(args.dim, self.head_dim, **kw)
        self.k_norm = nn.LayerNorm(self.head_dim, dtype=dtype, device=device)
        self.weights_proj = nn.Linear(args.dim, self.n_heads, **kw)
        self.weight_scale = self.n_heads**-0.5 * self.head_dim**-0.5

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        pe, rest = x.split([self.rope, self.head_dim - self.rope], dim=-1)
        return torch.cat([apply_rope(pe, cos, sin), rest], dim=-1)

    def _quant(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_fp8_blocks(x, self.block) if self.fp8 else x

    def keys(self, x_BSD: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``[B, S, E]``: one key per token, shared by the indexer's heads."""
        k = self.k_norm(self.wk(x_BSD))
        return self._quant(self._rope(k.unsqueeze(2), cos, sin).squeeze(2))

    def queries(self, qr_BSQ: torch.Tensor, x_BSD: torch.Tensor, cos, sin) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q [B, S, I, E], w [B, S, I])`` from the query LoRA (or x) and the hidden state."""
        b, s, _ = x_BSD.shape
        q = self._rope(self.wq_b(qr_BSQ).view(b, s, self.n_heads, self.head_dim), cos, sin)
        return self._quant(q), self.weights_proj(x_BSD) * self.weight_scale

    @staticmethod
    def scores(q_BSIE: torch.Tensor, w_BSI: torch.Tensor, k_BTE: torch.Tensor) -> torch.Tensor:
        """``I(t, s) = sum_j w(t, j) ReLU(q(t, j) . k(s))``: ``[B, S, T]``."""
        logits = torch.relu(torch.einsum("bsie,bte->bsit", q_BSIE, k_BTE))
        return torch.einsum("bsit,bsi->bst", logits, w_BSI)


def select_topk(scores_BST: torch.Tensor, mask_BST: torch.Tensor, topk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices [B, S, K], valid [B, S, K])``: the top ``min(topk, T)`` visible tokens of each query;
    a query that sees fewer keeps its extra slots, marked invalid."""
    k = min(topk, scores_BST.shape[-1])
    masked = scores_BST.masked_fill(~mask_BST, float("-inf"))
    values, indices = masked.topk(k, dim=-1)
    return indices, torch.isfinite(values)


class SparseMLA(nn.Module):
    """MLA that attends the lightning indexer's top-k tokens (prefill and decode)."""

    def __init__(
        self, args: ModelArgs, max_seq_len: int, dtype: torch.dtype | None = None, device=None, *, index_fp8=False
    ):
        super().__init__()
        s = args.sparse_attention
        if s is None:
            raise ValueError("SparseMLA needs a model with sparse_attention (DeepSeek-V3.2)")
        self.args, self.topk = args, s.index_topk
        self.mla = MLA(args, max_seq_len, dtype=dtype, device=device)
        self.indexer = LightningIndexer(args, dtype=dtype, device=device, fp8=index_fp8)

    def _project(self, x: torch.Tensor, start: int):
        """Queries, the new latents and the indexer's queries and keys for positions start.."""
        m, a = self.mla, self.args
        b, s, _ = x.shape
        cos, sin = m.cos[start : start + s], m.sin[start : start + s]
        qr = m.q_norm(m.wq_a(x)) if a.q_lora_rank else x
        q = m.wq_b(qr) if a.q_lora_rank else m.wq(x)
        q_nope, q_pe = q.view(b, s, m.n_heads, m.qk_dim).split([m.nope, m.rope], dim=-1)
        q_pe = apply_rope(q_pe, cos, sin)
        latent, k_pe = m._latent(x, start)
        iq, iw = self.indexer.queries(qr, x, cos, sin)
        return q_nope, q_pe, latent, k_pe, iq, iw, self.indexer.keys(x, cos, sin)

    def sparse_attention(self, q_nope, q_pe, kv_BTC, pe_BTR, idx_BSK, valid_BSK) -> torch.Tensor:
        """MLA's MQA form over the gathered tokens: ``[B, S, H, V]``."""
        m = self.mla
        b, s, k = idx_BSK.shape
        rows = torch.arange(b, device=idx_BSK.device)[:, None, None]
        kv, pe = kv_BTC[rows, idx_BSK], pe_BTR[rows, idx_BSK]  # [B, S, K, C], [B, S, K, R]
        q_lat = m._absorb_query(q_nope)
        scores = (torch.einsum("bshc,bskc->bshk", q_lat, kv) + torch.einsum("bshr,bskr->bshk", q_pe, pe)) * (
            m.softmax_scale
        )
        scores = scores.masked_fill(~valid_BSK[:, :, None, :], float("-inf"))
        probs = scores.softmax(dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).type_as(q_nope)
        return m._absorb_output(torch.einsum("bshk,bskc->bshc", probs, kv))

    def forward_with_indices(
        self, x: torch.Tensor, cache: LatentKVCache | None = None, index_cache: IndexerKeyCache | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prefill ``x [B, S, D]``: ``(output, indices, valid)``; fills the caches when given."""
        s = x.shape[1]
        q_nope, q_pe, latent, k_pe, iq, iw, ik = self._project(x, 0)
        if cache is not None:
            cache.kv[:, :s], cache.pe[:, :s] = latent.detach(), k_pe.detach()
        if index_cache is not None:
            index_cache.k[:, :s] = ik.detach()
        mask = causal_block_mask(s, s, x.device)[None]
        idx, valid = select_topk(LightningIndexer.scores(iq, iw, ik), mask, self.topk)
        out = self.sparse_attention(q_nope, q_pe, latent, k_pe, idx, valid)
        return self.mla.wo(out.flatten(2)), idx, valid

    def forward(self, x, cache=None, index_cache=None) -> torch.Tensor:
        return self.forward_with_indices(x, cache, index_cache)[0]

    def decode_with_indices(
        self, x: torch.Tensor, cache: LatentKVCache, index_cache: IndexerKeyCache, start_pos: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """New tokens ``x [B, S, D]`` at positions start_pos.. against the caches, which they extend."""
        s = x.shape[1]
        end = start_pos + s
        q_nope, q_pe, latent, k_pe, iq, iw, ik = self._project(x, start_pos)
        cache.kv[:, start_pos:end], cache.pe[:, start_pos:end] = latent, k_pe
        index_cache.k[:, start_pos:end] = ik
        mask = causal_block_mask(s, end, x.device)[None]
        idx, valid = select_topk(LightningIndexer.scores(iq, iw, index_cache.k[:, :end]), mask, self.topk)
        out = self.sparse_attention(q_nope, q_pe, cache.kv[:, :end], cache.pe[:, :end], idx, valid)
        return self.mla.wo(out.flatten(2)), idx, valid

    def decode(self, x, cache: LatentKVCache, index_cache: IndexerKeyCache, start_pos: int) -> torch.Tensor:
        return self.decode_with_indices(x, cache, index_cache, start_pos)[0]
