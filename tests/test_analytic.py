"""The analytic model reproduces published figures and keeps its conventions.

Published totals are given to a few significant figures, so each check says its tolerance:
within 1% where the figure is precise, within the published rounding where it is a rounded
headline number ("37B activated").
"""

from __future__ import annotations

import dataclasses

import pytest

from kernels.args import ModelArgs
from meter.analytic import flops as F
from meter.analytic import memory as M
from meter.analytic.params import count_params, mla_params
from meter.config.models import load_model


def args(name: str) -> ModelArgs:
    return load_model(name).args


def test_v3_parameters():
    p = count_params(args("deepseek-v3"))
    assert p.total == pytest.approx(671e9, rel=0.01)
    # "37B activated", rounded to whole billions: 36.6B without the input embedding lookup.
    assert abs(p.active - 37e9) < 0.5e9
    assert mla_params(args("deepseek-v3")) == pytest.approx(187.1e6, rel=1e-3)
    # The HF checkpoint is 685B = 671B + 14B MTP; the 14B includes stored copies of the
    # embedding and head (2 x 0.93B), which the MTP module shares with the main model.
    assert p.mtp + 2 * p.embedding == pytest.approx(14e9, rel=0.05)


def test_v2_parameters():
    p = count_params(args("deepseek-v2"))
    assert p.total == pytest.approx(236e9, rel=0.01)
    assert abs(p.active - 21e9) < 0.5e9  # "21B activated", whole billions


def test_v2_lite_parameters():
    p = count_params(args("deepseek-v2-lite"))
    assert abs(p.total - 16e9) < 0.5e9  # "16B", whole billions (15.7B)
    assert p.active == pytest.approx(2.4e9, rel=0.03)  # "2.4B" (2.45B counted; two significant figures)


def test_llama_405b_parameters_and_kv_cache():
    a = args("llama-3.1-405b")
    assert count_params(a).total == pytest.approx(405e9, rel=0.01)
    assert M.kv_cache_bytes_per_token(a, 2) == 516_096  # ISCA'25 Table 1, exactly


def test_v3_training_flops_per_token():
    # ISCA'25 Table 2: 250 GFLOPs per token for V3 (sequence length 4096, causal). Within 3%.
    assert F.train_flops_per_token(args("deepseek-v3"), 4096).total == pytest.approx(250e9, rel=0.03)


def test_v2_and_llama_training_flops_per_token():
    assert F.train_flops_per_token(args("deepseek-v2"), 4096).total == pytest.approx(155e9, rel=0.03)
    assert F.train_flops_per_token(args("llama-3.1-405b"), 4096).total == pytest.approx(2448e9, rel=0.03)


def test_v3_kv_cache_is_exactly_70272_bytes_per_token():
    a = args("deepseek-v3")
    assert M.kv_cache_bytes_per_token(a, 2) == 70_272
    assert M.kv_cache_bytes_per_token(a, 2, form="expanded") == 61 * 128 * (192 + 128) * 2
    assert M.kv_cache_bytes_per_token(args("deepseek-v2"), 2) == 69_120


def test_training_is_three_times_forward_and_causal_is_half_the_core():
    a = args("deepseek-v3")
    fwd_full = F.forward_flops_per_token(a, 4096)
    fwd_causal = F.forward_flops_per_token(a, 2048)
    assert F.train_flops_per_token(a, 4096, pairs="full").total == pytest.approx(3 * fwd_full.total)
    assert F.train_flops_per_token(a, 4096).total == pytest.approx(3 * fwd_causal.total)
    assert fwd_causal.attention_core == pytest.approx(fwd_full.attention_core / 2)
    assert fwd_causal.gemm == fwd_full.gemm


def test_gemm_flops_are_twice_the_active_matmul_weights():
    a = args("deepseek-v3")
    p = count_params(a)
    norm_weights = p.norms + a.n_layers * (a.q_lora_rank + a.kv_lora_rank)
    router_bias = a.n_moe_layers * a.n_routed_experts
    fwd = F.forward_flops_per_token(a, 1)
    assert fwd.gemm == pytest.approx(2 * (p.active - norm_weights - router_bias))


