"""The dsa.prefill and dsa.decode benchmark cases: named, built and counted as the MLA cases are."""

from __future__ import annotations

import pytest
from torch.utils.flop_counter import FlopCounterMode

from meter.analytic import sparse_attention as S
from meter.bench.cases import applicable_layers, expand_grid
from meter.bench.workloads import UnsupportedCase, build_workload
from meter.config.models import load_model
from meter.config.suites import load_suite
from meter.device.select import ComputeDevice
from meter.results.cases import BenchCase

MODEL = "deepseek-v3.2-tiny"


@pytest.fixture(scope="module")
def a():
    return load_model(MODEL).args


def cpu() -> ComputeDevice:
    from meter.config.hardware import list_hardware
    from meter.device.select import select_device

    return select_device("cpu", list_hardware())


def test_attn_means_dsa_for_a_sparse_model(a):
    assert applicable_layers(a)[0] == "dsa"
    cases = expand_grid(MODEL, a, {"layers": ["attn"], "phase": ["prefill", "decode"], "seq": 64, "context": 256})
    assert [c.id for c in cases] == ["dsa.prefill.b1-s64.bf16", "dsa.decode.b1-ctx256.bf16"]


def test_the_gpu_suite_has_both_cases():
    suite = load_suite("v32-dsa")
    a = load_model(suite.model).args
    cases = [c for g in suite.grids for c in expand_grid(suite.model, a, g.axes())]
    ids = {".".join(c.id.split(".")[:2]) for c in cases}
    assert {"dsa.prefill", "dsa.decode", "mla.prefill", "mla.decode"} <= ids


@pytest.mark.parametrize(
    ("phase", "shape"),
    [("prefill", {"seq": 72}), ("decode", {"context": 160})],
)
def test_workload_counts_as_the_analytic_model_and_runs(a, phase, shape):
    case = BenchCase(MODEL, "dsa", phase, batch=2, dtype="fp32", **shape)
    w = build_workload(case, a, cpu())
    if phase == "decode":
        want_flops = S.dsa_layer_flops(a, batch=2, q_len=1, kv_len=160, pairs="full")
        assert w.bytes_per_call == S.dsa_layer_bytes(a, batch=2, q_len=1, kv_len=160, dtype_bytes=4)
        assert w.details.cache_bytes == 2 * 160 * (64 + 16 + 32) * 4  # latent + RoPE key + indexer key, fp32
    else:
        want_flops = S.dsa_layer_flops(a, batch=2, q_len=72, pairs="causal")
    assert w.flops_per_call == want_flops and w.tokens_per_call == (2 if phase == "decode" else 144)
    with FlopCounterMode(display=False) as counter:
        w.step(0)
    full = S.dsa_layer_flops(a, batch=2, q_len=shape.get("seq", 1), kv_len=shape.get("context"), pairs="full")
    assert counter.get_total_flops() == full  # what the kernel computes: every pair scored, top-k slots run


def test_dsa_needs_a_sparse_model():
    dense = load_model("deepseek-v3-tiny").args
    with pytest.raises(UnsupportedCase, match="no sparse attention"):
        build_workload(BenchCase("deepseek-v3-tiny", "dsa", "decode", context=64, dtype="fp32"), dense, cpu())
    with pytest.raises(UnsupportedCase, match="inference"):
        build_workload(BenchCase(MODEL, "dsa", "train", seq=64, dtype="fp32"), load_model(MODEL).args, cpu())

    # the CPU shapes are longer than the tiny model's top-k, so the selection is really sparse
    assert load_model(MODEL).args.sparse_attention.index_topk < 72
