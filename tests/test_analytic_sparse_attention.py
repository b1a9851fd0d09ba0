"""The analytic model of DeepSeek-V3.2's sparse attention and DeepSeek-V4's compressed attention.

Expected values are written from the published descriptions (V3.2-Exp paper and code, FlashMLA,
the V4 config fields; shared/reference/dsa-v4-facts.md), not from meter's output.
"""

from __future__ import annotations

import pytest

from meter.analytic import flops as F
from meter.analytic import memory as M
from meter.analytic import sparse_attention as S
from meter.analytic.params import count_params
from meter.config.models import load_model


@pytest.fixture(scope="module")
def v3():
    return load_model("deepseek-v3").args


@pytest.fixture(scope="module")
def v32():
    return load_model("deepseek-v3.2").args


@pytest.fixture(scope="module")
def pro():
    return load_model("deepseek-v4-pro").args


@pytest.fixture(scope="module")
def flash():
    return load_model("deepseek-v4-flash").args


def test_mean_causal_is_the_triangle_and_the_capped_triangle():
    assert S.mean_causal(4096) == 2048  # Megatron's s/2
    assert S.mean_causal(1000, 1.0, 2048) == 500  # under the cap: still the triangle
    # L = 8192, cap 2048: sum = 2048^2/2 + (8192 - 2048) * 2048, over 8192 queries
    assert S.mean_causal(8192, 1.0, 2048) == pytest.approx((2048**2 / 2 + 6144 * 2048) / 8192)
    assert S.mean_causal(8192, 0.25) == 1024


@pytest.mark.parametrize("context", [1024, 2048, 131072])
def test_v32_decode_attention_per_layer(v32, context):
    att = S.attention_per_token(v32, context, "decode")
    per_layer = {p.name: p.flops / v32.n_layers for p in att.parts}
    # indexer: 64 heads x 128 dims dot products + the 64 weighted ReLU terms, over every token
    assert per_layer["indexer"] == (2 * 64 * 128 + 2 * 64) * context
    # sparse MLA in MQA form: 2 x 128 heads x (576 + 512) over min(L, 2048) tokens
    assert per_layer["sparse attention"] == 2 * 128 * (576 + 512) * min(context, 2048)


def test_v32_decode_is_flat_in_attention_and_linear_in_the_indexer(v32, v3):
    short, long = (F.decode_flops_per_token(v32, n) for n in (65536, 131072))
    assert short.attention_core == long.attention_core  # top-k: O(k) per token
    assert long.indexer == pytest.approx(2 * short.indexer)  # O(L) per token, O(L^2) per sequence
    # the dense baseline at 128K: 2 x 128 x 1088 x L per layer
    assert F.decode_flops_per_token(v3, 131072).attention_core == 61 * 278528 * 131072
    # weights are the same apart from the indexer's projections
    assert long.gemm - F.decode_flops_per_token(v3, 131072).gemm == pytest.approx(
        61 * 2 * (1536 * 64 * 128 + 7168 * 128 + 7168 * 64)
    )


def test_v32_prefill_takes_the_cheaper_form(v32):
    short, long = S.attention_per_token(v32, 1024, "prefill"), S.attention_per_token(v32, 131072, "prefill")
    assert short.prefill_mode == "masked MHA" and long.prefill_mode == "sparse MQA"
    # masked MHA: every causal pair (L/2 on average) in MHA form, 2 x 128 x (192 + 128)
    assert short.core_flops == 61 * 2 * 128 * 320 * 512


def test_v32_kv_bytes_follow_flashmla_and_the_indexer(v32):
    # 61 layers x (656 + 132)
    assert M.kv_cache_bytes_per_token(v32, 1) == 61 * (656 + 132) == 48068
    assert M.kv_cache_bytes_per_token(v32, 2) == 61 * (576 * 2 + 132)
    # a decoded token at 128K reads every indexer key and 2048 MLA entries per layer
    assert S.decode_kv_read_bytes(v32, 131072, 1) == 61 * (131072 * 132 + 2048 * 656)


