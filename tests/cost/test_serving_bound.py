"""Serving from a deployment that could exist: configs, memory fit, the bound by hand, the implied efficiency."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import yaml

from kernels.args import ModelArgs
from meter.analytic.params import count_params
from meter.config.deployments import Pool, layout_problem, list_deployments, load_deployment
from meter.config.hardware import load_hardware
from meter.config.models import load_model
from meter.config.paths import ConfigLocator, builtin_config_dir
from meter.config.scenarios import load_scenario
from meter.cost.configs import load_and_estimate_serve
from meter.cost.layout import deployment_bound, held_params, routed_hit_share
from meter.cost.serving_pipeline import LayoutOverrides
from meter.errors import ConfigError
from tests.conftest import run_meter

V3 = load_model("deepseek-v3").args
H800 = load_hardware("h800-sxm")
FP8 = 1 + 4 / (128 * 128)  # bytes per fp8 weight with one fp32 scale per 128 x 128 block


def test_every_deployment_loads_and_deepseeks_layouts_are_as_published():
    assert {"deepseek-v3-day6", "llama-3.1-405b-tp8", "single-gpu"} <= set(list_deployments())
    for name in list_deployments():
        load_deployment(name)
    d = load_deployment("deepseek-v3-day6")
    assert (d.prefill.gpus, d.prefill.ep, d.prefill.gpus // d.prefill.gpus_per_node) == (32, 32, 4)
    assert (d.decode.gpus, d.decode.ep, d.decode.gpus // d.decode.gpus_per_node) == (144, 144, 18)
    # (256 routed + 32 redundant) / EP: 9 per GPU in prefill, 2 in decode, as DeepSeek published
    assert (256 + d.prefill.redundant_experts) / d.prefill.ep == d.prefill.routed_experts_per_gpu == 9
    assert (256 + d.decode.redundant_experts) / d.decode.ep == d.decode.routed_experts_per_gpu == 2
    assert d.weights.routed_experts == "fp8" and d.weights.head == "bf16" and d.dispatch == "fp8"
    assert d.published.decode_tokens_per_s_per_gpu == 1850


def _variant(config_dir: Path, name: str, mutate) -> ConfigLocator:
    data = yaml.safe_load((builtin_config_dir() / "deployments" / f"{name}.yaml").read_text())
    mutate(data)
    (config_dir / "deployments").mkdir(exist_ok=True)
    (config_dir / "deployments" / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return ConfigLocator.from_env([config_dir])


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        (lambda d: d["decode"].update(ep=100), "decode.ep", "does not divide the 288 expert copies"),
        (lambda d: d["prefill"].update(routed_experts_per_gpu=8), "prefill.routed_experts_per_gpu", "is not the 288"),
        (
            lambda d: (d["decode"].update(tp=3), d["sources"][0]["fields"].append("decode.tp")),
            "decode.tp",
            "does not divide the 128 attention heads",
        ),
        (lambda d: d["decode"].update(context=0), "decode.context", "greater than 0"),
        (lambda d: d.update(kv_cache="int4"), "kv_cache", "must be one of"),  # fp4 is NVFP4 now
        (lambda d: d["decode"].update(extra=1), "decode.extra", "unknown field"),
        (lambda d: d.update(reserved_memory_ratio=1.5), "reserved_memory_ratio", "at most 0.9"),
        (lambda d: d["sources"].pop(4), "decode.batch_per_gpu", "has no entry in 'sources'"),
        (lambda d: d.update(model="deepseek-v9"), "model", "no such models config"),
    ],
)
def test_bad_deployment_files_name_the_field(config_dir: Path, mutate, field, fragment):
    locator = _variant(config_dir, "deepseek-v3-day6", mutate)
    with pytest.raises(ConfigError) as info:
        load_deployment("deepseek-v3-day6", locator)
    assert info.value.field == field and fragment in str(info.value)


def test_a_gpu_holds_the_whole_model_on_one_gpu_and_its_share_under_ep():
    one = Pool(context=4096)
    for model in ("deepseek-v3", "llama-3.1-405b", "deepseek-v2-lite"):
        a = load_model(model).args
        assert sum(held_params(a, one).values()) == pytest.approx(count_params(a).total)
    decode = load_deployment("deepseek-v3-day6").decode
    held = held_params(V3, decode)
    assert held["routed_experts"] == 58 * 2 * 3 * 7168 * 2048  # 2 expert copies per GPU per MoE layer
    assert held["shared_experts"] == 58 * 3 * 7168 * 2048 and held["attention"] == count_params(V3).attention


def test_routed_experts_touched_grow_with_the_batch():
    one = Pool(context=1)
    assert routed_hit_share(V3, one, 1) * 256 == pytest.approx(8)  # one token reads its top-8 experts
    assert routed_hit_share(V3, one, 4096) == pytest.approx(1.0)  # a big batch reads them all
    assert routed_hit_share(V3, one, 8) * 256 == pytest.approx(256 * (1 - (1 - 8 / 256) ** 8))


def test_deepseeks_decode_bound_by_hand():
    """The decode pool's bound on H800, every term written out from V3's shape and the datasheet."""
    b = deployment_bound(V3, "deepseek-v3", H800, load_deployment("deepseek-v3-day6")).decode
    batch, ctx, peak8, peak16, bw = 88, 4989, 1978.9e12, 989.4e12, 3.35e12
    mla = 7168 * 1536 + 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 + 512 * 128 * 256 + 128 * 128 * 7168
    expert = 3 * 7168 * 2048
    hit = 1 - (1 - 8 / 288) ** (batch * 144)  # 12,672 tokens in the EP group pick 8 of 288 copies each
    norms = 61 * 2 * 7168 + 7168
    rows = {  # (FLOPs, bytes, peak) per GPU per step
        "attention projections": (batch * 61 * 2 * (mla - 1536 - 512), 61 * mla * FP8, peak8),
        "attention core": (batch * 61 * 2 * 128 * (576 + 512) * ctx, batch * ctx * 61 * 576 * 2, peak16),
        "dense FFN": (batch * 3 * 2 * 3 * 7168 * 18432, 3 * 3 * 7168 * 18432 * FP8, peak8),
        "router and norms": (batch * 58 * 2 * 7168 * 256, (58 * (256 * 7168 + 256) + norms) * 2, peak16),
        "shared experts": (batch * 58 * 2 * expert, 58 * expert * FP8, peak8),
        "routed experts": (batch * 58 * 8 * 2 * expert, 58 * 2 * expert * FP8 * hit, peak8),
        "output head": (batch * 2 * 7168 * 129280, 129280 * 7168 * 2 + batch * 7168 * 2, peak16),
    }
    got = {c.name: c for c in b.components}
    assert set(got) == set(rows)
    for name, (flops, nbytes, peak) in rows.items():
        assert got[name].flops == pytest.approx(flops) and got[name].bytes == pytest.approx(nbytes), name
        assert got[name].time_s == pytest.approx(max(flops / peak, nbytes / bw)), name
    compute = sum(max(f / p, n / bw) for f, n, p in rows.values())
    # EP: 18 nodes; a token's 8 experts hit 18 (1 - (17/18)^8) nodes, its own 1/18 of the time for free;
    # NVLink forwards to 7 of the 8 (the eighth is on the receiving GPU one time in eight)
    nodes_hit = 18 * (1 - (17 / 18) ** 8)
    network_copies, nvlink_copies = nodes_hit * (1 - 1 / 18), 8 * (1 - 1 / 8)
    legs = [
        max(network_copies * 7168 * value / 50e9, nvlink_copies * 7168 * value / 200e9)
        for value in (1 + 4 / 128, 2)  # fp8 dispatch with its scales, bf16 combine
    ]
    comm = batch * 58 * sum(legs)
    hidden = 1.0 * min(comm, compute)  # the 5-stage pipeline hides all it can
    assert b.compute_s == pytest.approx(compute) and b.comm.total_s == pytest.approx(comm)
    assert b.comm.hidden_s == pytest.approx(hidden)
    assert b.tokens_per_s_per_gpu == pytest.approx(batch / (compute + comm - hidden))
    assert 5000 < b.tokens_per_s_per_gpu < 6000  # about 5.4K output tokens/s per H800
    # memory: 24 GB of weights, 88 x 4,989 tokens of 70,272-byte latent cache, 8 GB kept for the runtime
    assert b.memory.kv_cache_bytes == pytest.approx(88 * 4989 * 70272)
    assert b.memory.reserved_bytes == pytest.approx(8e9) and b.memory.total_bytes < 80e9


def test_deepseeks_prefill_bound_is_its_network():
    b = deployment_bound(V3, "deepseek-v3", H800, load_deployment("deepseek-v3-day6")).prefill
    tokens = 4383  # one prompt per GPU per step
    nodes_hit = min(4 * (1 - (3 / 4) ** 8), 4)
    per_token = sum(nodes_hit * (1 - 1 / 4) * 7168 * v / 50e9 for v in (1 + 4 / 128, 2))  # network binds
    assert b.comm.total_s == pytest.approx(tokens * 58 * per_token)
    assert b.comm.total_s > b.compute_s  # EP32 over 4 nodes at 50 GB/s is slower than the GEMMs
    assert b.step_s == pytest.approx(b.comm.total_s)  # dual micro-batches: the step is the longer of the two
    assert b.tokens_per_s_per_gpu == pytest.approx(tokens / b.comm.total_s)


def test_a_dense_model_on_one_gpu_is_memory_bound_by_hand():
    a = ModelArgs(vocab_size=1000, dim=256, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=64, inter_dim=1024)
    d = dataclasses.replace(
        load_deployment("single-gpu"),
        decode=Pool(batch_per_gpu=4, context=128),
        prefill=Pool(batch_per_gpu=1, context=128),
    )
    b = deployment_bound(a, "tiny", H800, d).decode
    attn = 256 * 256 + 2 * 256 * 128 + 256 * 256  # wq, wk + wv (2 KV heads of 64), wo
    ffn, head = 3 * 256 * 1024, 1000 * 256
    kv_per_token = 2 * (2 * 2 * 64) * 2  # 2 layers x K and V of 2 heads x 64, bf16
    weights_s = (2 * attn + 2 * ffn + head) * 2 / 3.35e12 + 4 * 256 * 2 / 3.35e12  # plus 4 embedding rows
    kv_s = 4 * 128 * kv_per_token / 3.35e12
    norms_s = (2 * 2 * 256 + 256) * 2 / 3.35e12
    assert b.comm.total_s == 0 and all(c.regime == "memory" for c in b.components)
    assert b.step_s == pytest.approx(weights_s + kv_s + norms_s)
    assert b.tokens_per_s_per_gpu == pytest.approx(4 / (weights_s + kv_s + norms_s))


def test_the_batch_fills_the_memory_when_the_deployment_gives_none():
    a = load_model("llama-3.1-405b").args
    d = LayoutOverrides(weights="fp8").apply(load_deployment("llama-3.1-405b-tp8"), a)
    b = deployment_bound(a, "llama-3.1-405b", load_hardware("h100-sxm"), d).decode
    m = b.memory
    one_more = (b.pool.batch_per_gpu + 1) * 8 * 4096 * 126 * 2 * 1 * 128 * 2  # 8 sequences a group, 1 KV head a GPU
    assert m.total_bytes <= 80e9 < m.total_bytes - m.kv_cache_bytes + one_more


@pytest.mark.parametrize(
    ("argv", "fits", "fragment"),
    [
        (["deepseek-v3", "--deployment", "single-gpu", "--hardware", "h800-sxm"], False, "1.27 TB short"),
        (["llama-3.1-405b", "--hardware", "h100-sxm", "--tp", "8", "--weights", "bf16"], False, "weights 101 GB"),
        (["llama-3.1-405b", "--hardware", "h100-sxm", "--tp", "8", "--weights", "fp8"], True, "llama-3.1-405b-tp8"),
        (["llama-3.1-405b", "--hardware", "h200-sxm", "--tp", "8", "--weights", "bf16"], True, "llama-3.1-405b-tp8"),
        (["deepseek-v2-lite", "--hardware", "h100-sxm"], True, "single-gpu"),
    ],
)
def test_memory_fit(argv, fits, fragment):
    r = run_meter("cost", "serve", *argv, "--samples", "0")
    if fits:
        assert r.returncode == 0 and fragment in r.stdout, r.stderr
        assert "decode bound" in r.stdout
    else:
        assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert "does not fit" in r.stderr and fragment in r.stderr


def test_day6_shows_both_bounds_and_the_efficiency_the_published_throughput_implies():
    r = run_meter("cost", "serve", "--scenario", "deepseek-v3-day6", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    o = doc["outputs"]
    decode = o["decode_bound_tokens_per_s_per_gpu"]["point"]
    assert o["implied_decode_efficiency"]["point"] == pytest.approx(1850 / decode)
    assert 0.25 < o["implied_decode_efficiency"]["point"] < 0.45
    assert o["implied_prefill_efficiency"]["point"] == pytest.approx(
        4030.5 / o["prefill_bound_tokens_per_s_per_gpu"]["point"]
    )
    assert o["usd_per_m_output_tokens"]["point"] == pytest.approx(0.30, rel=0.01)  # the scenario's own figures
    pools = doc["deployment"]["pools"]
    assert pools["decode"]["bound_tokens_per_s_per_gpu"] == pytest.approx(decode)
    assert pools["decode"]["memory_per_gpu_bytes"] < 80e9 and pools["prefill"]["ep"] == 32
    text = run_meter("cost", "serve", "--scenario", "deepseek-v3-day6").stdout
    assert "Deployment deepseek-v3-day6 on h800-sxm" in text and "published decode: 1.85K output tokens/s" in text


def test_the_implied_efficiency_reads_deepseeks_figure_against_their_own_layout():
    """Priced on H100 or at another batch, the published H800 throughput is still read against H800's bound."""
    base = load_and_estimate_serve(load_scenario("deepseek-v3-day6"), samples=0)
    other = load_and_estimate_serve(
        load_scenario("deepseek-v3-day6"), hardware="h100-sxm", layout=LayoutOverrides(batch_per_gpu=32), samples=0
    )
    assert other.outputs["implied_decode_efficiency"].point == pytest.approx(
        base.outputs["implied_decode_efficiency"].point
    )
    assert other.bound.decode.pool.batch_per_gpu == 32 and other.method == "bound"
    assert "decode_tokens_per_s_per_gpu" not in other.inputs  # DeepSeek's H800 throughput says nothing of this layout
    assert any("left out: the scenario's figures are for its own layout on h800-sxm" in n for n in other.notes)


