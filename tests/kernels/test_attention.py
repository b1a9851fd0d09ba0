"""MLA and GQA against float64 references; decode consistency; FLOPs against FlopCounterMode."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from kernels.dense import GQAttention, KVCache, SwiGLU
from kernels.mla import MLA, LatentKVCache
from meter.analytic.flops import TRAIN_MULTIPLIER, attention_layer_flops, dense_ffn_layer_flops
from tests.kernels import reference
from tests.kernels.configs import MLA_CONFIGS, small_gqa, tiny_v3


def mla_params(layer: MLA) -> dict:
    names = ["wkv_a", "wkv_b", "wo"] + (["wq_a", "wq_b"] if layer.args.q_lora_rank else ["wq"])
    p = {n: getattr(layer, n).weight.detach().double() for n in names}
    p["kv_norm"] = layer.kv_norm.weight.detach().double()
    if layer.args.q_lora_rank:
        p["q_norm"] = layer.q_norm.weight.detach().double()
    return p


def randomize_norms(layer: torch.nn.Module) -> None:
    for m in layer.modules():
        if isinstance(m, torch.nn.RMSNorm):
            torch.nn.init.normal_(m.weight, mean=1.0, std=0.2)


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.detach().double() - ref).norm() / ref.norm())


@pytest.mark.parametrize("config", sorted(MLA_CONFIGS))
def test_mla_matches_float64_reference(config: str):
    a = MLA_CONFIGS[config]()
    torch.manual_seed(10)
    layer = MLA(a, max_seq_len=32)
    randomize_norms(layer)
    x = torch.randn(2, 9, a.dim)
    out = layer(x)
    for b in range(2):
        ref = reference.mla(x[b].double(), mla_params(layer), a)
        assert rel_err(out[b], ref) < 1e-5
        # In float64 the layer is limited only by its RoPE tables, built in float32 (as DeepSeek's are).
        assert rel_err(layer.double()(x[b : b + 1].double())[0], ref) < 1e-7
        layer.float()


@pytest.mark.parametrize("config", sorted(MLA_CONFIGS))
@pytest.mark.parametrize("form", ["absorbed", "naive"])
def test_decode_with_the_latent_cache_equals_the_full_causal_pass(config: str, form: str):
    a = MLA_CONFIGS[config]()
    torch.manual_seed(11)
    layer = MLA(a, max_seq_len=32).double()
    randomize_norms(layer)
    x = torch.randn(3, 12, a.dim, dtype=torch.float64)
    full = layer(x)
    cache = LatentKVCache(3, 32, a, torch.float64)
    layer(x[:, :9], cache=cache)  # prefill fills the cache
    one = layer.decode(x[:, 9:10], cache, 9, form)  # one token
    two = layer.decode(x[:, 10:12], cache, 10, form)  # two tokens at once (MTP-style)
    torch.testing.assert_close(one[:, 0], full[:, 9], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(two, full[:, 10:12], rtol=1e-10, atol=1e-10)
    assert cache.bytes_per_token == (a.kv_lora_rank + a.qk_rope_head_dim) * 8


def test_absorbed_decode_equals_naive_decode():
    a = tiny_v3()
    torch.manual_seed(12)
    layer = MLA(a, max_seq_len=64)
    randomize_norms(layer)
    cache = LatentKVCache(4, 64, a, torch.float32)
    cache.kv.normal_()
    cache.pe.normal_()
    x = torch.randn(4, 1, a.dim)
    naive = layer.decode(x, cache, 40, "naive")
    absorbed = layer.decode(x, cache, 40, "absorbed")
    assert rel_err(absorbed, naive.detach().double()) < 1e-5


def test_mla_gradients_reach_every_parameter():
    a = tiny_v3()
    layer = MLA(a, max_seq_len=16)
    x = torch.randn(2, 16, a.dim, requires_grad=True)
    y = layer(x)
    y.backward(torch.randn_like(y))
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def gqa_params(layer: GQAttention, a) -> dict:
    kv = layer.wkv.weight.detach().double().view(2, a.n_kv_heads * a.head_dim, a.dim)
    return {"wq": layer.wq.weight.detach().double(), "wk": kv[0], "wv": kv[1], "wo": layer.wo.weight.detach().double()}


def test_gqa_matches_float64_reference_and_decodes_consistently():
    a = small_gqa()
    torch.manual_seed(13)
    layer = GQAttention(a, max_seq_len=32)
    x = torch.randn(2, 10, a.dim)
    out = layer(x)
    assert rel_err(out[0], reference.gqa(x[0].double(), gqa_params(layer, a), a)) < 1e-5
    layer = layer.double()
    x = x.double()
    full = layer(x)
    cache = KVCache(2, 32, a.n_kv_heads, a.head_dim, torch.float64)
    layer.decode(x[:, :7], cache, 0)
    torch.testing.assert_close(layer.decode(x[:, 7:8], cache, 7)[:, 0], full[:, 7])
    torch.testing.assert_close(layer.decode(x[:, 8:10], cache, 8), full[:, 8:10])


def test_swiglu_matches_reference_and_gets_gradients():
    a = small_gqa()
    torch.manual_seed(14)
    ffn = SwiGLU(a.dim, a.inter_dim)
    x = torch.randn(5, a.dim, requires_grad=True)
    w13 = ffn.w13.weight.detach().double()
    ref = reference.swiglu(x.detach().double(), w13[: a.inter_dim], w13[a.inter_dim :], ffn.w2.weight.detach().double())
    y = ffn(x)
    assert rel_err(y, ref) < 1e-5
    y.backward(torch.randn_like(y))
    assert all(p.grad is not None for p in ffn.parameters())


def count_flops(fn) -> int:
    # The math SDPA backend runs attention as matrix products FlopCounterMode can see; it computes
    # the whole score matrix and masks it, so it is compared with pairs="full".
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def train_step(layer, x):
    def step():
        y = layer(x)
        y.backward(torch.randn_like(y))

    return step


@pytest.mark.parametrize("config", sorted(MLA_CONFIGS))
def test_mla_flops_match_the_analytic_model(config: str):
    a = MLA_CONFIGS[config]()
    layer = MLA(a, max_seq_len=64)
    b, s = 2, 24
    x = torch.randn(b, s, a.dim, requires_grad=True)
    analytic = attention_layer_flops(a, batch=b, q_len=s, pairs="full")
    assert count_flops(lambda: layer(x)) == pytest.approx(analytic, rel=0.01)
    assert count_flops(train_step(layer, x)) == pytest.approx(TRAIN_MULTIPLIER * analytic, rel=0.01)


@pytest.mark.parametrize("config", sorted(MLA_CONFIGS))
@pytest.mark.parametrize("form", ["absorbed", "naive"])
def test_mla_decode_flops_match_the_analytic_model(config: str, form: str):
    a = MLA_CONFIGS[config]()
    layer = MLA(a, max_seq_len=64)
    cache = LatentKVCache(3, 64, a, torch.float32)
    cache.kv.normal_()
    cache.pe.normal_()
    x = torch.randn(3, 1, a.dim)
    analytic = attention_layer_flops(a, batch=3, q_len=1, kv_len=50, pairs="full", form=form)
    with torch.no_grad():
        assert count_flops(lambda: layer.decode(x, cache, 49, form)) == pytest.approx(analytic, rel=0.01)


def test_gqa_and_ffn_flops_match_the_analytic_model():
    a = small_gqa()
    layer = GQAttention(a, max_seq_len=64)
    x = torch.randn(2, 20, a.dim, requires_grad=True)
    analytic = attention_layer_flops(a, batch=2, q_len=20, pairs="full")
    assert count_flops(lambda: layer(x)) == pytest.approx(analytic, rel=0.01)
    assert count_flops(train_step(layer, x)) == pytest.approx(TRAIN_MULTIPLIER * analytic, rel=0.01)
    ffn = SwiGLU(a.dim, a.inter_dim)
    assert count_flops(train_step(ffn, x)) == pytest.approx(
        TRAIN_MULTIPLIER * dense_ffn_layer_flops(a, tokens=40), rel=0.01
    )
