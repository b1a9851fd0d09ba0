"""Case grids, suites, timing statistics, metrics and projections: pure parts of the harness."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meter.bench.cases import BenchCase, applicable_layers, expand_grid
from meter.bench.metrics import bound, case_metrics
from meter.bench.projection import project
from meter.bench.stats import quantile, summarize
from meter.config.hardware import load_hardware
from meter.config.models import load_model
from meter.config.paths import ConfigLocator
from meter.config.suites import list_suites, load_suite
from meter.errors import ConfigError
from meter.results.records import CaseResult
from tests.runs import make_ceilings, ok_case

V3 = load_model("deepseek-v3").args
TINY = load_model("deepseek-v3-tiny").args


def test_grid_expands_only_relevant_axes():
    cases = expand_grid(
        "deepseek-v3",
        V3,
        {
            "layers": ["attn", "moe"],
            "phase": ["train", "decode"],
            "batch": [1, 8],
            "seq": [4096],
            "context": [4096, 8192],
            "ep": [1, 64],
            "form": ["absorbed", "naive"],
        },
    )
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    # mla train: 2 batches; mla decode: 2 batches x 2 contexts x 2 forms;
    # moe train: 2 batches x 2 ep; moe decode: 2 batches x 2 ep (context and form do not apply)
    assert len(cases) == 2 + 8 + 4 + 4
    assert all(c.ep == 1 for c in cases if c.layer == "mla")
    assert {c.layer for c in cases} == {"mla", "moe"}


def test_grid_defaults_and_attention_alias():
    cases = expand_grid("m", TINY, {"phase": ["prefill", "decode"]})
    assert {c.layer for c in cases} == set(applicable_layers(TINY)) == {"mla", "moe", "ffn"}
    assert all(c.seq == 4096 for c in cases if c.phase == "prefill")
    assert all(c.context == 4096 for c in cases if c.layer == "mla" and c.phase == "decode")


def test_tokens_per_expert_sizes_moe_cases_per_local_expert():
    no_ep = BenchCase("deepseek-v3", "moe", "prefill", tokens_per_expert=512)
    ep64 = BenchCase("deepseek-v3", "moe", "prefill", tokens_per_expert=512, ep=64)
    assert no_ep.tokens(V3) == 512 * 256 // 8  # 16384 tokens spread over 256 experts
    assert ep64.tokens(V3) == 512 * 4 // 8  # 256 tokens x 8 land on 4 local experts
    assert BenchCase("deepseek-v3", "mla", "decode", batch=128, context=4096).tokens(V3) == 128
    assert BenchCase("deepseek-v3", "mla", "train", batch=2, seq=4096).tokens(V3) == 8192


def test_every_builtin_suite_loads_and_expands():
    names = list_suites()
    assert {"default-cpu", "default-gpu", "v3-sweep", "llama-405b"} <= set(names)
    for name in names:
        suite = load_suite(name)
        model = load_model(suite.model)
        cases = [c for g in suite.grids for c in expand_grid(model.name, model.args, g.axes())]
        assert cases, name


def test_v3_sweep_covers_what_the_gpu_issue_asks():
    suite = load_suite("v3-sweep")
    cases = [c for g in suite.grids for c in expand_grid("deepseek-v3", V3, g.axes())]
    moe = [c for c in cases if c.layer == "moe" and not c.fp8]
    assert {c.tokens_per_expert for c in moe} >= {32, 8192} and {c.ep for c in moe} == {1, 64}
    decode = [c for c in cases if c.layer == "mla" and c.phase == "decode"]
    assert {c.context for c in decode} == {4096, 8192, 16384} and {c.batch for c in decode} == {128}
    forms = {c.id.rsplit(".", 1)[1] for c in decode}
    assert forms == {"absorbed", "absorbed+compile", "naive", "fused"}  # one table: eager, compiled, fused
    assert any(c.fp8 for c in cases)


def test_bad_suites_are_refused(config_dir: Path):
    good = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/suites/default-cpu.yaml").read_text())
    locator = ConfigLocator.from_env([config_dir])
    for mutate, field in [
        (lambda d: d["grids"][0].update(phase="warmup"), "grids[0].phase[0]"),
        (lambda d: d["grids"][0].update(batch=0), "grids[0].batch"),
        (lambda d: d["grids"][0].update(bacth=4), "grids[0].bacth"),
        (lambda d: d.update(grids=[]), "grids"),
    ]:
        data = yaml.safe_load(yaml.safe_dump(good))
        mutate(data)
        (config_dir / "suites" / "default-cpu.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as info:
            load_suite("default-cpu", locator)
        assert info.value.field == field, str(info.value)


def test_quantiles_and_summary():
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.25) == 1.75
    s = summarize([3.0, 1.0, 2.0, 5.0, 4.0])
    assert (s.n, s.median_s, s.min_s, s.max_s, s.iqr_s) == (5, 3.0, 1.0, 5.0, 2.0)
    assert s.spread == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        summarize([])


def _ceilings():
    return make_ceilings(3.0e12, {"bf16": 800e12})


def test_case_metrics_arithmetic():
    h100 = load_hardware("h100-sxm")
    m = case_metrics(
        median_s=2e-3,
        flops_per_call=989.4e9,
        bytes_per_call=3e9,
        tokens_per_call=4096,
        dtype="bf16",
        fp8=False,
        hardware=h100,
        ceilings=_ceilings(),
    )
    assert m.achieved_tflops == pytest.approx(494.7)
    assert m.mfu == pytest.approx(0.5)
    assert m.gemm_ceiling_fraction == pytest.approx(494.7 / 800)
    assert m.achieved_gb_s == pytest.approx(1500) and m.copy_ceiling_fraction == pytest.approx(0.5)
    assert m.tokens_per_s == pytest.approx(2.048e6) and m.time_per_token_s == pytest.approx(2e-3 / 4096)
    fp8 = case_metrics(
        median_s=1e-3,
        flops_per_call=1978.9e9,
        bytes_per_call=1e9,
        tokens_per_call=1,
        dtype="bf16",
        fp8=True,
        hardware=h100,
        ceilings=None,
    )
    assert fp8.mfu == pytest.approx(1978.9 / 989.4) and fp8.peak_fraction_dtype == pytest.approx(1.0)
    cpu = case_metrics(
        median_s=1.0,
        flops_per_call=1e9,
        bytes_per_call=1e9,
        tokens_per_call=1,
        dtype="fp32",
        fp8=False,
        hardware=None,
        ceilings=None,
    )
    assert cpu.mfu is None and cpu.gemm_ceiling_fraction is None


def test_bound_uses_the_measured_ridge_point():
    c = _ceilings()  # ridge: 800e12 / 3e12 = 267 FLOP per byte

    def at(intensity: float):
        return case_metrics(
            median_s=1.0,
            flops_per_call=intensity,
            bytes_per_call=1.0,
            tokens_per_call=1,
            dtype="bf16",
            fp8=False,
            hardware=None,
            ceilings=None,
        )

    assert bound(at(300.0), c, "bf16") == "compute"
    assert bound(at(100.0), c, "bf16") == "memory"
    assert bound(at(100.0), None, "bf16") is None


def _result(layer, phase, per_call_s, tokens, flops, **case):
    return ok_case(BenchCase("deepseek-v3", layer, phase, **case), per_call_s=per_call_s, tokens=tokens, flops=flops)


def test_projection_composes_layers_by_count():
    results = [
        _result("mla", "train", 0.010, 4096, 1e12, batch=1, seq=4096),
        _result("moe", "train", 0.020, 4096, 2e12, batch=1, seq=4096),
        _result("moe", "train", 0.005, 4096, 2e12, batch=1, seq=4096, ep=64),  # not the plain case
        _result("ffn", "train", 0.004, 4096, 5e11, batch=1, seq=4096),
        _result("mla", "decode", 0.002, 128, 1e11, batch=128, context=4096),  # no MoE decode: no projection
        CaseResult(id="x", case=BenchCase("deepseek-v3", "moe", "decode", batch=128), status="oom"),
    ]
    h800 = load_hardware("h800-sxm")
    projections = project("deepseek-v3", V3, results, h800)
    assert len(projections) == 1
    p = projections[0]
    per_token = (61 * 0.010 + 58 * 0.020 + 3 * 0.004) / 4096
    assert p.time_per_token_s == pytest.approx(per_token)
    assert p.layers["moe"].case_id == results[1].id
    flops = (61 * 1e12 + 58 * 2e12 + 3 * 5e11) / 4096
    assert p.mfu == pytest.approx(flops / per_token / 989.4e12)
    assert "MTP modules" in p.not_included