def test_mla_decode_forms():
    a = args("deepseek-v3")
    naive = F.decode_flops_per_token(a, 4096, form="naive")
    absorbed = F.decode_flops_per_token(a, 4096, form="absorbed")
    # Per pair and head: naive QK 192 + AV 128; absorbed QK 576 + AV 512 (FlashMLA's d + dv).
    assert naive.attention_core == pytest.approx(61 * 2 * 128 * 320 * 4096)
    assert absorbed.attention_core == pytest.approx(61 * 2 * 128 * 1088 * 4096)
    # Naive decode over the latent cache re-expands all 4096 latents through wkv_b each step.
    kv_up = 2 * 512 * 128 * (128 + 128)
    assert naive.attention_gemm - absorbed.attention_gemm == pytest.approx(61 * kv_up * 4095)
    # In training both forms do the same projection work (absorption == wkv_b's count).
    assert (
        F.forward_flops_per_token(a, 10, form="absorbed").attention_gemm
        == F.forward_flops_per_token(a, 10, form="naive").attention_gemm
    )


def test_layer_flops_naive_decode_expands_the_cache():
    a = args("deepseek-v3")
    kv_up = 2 * 512 * 128 * 256
    naive = F.attention_layer_flops(a, batch=2, q_len=1, kv_len=100, pairs="full", form="naive")
    absorbed = F.attention_layer_flops(a, batch=2, q_len=1, kv_len=100, pairs="full", form="absorbed")
    assert naive - 2 * 100 * 2 * 128 * 320 - absorbed + 2 * 100 * 2 * 128 * 1088 == pytest.approx(2 * 99 * kv_up)


def test_prefill_computes_logits_for_the_last_position_only():
    a = args("deepseek-v3")
    assert F.prefill_flops_per_token(a, 1000).output_head == pytest.approx(2 * a.dim * a.vocab_size / 1000)


def test_attention_pairs():
    assert F.attention_pairs(4, 4, "full") == 16
    assert F.attention_pairs(4, 4, "causal") == 8
    assert F.attention_pairs(1, 100, "causal") == pytest.approx(99.5)  # decode: one query, the whole prefix
    with pytest.raises(ValueError):
        F.attention_pairs(5, 4, "causal")


def test_moe_layer_flops_count_router_shared_and_routed():
    a = args("deepseek-v3")
    expert = 3 * a.dim * a.moe_inter_dim
    expected = 2 * 10 * (a.dim * 256 + 1 * expert + 8 * expert)
    assert F.moe_layer_flops(a, tokens=10) == pytest.approx(expected)
    assert F.moe_layer_flops(
        a, tokens=10, routed_assignments=3, include_router=False, include_shared=False
    ) == pytest.approx(2 * 3 * expert)


def test_dense_model_has_no_expert_flops():
    fwd = F.forward_flops_per_token(args("llama-3.1-405b"), 4096)
    assert fwd.routed_experts == fwd.shared_experts == fwd.router == 0


def test_mtp_adds_one_moe_block_projection_and_head():
    a = args("deepseek-v3")
    no_mtp = dataclasses.replace(a, n_mtp_layers=0)
    assert F.mtp_train_flops_per_token(no_mtp, 4096) == 0
    mtp = F.mtp_train_flops_per_token(a, 4096)
    per_layer = (F.train_flops_per_token(a, 4096).total - 3 * 2 * a.dim * a.vocab_size) / a.n_layers
    assert mtp == pytest.approx(per_layer + 3 * 2 * (2 * a.dim * a.dim + a.dim * a.vocab_size), rel=0.05)


def test_decode_bytes_batch_one_reads_the_active_weights_and_the_cache():
    a = args("deepseek-v3")
    step = M.decode_step_bytes(a, batch=1, context_len=4096, weight_bytes=2, kv_bytes=2)
    p = count_params(a)
    assert step.weights == pytest.approx(2 * (p.active + a.dim))  # + one embedding row
    assert step.kv_cache_read == 4095 * 70_272 and step.kv_cache_write == 70_272
    assert step.per_token == step.total


def test_decode_bytes_large_batch_touches_every_expert_once():
    a = args("deepseek-v3")
    step = M.decode_step_bytes(a, batch=4096, context_len=1, weight_bytes=1, kv_bytes=1)
    p = count_params(a)
    all_weights = p.total - p.embedding + 4096 * a.dim
    assert step.weights == pytest.approx(all_weights, rel=1e-6)
    assert step.per_token < step.total / 4000


def test_expected_experts_touched():
    assert M.expected_experts_touched(256, 8, 1) == pytest.approx(8)
    assert M.expected_experts_touched(256, 8, 10_000) == pytest.approx(256)
    assert M.expected_experts_touched(0, 0, 5) == 0
