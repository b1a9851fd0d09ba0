"""The serving step model: ops timed through size-dependent efficiencies, with their roofline beside."""

from __future__ import annotations

import dataclasses

import pytest

from meter.config.deployments import Pool, load_deployment
from meter.config.hardware import load_hardware
from meter.config.models import load_model
from meter.cost.layout import components
from meter.cost.serving_step import DEFAULTS, Efficiencies, Op, StepWork, op_time_s, step_bound_s, step_time, step_work

V3 = load_model("deepseek-v3").args
H200 = load_hardware("h200-sxm")


def test_a_gemm_takes_the_longer_of_its_flops_and_bytes_through_their_curves():
    op = Op("g", "gemm", flops=1e12, bytes=1e9, peak_flops_per_s=1e15, bandwidth_bytes_per_s=1e12, size=64, launches=1)
    e = Efficiencies(gemm_compute=0.5, gemm_rows_half=64, memory=0.8, launch_bytes_half=1e9)
    # compute: 1e12 / (1e15 x 0.5 x 64/128) = 4 ms; memory: 1e9 / (1e12 x 0.8 x 1e9/2e9) = 2.5 ms
    assert op_time_s(op, e) == pytest.approx(4e-3)
    assert op.bound_s == pytest.approx(1e-3)  # the roofline: max(1 ms, 1 ms)
    big = dataclasses.replace(op, size=64 * 1e6)
    assert op_time_s(big, e) == pytest.approx(2.5e-3, rel=1e-5)  # a large GEMM: the bytes decide


def test_attention_short_contexts_do_not_reach_the_bandwidth():
    op = Op(
        "a", "attention", flops=0.0, bytes=1e9, peak_flops_per_s=1e15, bandwidth_bytes_per_s=1e12, size=256, launches=61
    )
    e = Efficiencies(attention_memory=0.9, context_half=256)
    assert op_time_s(op, e) == pytest.approx(1e9 / (1e12 * 0.45))


def test_a_link_pays_a_latency_a_collective():
    op = Op("l", "link", 0.0, 1e9, 0.0, 1e11, 0.0, launches=10)
    assert op_time_s(op, Efficiencies(link=0.5, link_latency_s=1e-5)) == pytest.approx(10 * 1e-5 + 1e9 / 5e10)


def test_the_step_adds_overheads_and_exposed_links_and_the_bound_hides_the_links():
    ops = (
        Op("m", "gemm", 0.0, 2e9, 1e15, 1e12, 1, 1),  # 2 ms at the roof
        Op("x", "elementwise", 0.0, 1e9, 1.0, 1e12, 1, 1, in_bound=False),
        Op("l", "link", 0.0, 3e9, 0.0, 1e12, 0.0, 1),  # 3 ms at the roof
    )
    w = StepWork("decode", ops, 1.0, n_layers=10, comm_overlap=0.0)
    e = Efficiencies(
        memory=1.0, launch_bytes_half=0.0, link=1.0, link_latency_s=0.0, layer_overhead_s=1e-4, step_overhead_s=1e-3
    )
    t = step_time(w, e)
    assert t.predicted_s == pytest.approx(2e-3 + 1e-3 + 3e-3 + 10 * 1e-4 + 1e-3)
    assert t.bound_s == step_bound_s(w) == pytest.approx(3e-3)  # max(compute 2 ms, links 3 ms)
    hidden = step_time(dataclasses.replace(w, comm_overlap=1.0), e)
    assert hidden.predicted_s == pytest.approx(t.predicted_s - 3e-3)


def test_decode_work_is_the_bounds_work_and_drafts_read_the_cache_once():
    d = load_deployment("deepseek-v3-day6")
    pool = Pool(tp=8, ep=8, context=2048)
    d = dataclasses.replace(d, decode=pool)
    w1 = step_work(V3, H200, d, pool, "decode", 1.0)
    parts = components(V3, H200, d, pool, "decode", 1.0)
    assert sum(o.flops for o in w1.ops if o.kind != "link") == pytest.approx(sum(c.flops for c in parts))
    w4 = step_work(V3, H200, d, pool, "decode", 1.0, query_tokens=4)
    kv1, kv4 = (next(o for o in w.ops if o.name == "attention core") for w in (w1, w4))
    assert kv4.bytes == pytest.approx(kv1.bytes) and kv4.flops == pytest.approx(4 * kv1.flops)
    assert w4.tokens_per_gpu == 4.0


@pytest.mark.parametrize("batch", [0.125, 1, 8, 64])
def test_a_prediction_never_exceeds_its_bound(batch):
    d = load_deployment("deepseek-v3-day6")
    for pool in (Pool(tp=8, context=2048), Pool(tp=1, dp=8, ep=8, context=9000)):
        w = step_work(V3, H200, dataclasses.replace(d, decode=pool), pool, "decode", batch)
        t = step_time(w, DEFAULTS)
        assert t.predicted_s > t.bound_s > 0
