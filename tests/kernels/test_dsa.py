"""kernels.dsa: the lightning indexer and sparse MLA against float64 references, and their FLOPs.

The reference is dense: per-head keys and values expanded from every cached latent (MLA's naive
form), a full score matrix, everything but the indexer's selection masked to -inf.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernels.args import ModelArgs, SparseAttentionArgs
from kernels.dsa import IndexerKeyCache, LightningIndexer, SparseMLA, quantize_fp8_blocks, select_topk
from kernels.mla import MLA, LatentKVCache
from meter.analytic import sparse_attention as S

TOPK = 6


def small_args(topk: int = TOPK) -> ModelArgs:
    """V3.2-shaped, CPU-sized: MLA with a query LoRA, an indexer of 4 heads x 16 dims."""
    return ModelArgs(
        vocab_size=64,
        dim=64,
        n_layers=1,
        n_heads=4,
        inter_dim=128,
        q_lora_rank=32,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=8,
        v_head_dim=8,
        sparse_attention=SparseAttentionArgs(index_n_heads=4, index_head_dim=16, index_topk=topk, index_quant_block=8),
    )


def layer(a: ModelArgs, max_len: int = 32, *, seed: int = 0, dtype=torch.float64, fp8: bool = False) -> SparseMLA:
    torch.manual_seed(seed)
    m = SparseMLA(a, max_len, dtype=dtype, index_fp8=fp8)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    return m


def dense_reference(m: SparseMLA, x: torch.Tensor, allowed_BST: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Naive MLA over every position with the attention restricted to ``allowed`` (-inf elsewhere).

    ``x`` holds every position's hidden state from 0; the outputs of the last S = allowed.shape[1]
    positions are returned.
    """
    mla = m.mla
    t = x.shape[1]
    s = allowed_BST.shape[1]
    q_nope, q_pe = mla._queries(x, 0)
    latent, k_pe = mla._latent(x, 0)
    k, v = mla._expand(latent, k_pe)  # [B, T, H, *]
    q = torch.cat([q_nope, q_pe], dim=-1)[:, t - s :]
    scores = torch.einsum("bshd,bthd->bhst", q, k) * mla.softmax_scale
    scores = scores.masked_fill(~allowed_BST[:, None], float("-inf"))
    out = torch.einsum("bhst,bthv->bshv", scores.softmax(-1), v)
    return mla.wo(out.flatten(2))


def allowed_from(idx: torch.Tensor, valid: torch.Tensor, t: int) -> torch.Tensor:
    hits = torch.zeros(*idx.shape[:2], t, dtype=torch.long)
    return hits.scatter_add(-1, idx, valid.long()) > 0  # an invalid slot adds nothing where it points


def test_index_scores_follow_the_paper_formula():
    a = small_args()
    torch.manual_seed(1)
    q, w, k = (
        torch.randn(2, 3, 4, 16, dtype=torch.float64),
        torch.randn(2, 3, 4, dtype=torch.float64),
        torch.randn(2, 5, 16, dtype=torch.float64),
    )
    got = LightningIndexer.scores(q, w, k)
    want = torch.zeros(2, 3, 5, dtype=torch.float64)
    for b in range(2):
        for t in range(3):
            for s in range(5):
                want[b, t, s] = sum(w[b, t, j] * torch.relu(q[b, t, j] @ k[b, s]) for j in range(4))
    torch.testing.assert_close(got, want)
    assert a.sparse_attention.index_topk == TOPK


def test_topk_keeps_the_best_visible_tokens_and_marks_short_rows():
    scores = torch.tensor([[[5.0, 1.0, 3.0, 9.0], [2.0, 7.0, 1.0, 8.0]]])
    mask = torch.tensor([[[True, False, False, False], [True, True, True, False]]])
    idx, valid = select_topk(scores, mask, 2)
    assert idx[0, 0, 0] == 0 and valid[0, 0].tolist() == [True, False]  # one visible token
    assert sorted(idx[0, 1].tolist()) == [0, 1] and valid[0, 1].all()  # 9 and 8 are in the future


@pytest.mark.parametrize("s", [5, 20])  # shorter than top-k (dense), and longer (sparse)
def test_prefill_equals_the_dense_reference_on_the_selected_tokens(s: int):
    a = small_args()
    m = layer(a)
    x = torch.randn(2, s, a.dim, dtype=torch.float64)
    out, idx, valid = m.forward_with_indices(x)
    assert idx.shape == (2, s, min(TOPK, s))
    # every selected token is visible: no query picks its future
    positions = torch.arange(s)[None, :, None]
    assert (idx[valid] <= positions.expand_as(idx)[valid]).all()
    assert valid.sum(-1).tolist() == [[min(t + 1, TOPK) for t in range(s)]] * 2
    torch.testing.assert_close(out, dense_reference(m, x, allowed_from(idx, valid, s)), rtol=1e-10, atol=1e-10)


