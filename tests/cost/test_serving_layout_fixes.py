"""The serving bound's layout defects of issue 24: tokens reaching the experts, ``--tp`` on a
deployment written for another layout, fractional batches, and per-pool contexts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from meter.config.deployments import Pool, load_deployment
from meter.config.hardware import load_hardware
from meter.config.models import load_model
from meter.cost.layout import deployment_bound, kv_bytes_per_token, routed_hit_share
from meter.cost.serving_pipeline import LayoutOverrides
from tests.conftest import run_meter

V3 = load_model("deepseek-v3").args


@pytest.mark.parametrize(
    ("pool", "tokens_per_gpu", "tokens"),
    [
        (Pool(tp=8, ep=8, context=1), 0.5, 4),  # TP8 EP8 node at concurrency 4: 4 tokens, not 4 x 8
        (Pool(tp=8, ep=1, context=1), 0.5, 4),  # experts split over the TP group
        (Pool(tp=1, dp=8, ep=8, context=1), 2, 16),  # attention DP: each GPU its own 2 sequences
        (Pool(tp=8, dp=2, ep=16, context=1), 1, 16),
    ],
)
def test_routed_hit_share_counts_the_tokens_reaching_the_expert_group(pool, tokens_per_gpu, tokens):
    assert routed_hit_share(V3, pool, tokens_per_gpu) == pytest.approx(1 - (1 - 8 / 256) ** tokens)


def test_a_tp8_ep8_node_at_concurrency_4_reads_a_ninth_of_its_experts_not_all():
    d = LayoutOverrides(tp=8, ep=8, batch_per_gpu=0.5, prefill_context=1024, decode_context=1536).apply(
        load_deployment("deepseek-v3-day6"), V3
    )
    b = deployment_bound(V3, "deepseek-v3", load_hardware("h200-sxm"), d).decode
    assert b.pool.gpus == 8 and b.pool.batch_per_gpu == 0.5
    routed = next(c for c in b.components if c.name == "routed experts")
    # 58 MoE layers x 36 expert copies a GPU (256 + DeepSeek's 32 redundant, over 8) x 3 x 7168 x 2048
    # fp8 weights, of which 1 - (1 - 8/288)^4 are hit by the node's 4 tokens
    held = 58 * 36 * 3 * 7168 * 2048 * (1 + 4 / 128**2)
    assert routed.bytes == pytest.approx(held * (1 - (1 - 8 / 288) ** 4))
    assert 150 < b.tokens_per_s_per_gpu < 250  # was 43.5 with batch x tp x ep tokens


def test_tp_makes_one_replica_instead_of_keeping_deepseeks_ep144_pool():
    d = LayoutOverrides(tp=8).apply(load_deployment("deepseek-v3-day6"), V3)
    for pool in (d.prefill, d.decode):
        assert (pool.gpus, pool.tp, pool.ep, pool.redundant_experts, pool.comm_overlap) == (8, 8, 1, 0, 0.0)
    assert d.decode.batch_per_gpu is None  # fills this layout's memory, not DeepSeek's 88
    r = run_meter("cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--tp", "8", "--samples", "0", "--json")
    assert r.returncode == 0, r.stderr
    decode = json.loads(r.stdout)["deployment"]["pools"]["decode"]
    assert decode["gpus"] == 8 and decode["ep"] == 1 and decode["bound_tokens_per_s_per_gpu"] < 1046


def test_batch_per_gpu_takes_a_fraction_and_contexts_split_per_pool():
    r = run_meter(
        "cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--tp", "8", "--batch-per-gpu", "0.125",
        "--prefill-context", "1024", "--decode-context", "1536", "--samples", "0", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    pools = json.loads(r.stdout)["deployment"]["pools"]
    assert pools["decode"]["batch_per_gpu"] == 0.125  # concurrency 1 on a TP8 node
    assert (pools["prefill"]["context"], pools["decode"]["context"]) == (1024, 1536)


def test_a_prefill_pool_that_does_not_fit_its_batch_prefills_in_chunks():
    d = LayoutOverrides(tp=8, decode_context=2048).apply(load_deployment("deepseek-v3-day6"), V3)
    d = dataclasses.replace(d, prefill=dataclasses.replace(d.prefill, batch_per_gpu=64, context=131072))
    b = deployment_bound(V3, "deepseek-v3", load_hardware("h200-sxm"), d)
    assert 0 < b.prefill.pool.batch_per_gpu < 64 and b.prefill.memory.fits
    assert b.decode.tokens_per_s_per_gpu > 0


def test_mla_fp8_cache_is_656_bytes_a_token_and_layer():
    assert kv_bytes_per_token(V3, Pool(context=1), "fp8_mla") == pytest.approx(61 * 656)
    assert kv_bytes_per_token(V3, Pool(context=1), "bf16") == 61 * 576 * 2