def test_v4_decode_attention_counts_each_layer_type(pro):
    L = 1048576
    att = S.attention_per_token(pro, L, "decode")
    parts = {p.name: p for p in att.parts}
    per_entry = 4 * 128 * 512  # QK and AV over one 512-wide head shared by 128 query heads
    assert parts["sliding window"].entries == 61 * 128
    assert parts["compressed, top-k"].entries == 30 * 1024  # 30 ratio-4 layers, L/4 > top-k
    assert parts["compressed, all"].entries == 31 * (L // 128)
    assert parts["indexer"].entries == 30 * (L // 4)
    assert att.core_flops == per_entry * (61 * 128 + 30 * 1024 + 31 * (L // 128))
    assert parts["indexer"].basis == S.READING and parts["sliding window"].basis == S.PUBLISHED


def test_v4_kv_cache(pro, flash):
    L = 1048576
    kv = S.kv_cache(pro, L, 1)
    assert kv.window_bytes == 61 * 128 * 584  # a fixed window per layer
    assert kv.attention_bytes == 30 * (L // 4) * 584 + 31 * (L // 128) * 584
    assert kv.indexer_bytes == 30 * (L // 4) * 132
    # Flash's two window-only layers keep no compressed entries
    assert S.kv_cache(flash, L, 1).attention_bytes == 21 * (L // 4) * 584 + 20 * (L // 128) * 584


@pytest.mark.parametrize(
    ("name", "total", "active"),
    # Published: V4-Pro 1.6T / 49B, V4-Flash 284B / 13B (the release, as reported; see the model YAMLs)
    [("deepseek-v4-pro", 1.6e12, 49e9), ("deepseek-v4-flash", 284e9, 13e9)],
)
def test_v4_parameter_counts_near_the_published_ones(name, total, active):
    p = count_params(load_model(name).args)
    # "1.6T" is rounded to two figures: within 2.5%; the others within 2.5% too (13B is 2 figures)
    assert p.total == pytest.approx(total, rel=0.025)
    assert p.active == pytest.approx(active, rel=0.025)


# DeepSeek, V4 release (as reported: blog.earezki.com 2026-04-24 for Pro; S5 Labs, 2026-05-13, for
# Flash and Pro): at 1M tokens, V4-Pro needs 27% of V3.2's single-token inference FLOPs and 10% of
# its KV cache; V4-Flash 10% and 7%.
PUBLISHED_1M = {"deepseek-v4-pro": (0.27, 0.10), "deepseek-v4-flash": (0.10, 0.07)}
# meter's own figures (total decode FLOPs per token and cache bytes per token at 1,048,576 tokens,
# fp8 caches on both sides), pinned so that a change to the model shows up here.
METER_1M = {"deepseek-v4-pro": (0.261, 0.115), "deepseek-v4-flash": (0.121, 0.080)}


@pytest.mark.parametrize("name", sorted(PUBLISHED_1M))
def test_v4_to_v32_ratios_at_1m_beside_the_published_ones(v32, name):
    a = load_model(name).args
    L = 1048576
    flops = F.decode_flops_per_token(a, L).total / F.decode_flops_per_token(v32, L).total
    kv = S.kv_cache(a, L, 1).total_bytes / S.kv_cache(v32, L, 1).total_bytes
    assert (flops, kv) == pytest.approx(METER_1M[name], abs=0.0005)
    published_flops, published_kv = PUBLISHED_1M[name]
    # meter's reading lands within a few points of DeepSeek's figures, never an order off
    assert abs(flops - published_flops) < 0.03 and abs(kv - published_kv) < 0.02


def _cli(argv: list[str]) -> str:
    import contextlib
    import io

    from meter.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def test_meter_flops_shows_the_parts_and_their_basis():
    import json

    r = json.loads(_cli(["flops", "deepseek-v3.2", "--context", "131072", "--json"]))
    sa = r["sparse_attention"]
    assert sa["form"] == "dsa"
    decode = {p["name"]: p for p in sa["decode"]["parts"]}
    assert decode["indexer"]["flops"] == 61 * 16512 * 131072 and decode["indexer"]["basis"] == "published"
    assert r["flops"]["decode"]["indexer"] == decode["indexer"]["flops"]
    assert sa["kv_cache"]["per_token_bytes"] == 61 * (1152 + 132)  # bf16 MLA entries by default
    text = _cli(["flops", "deepseek-v4-pro", "--context", "1048576", "--dtype", "fp8"])
    assert "Compressed attention (DeepSeek-V4)" in text and "meter's reading" in text and "published" in text
    assert json.loads(_cli(["flops", "deepseek-v3", "--json"]))["sparse_attention"] is None
