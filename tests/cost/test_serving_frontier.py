"""The frontier: a point's throughput, latencies and cost from its step times (hand-computed), the
bound beside it, the pick at a latency target, and the fit of the free parameters."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from meter.config.deployments import load_deployment
from meter.config.hardware import load_hardware
from meter.config.models import load_model
from meter.cost import frontier as F
from meter.cost.serving_fit import Observation, fit, nelder_mead, validate
from meter.cost.serving_step import DEFAULTS, Efficiencies, Op, StepWork

V3 = load_model("deepseek-v3").args
H200 = load_hardware("h200-sxm")
DAY6 = load_deployment("deepseek-v3-day6")
# every byte at the bandwidth, no size effect, no latency: a step's time is its bytes plus the overhead
PLAIN = Efficiencies(
    memory=0.5, launch_bytes_half=0.0, link=1.0, link_latency_s=0.0, layer_overhead_s=0.0, step_overhead_s=1e-3
)


def _step(seconds_at_roof: float) -> StepWork:
    return StepWork("x", (Op("w", "gemm", 0.0, seconds_at_roof * 1e12, 1e15, 1e12, 1.0, 1.0),), 1.0, 1, 0.0)


def _work(layout: F.ServingLayout, c: int, running: float, drafts: int = 0) -> F.PointWork:
    return F.PointWork(
        layout=layout,
        workload=F.Workload(isl=1000, osl=101),
        engine=F.EngineSettings(mtp_draft_tokens=drafts, mtp_acceptance=0.5),
        concurrency=c,
        hardware="h200-sxm",
        decode_batch_per_gpu=running / layout.n_decode_gpus,
        running=running,
        running_bound=running,
        decode=_step(1e-3),  # predicted 1 ms / 0.5 + 1 ms = 3 ms
        prefill=_step(4e-3),  # predicted 9 ms, for 2 prompts
        prefill_prompts_per_step=2.0,
        decode_bound_s=1e-3,
        prefill_bound_s_per_prompt=2e-3,
    )


def test_an_aggregated_point_by_hand():
    lay = F.ServingLayout(F.ParallelShape(8))
    p = F.time_point(_work(lay, 16, 16), PLAIN, F.Prices(usd_per_gpu_hour=3.6, power_per_gpu_w=700))
    cycle = 101 * 3e-3 + 16 * 4.5e-3  # 101 decode steps + 16 prompts at 4.5 ms = 0.375 s
    assert p.output_tokens_per_s_per_gpu == pytest.approx(16 * 101 / cycle / 8)
    assert p.ttft_s == pytest.approx(3e-3 + 9e-3)
    assert p.tpot_s == pytest.approx((cycle - 12e-3) / 100)
    assert p.output_tokens_per_s_per_gpu_bound == pytest.approx(16 * 101 / max(101 * 1e-3, 16 * 2e-3) / 8)
    share = 16 * 4.5e-3 / cycle
    assert p.prefill_share == pytest.approx(share)
    assert p.usd_per_m_output_tokens == pytest.approx(3.6 / 3600 * (1 - share) / p.output_tokens_per_s_per_gpu * 1e6)
    assert p.joules_per_output_token == pytest.approx(700 / p.output_tokens_per_s_per_gpu)
    assert p.total_tokens_per_s_per_gpu == pytest.approx(p.output_tokens_per_s_per_gpu * (1 + 1000 / 101))


def test_a_disaggregated_point_by_hand_with_mtp():
    lay = F.ServingLayout(F.ParallelShape(8, 8, True), 16, F.ParallelShape(8, 8), 8)
    p = F.time_point(_work(lay, 64, 64, drafts=2), PLAIN)
    accepted = 1 + 0.5 + 0.25
    decode_rate = 64 * accepted / 3e-3
    prefill_rate = 1 / 4.5e-3 * 101  # one prefill replica's prompts/s x osl
    assert p.output_tokens_per_s_per_gpu == pytest.approx(min(decode_rate, prefill_rate) / 24)
    assert p.tpot_s == pytest.approx(3e-3 / accepted)
    assert p.output_tokens_per_s_per_gpu_bound == pytest.approx(min(64 * 3 / 1e-3, 101 / 2e-3) / 24)
    assert p.tokens_per_s_per_user_bound == pytest.approx(3 / 1e-3)
    assert p.prefill_share == pytest.approx(8 / 24)


def test_mtp_accepts_a_geometric_series():
    assert F.EngineSettings(mtp_draft_tokens=3, mtp_acceptance=0.5).accepted_tokens() == pytest.approx(1.875)
    assert F.EngineSettings().accepted_tokens() == 1.0


def test_the_sweep_stays_under_its_bound_and_the_target_picks_the_cheapest_meeting_it():
    layouts = [F.ServingLayout(F.ParallelShape(8)), F.ServingLayout(F.ParallelShape(8, 8, True))]
    points, notes = F.sweep(V3, H200, DAY6, layouts, F.Workload(1024, 1024), F.EngineSettings(), DEFAULTS,
                            concurrencies=(1, 4, 16, 64, 256))  # fmt: skip
    assert len(points) == 10 and not notes
    for p in points:
        assert p.output_tokens_per_s_per_gpu <= p.output_tokens_per_s_per_gpu_bound
        assert p.tokens_per_s_per_user <= p.tokens_per_s_per_user_bound
    tp8 = [p for p in points if p.layout == "TP8"]
    assert all(a.output_tokens_per_s_per_gpu < b.output_tokens_per_s_per_gpu for a, b in zip(tp8, tp8[1:]))
    assert all(a.tokens_per_s_per_user > b.tokens_per_s_per_user for a, b in zip(tp8, tp8[1:]))
    target = F.Target(tpot_s=0.03)
    best = F.cheapest(points, target)
    meeting = [p for p in points if p.tpot_s <= 0.03]
    assert best.output_tokens_per_s_per_gpu == max(p.output_tokens_per_s_per_gpu for p in meeting)
    assert F.cheapest(points, F.Target(tpot_s=1e-6)) is None


def test_nelder_mead_finds_a_quadratics_minimum():
    x = nelder_mead(lambda z: float(np.sum((z - np.array([1.0, -2.0, 0.5])) ** 2)), np.zeros(3), iterations=2000)
    assert x == pytest.approx([1.0, -2.0, 0.5], abs=1e-3)


def test_the_fit_recovers_the_parameters_that_made_the_points():
    truth = DEFAULTS.with_values("truth", memory=0.6, gemm_compute=0.5, layer_overhead_s=6e-5, step_overhead_s=2e-3)
    obs = []
    for shape in (F.ParallelShape(8), F.ParallelShape(8, 8, True)):
        for c in (2, 16, 128):
            w = F.point_work(V3, H200, DAY6, F.ServingLayout(shape), F.Workload(1024, 1024), F.EngineSettings(), c)
            p = F.time_point(w, truth)
            obs.append(Observation("synthetic", w, p.output_tokens_per_s_per_gpu, p.tokens_per_s_per_user))
    before = validate(obs, DEFAULTS)
    c = fit(obs, iterations=300)
    assert c.median_abs_error < 0.02 < before.median_abs_error
    assert c.points == 6 and math.isfinite(c.rms_log_error)
    assert validate(obs, c.efficiencies, c.mtp_acceptance).points_above_bound == ()


def test_a_measured_point_above_the_bound_is_flagged():
    w = F.point_work(V3, H200, DAY6, F.ServingLayout(F.ParallelShape(8)), F.Workload(1024, 1024), F.EngineSettings(), 4)
    bound = F.time_point(w, DEFAULTS).output_tokens_per_s_per_gpu_bound
    v = validate([Observation("too fast", w, 2 * bound, 50.0), Observation("fine", w, bound / 4, 50.0)], DEFAULTS)
    assert [p.setup for p in v.points_above_bound] == ["too fast"]
    assert v.points[1].error == pytest.approx(v.points[1].predicted_output_tokens_per_s_per_gpu / (bound / 4) - 1)


def test_fractional_concurrency_below_one_sequence_a_replica():
    lay = F.ServingLayout(F.ParallelShape(8), decode_gpus=56, prefill=F.ParallelShape(8), prefill_gpus=8)
    w = F.point_work(V3, H200, dataclasses.replace(DAY6), lay, F.Workload(8192, 1024), F.EngineSettings(), 1)
    assert w.decode_batch_per_gpu == pytest.approx(1 / 8) and w.running == 1  # one busy TP8 replica, six idle


def test_overlap_hides_links_and_node_limited_routing_sends_fewer_bytes_over_the_network():
    lay = F.ServingLayout(F.ParallelShape(16, 16, True))  # EP16 over two H200 nodes
    wl = F.Workload(1024, 1024)
    plain = F.point_work(V3, H200, DAY6, lay, wl, F.EngineSettings(), 256)
    hidden = F.point_work(V3, H200, DAY6, lay, wl, F.EngineSettings(comm_overlap=1.0), 256)
    assert F.time_point(hidden, DEFAULTS).decode_step_s < F.time_point(plain, DEFAULTS).decode_step_s
    limited = dataclasses.replace(DAY6, decode=dataclasses.replace(DAY6.decode, max_nodes_per_token=1))
    one_node = F.point_work(V3, H200, limited, lay, wl, F.EngineSettings(), 256)
    link = {w: next(o for o in w.decode.ops if o.name == "EP dispatch and combine") for w in (plain, one_node)}
    assert link[one_node].bytes < link[plain].bytes


def test_parallel_shapes_map_to_pools_and_the_search_covers_the_layouts():
    base = DAY6.decode
    assert (lambda p: (p.tp, p.dp, p.ep, p.gpus))(F.ParallelShape(8).pool(base, 100)) == (8, 1, 1, 8)
    assert (lambda p: (p.tp, p.dp, p.ep, p.gpus))(F.ParallelShape(8, 8).pool(base, 100)) == (8, 1, 8, 8)
    assert (lambda p: (p.tp, p.dp, p.ep, p.gpus))(F.ParallelShape(8, 8, True).pool(base, 100)) == (1, 8, 8, 8)
    assert F.ParallelShape(8, 1, True).pool(base, 100).ep == 8  # attention DP, MoE over the same 8 GPUs
    pool = F.ParallelShape(8).pool(base, 100, comm_overlap=0.5, domain=72)
    assert (pool.comm_overlap, pool.gpus_per_node, pool.redundant_experts, pool.context) == (0.5, 72, 0, 100)
    labels = [lay.label for lay in F.search_layouts(V3, H200)]
    assert labels[:3] == ["TP8", "TP8 EP8", "TP8 EP8 DPA"] and "TP16 EP16 DPA" in labels
    assert [lay.label for lay in F.search_layouts(V3, H200) if not lay.aggregated] == [
        f"disagg 8P TP8 EP8 : {8 * r}D TP8 EP8 DPA" for r in (1, 2, 3)
    ]
    dense = load_model("llama-3.1-405b").args
    assert [lay.label for lay in F.search_layouts(dense, H200)] == ["TP8", "TP16"]