def test_with_topk_above_the_sequence_it_is_plain_mla():
    a = small_args(topk=64)
    m = layer(a)
    x = torch.randn(2, 12, a.dim, dtype=torch.float64)
    dense = MLA(a, 32, dtype=torch.float64)
    dense.load_state_dict(m.mla.state_dict())
    torch.testing.assert_close(m(x), dense(x), rtol=1e-10, atol=1e-10)


def test_decode_equals_the_reference_and_the_prefill_of_the_whole_sequence():
    a = small_args()
    m = layer(a)
    b, prompt, new = 2, 14, 3
    x = torch.randn(b, prompt + new, a.dim, dtype=torch.float64)
    cache = LatentKVCache(b, 32, a, torch.float64)
    keys = IndexerKeyCache(b, 32, a, torch.float64)
    m(x[:, :prompt], cache, keys)
    outs = []
    for i in range(new):
        pos = prompt + i
        out, idx, valid = m.decode_with_indices(x[:, pos : pos + 1], cache, keys, pos)
        assert idx.shape == (b, 1, TOPK) and valid.all()
        ref = dense_reference(m, x[:, : pos + 1], allowed_from(idx, valid, pos + 1))
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
        outs.append(out)
    # decoding token by token selects and attends as the prefill of the whole sequence does
    torch.testing.assert_close(torch.cat(outs, 1), m(x)[:, prompt:], rtol=1e-10, atol=1e-10)


def test_fp8_scores_stay_close_and_select_nearly_the_same_tokens():
    a = small_args()
    torch.manual_seed(3)
    x = torch.randn(4, 8, 16)
    q = quantize_fp8_blocks(x, 8)
    assert ((q - x).abs() <= x.abs().amax(-1, keepdim=True) / 8).all()  # e4m3: 3 mantissa bits
    exact, fp8 = layer(a), layer(a, fp8=True)
    fp8.load_state_dict(exact.state_dict())
    h = torch.randn(1, 24, a.dim, dtype=torch.float64)
    scores = []
    for m in (exact, fp8):
        *_, iq, iw, ik = m._project(h, 0)
        scores.append(LightningIndexer.scores(iq, iw, ik))
    assert (scores[1] - scores[0]).abs().max() < 0.1 * scores[0].abs().max()
    _, i_exact, _ = exact.forward_with_indices(h)
    _, i_fp8, _ = fp8.forward_with_indices(h)
    overlap = [len(set(i_exact[0, t].tolist()) & set(i_fp8[0, t].tolist())) for t in range(TOPK, 24)]
    assert sum(overlap) >= 0.8 * TOPK * len(overlap)  # most selections survive the rounding


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fn()
    return counter.get_total_flops()


def analytic_args(a: ModelArgs) -> ModelArgs:
    # the analytic model counts one layer's work; n_layers is irrelevant at the layer level
    return dataclasses.replace(a, n_layers=1)


@pytest.mark.parametrize("s", [4, 20])
def test_flop_counter_agrees_with_the_analytic_prefill_count(s: int):
    a = small_args()
    m = layer(a, dtype=torch.float32)
    x = torch.randn(3, s, a.dim)
    counted = _counted(lambda: m(x))
    assert counted == S.dsa_layer_flops(analytic_args(a), batch=3, q_len=s, pairs="full")


def test_flop_counter_agrees_with_the_analytic_decode_count():
    a = small_args()
    m = layer(a, dtype=torch.float32)
    b, ctx = 2, 25
    cache, keys = LatentKVCache(b, 32, a, torch.float32), IndexerKeyCache(b, 32, a, torch.float32)
    x = torch.randn(b, 1, a.dim)
    counted = _counted(lambda: m.decode(x, cache, keys, ctx - 1))
    want = S.dsa_layer_flops(analytic_args(a), batch=b, q_len=1, kv_len=ctx, pairs="full")
    assert counted == want
    # and the per-token decode count of the whole-model analytic equals one layer's, per token
    per_token = S.attention_per_token(a, ctx, "decode")
    assert per_token.projections_flops + per_token.core_flops + per_token.indexer_flops == want / b


def test_causal_count_is_the_triangle_of_the_full_one():
    a = small_args()
    full, causal = (S.dsa_layer_flops(a, batch=1, q_len=50, pairs=p) for p in ("full", "causal"))
    idx_pair = 2 * 4 * 16 + 2 * 4
    sparse_pair = 2 * 4 * (2 * 16 + 8)
    # 50 queries: the indexer's 50 x 50 square against its triangle (50^2 / 2); the sparse part's
    # 50 x 6 slots against the capped triangle (6^2 / 2 + 44 x 6)
    assert full - causal == idx_pair * (50 * 50 - 50 * 50 / 2) + sparse_pair * (50 * 6 - (6 * 6 / 2 + 44 * 6))