def test_given_efficiency_scales_the_bound():
    e = load_and_estimate_serve(load_scenario("deepseek-v3-day6"), overrides={"efficiency": _q(0.4)}, samples=0)
    assert e.method == "bound x efficiency (given)"
    bound = e.outputs["decode_bound_tokens_per_s_per_gpu"].point
    assert e.outputs["output_tokens_per_s_per_gpu"].point == pytest.approx(0.4 * bound)
    assert e.outputs["usd_per_m_output_tokens"].point == pytest.approx(2.0 / 3600 / (0.4 * bound) * 1e6)
    assert "gpus" not in e.inputs and "decode_tokens_per_s_per_gpu" not in e.inputs  # sized from the load


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--tp", "3"], "--tp 3: does not divide the 128 attention heads"),
        (["--ep", "7"], "--ep 7: does not divide the 288 expert copies"),
        (["llama-3.1-405b", "--hardware", "h100-sxm", "--ep", "8"], "--ep 8: the model has no experts"),
        (["--batch", "8"], "--batch selects a run's decode measurement"),
        (["--efficiency", "0"], "input efficiency = 0 (command line): must lie in (0, 1]"),
        (["--efficiency", "2"], "must lie in (0, 1]"),
        (["--weights", "int4"], "invalid choice"),
        (["--deployment", "tp9000"], "no such deployment config"),
        (["--deployment", "llama-3.1-405b-tp8"], "serves llama-3.1-405b, not deepseek-v3"),
        (["gpt-3"], "give --hardware"),
        (["deepseek-v3", "--scenario", "deepseek-v3-day6"], "not both"),
        (["--tp", "8", "--ep", "144", "--batch-per-gpu", "88"], "KV cache 247 GB"),
        (["--tp", "8"], "(8 x h800-sxm, tp 8, ep 1) needs 97.1 GB"),  # one node, not EP144 kept silently
    ],
)
def test_serve_layout_errors_are_one_line(argv, fragment):
    r = run_meter("cost", "serve", *argv, "--samples", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and fragment in r.stderr, r.stderr


def test_layout_problem_refuses_what_no_gpu_can_run():
    assert layout_problem(Pool(ep=2, context=1), load_model("llama-3.1-405b").args)[0] == "ep"
    assert layout_problem(Pool(tp=16, context=1), load_model("llama-3.1-405b").args) is None  # 2 GPUs per KV head
    assert layout_problem(Pool(dp=8, ep=16, context=1), V3)[1].startswith("does not divide the pool's 8 GPUs")
    assert layout_problem(Pool(dp=144, ep=144, redundant_experts=32, context=1), V3) is None
    assert math.isclose((256 + 32) / 144, 2)


def _q(v: float):
    from meter.config.quantity import Quantity

    return Quantity.point(v)
