"""DeepSeekMoE against a float64 reference; routing rules; grouped GEMM; FLOPs against FlopCounterMode."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from kernels.grouped import grouped_linear, register_flop_formulas
from kernels.moe import Gate, MoE, Routing
from meter.analytic.flops import TRAIN_MULTIPLIER, moe_layer_flops
from tests.kernels import reference
from tests.kernels.configs import MOE_CONFIGS, tiny_v3


def reference_params(layer: MoE) -> dict:
    f = layer.experts.hidden
    w13, w2 = layer.experts.w13.detach().double(), layer.experts.w2.detach().double()
    shared = None
    if layer.shared is not None:
        sw13 = layer.shared.w13.weight.detach().double()
        h = layer.shared.hidden
        shared = (sw13[:h], sw13[h:], layer.shared.w2.weight.detach().double())
    return {
        "gate": layer.gate.weight.detach().double(),
        "bias": None if layer.gate.bias is None else layer.gate.bias.double(),
        "w_gate": w13[:, :f],
        "w_up": w13[:, f:],
        "w_down": w2,
        "shared": shared,
    }


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.detach().double() - ref).norm() / ref.norm())


@pytest.mark.parametrize("config", sorted(MOE_CONFIGS))
def test_moe_matches_float64_reference(config: str):
    a = MOE_CONFIGS[config]()
    torch.manual_seed(1)
    layer = MoE(a)
    if layer.gate.bias is not None:
        layer.gate.bias.normal_(std=0.05)  # a trained-looking bias, so selection differs from scores
    x = torch.randn(3, 7, a.dim)
    ref, _ = reference.moe(x.double().view(-1, a.dim), reference_params(layer), a)
    assert rel_err(layer(x).view(-1, a.dim), ref) < 1e-5
    assert rel_err(layer.double()(x.double()).view(-1, a.dim), ref) < 1e-12


def test_bf16_moe_is_close_to_the_reference():
    a = tiny_v3()
    torch.manual_seed(2)
    layer = MoE(a)
    x = torch.randn(64, a.dim)
    ref, _ = reference.moe(x.double(), reference_params(layer), a)
    assert rel_err(layer.bfloat16()(x.bfloat16()), ref) < 2e-2


def test_selection_bias_changes_the_choice_not_the_weights():
    a = tiny_v3()
    torch.manual_seed(3)
    gate = Gate(a)
    x = torch.randn(32, a.dim)
    hot = 5
    gate.bias[hot] = 10.0  # far above any sigmoid score: expert 5 is always chosen
    weights, experts = gate(x)
    assert (experts == hot).any(dim=1).all()
    scores = torch.sigmoid(x @ gate.weight.T)
    expected = scores.gather(1, experts)
    expected = expected / expected.sum(-1, keepdim=True) * a.route_scale
    torch.testing.assert_close(weights, expected)  # weights from the unbiased scores


def test_group_limited_routing_keeps_experts_inside_the_chosen_groups():
    a = tiny_v3()
    torch.manual_seed(4)
    gate = Gate(a)
    gate.bias.normal_(std=0.1)
    x = torch.randn(200, a.dim)
    _, experts = gate(x)
    _, chosen = reference.moe(
        x.double(), {**reference_params(MoE(a)), "gate": gate.weight.double(), "bias": gate.bias.double()}, a
    )
    per_group = a.n_routed_experts // a.n_expert_groups
    for row, ref_row in zip(experts.tolist(), chosen):
        assert sorted(row) == sorted(ref_row)
        assert len({e // per_group for e in row}) <= a.n_limited_groups


def test_uniform_forced_routing_is_perfectly_balanced():
    a = tiny_v3()
    layer = MoE(a, routing=Routing("uniform"))
    layer(torch.randn(64, a.dim))  # 64 * 4 / 16 = 16 tokens per expert
    assert layer.last_tokens_per_expert.tolist() == [16] * a.n_routed_experts


def test_skewed_routing_has_hot_experts_and_distinct_choices():
    a = tiny_v3()
    layer = MoE(a, routing=Routing("skew", skew_exponent=1.5, seed=7))
    x = torch.randn(512, a.dim)
    _, experts = layer.gate(x)
    assert all(len(set(row)) == a.n_activated_experts for row in experts.tolist())
    counts = torch.bincount(experts.flatten(), minlength=a.n_routed_experts).float()
    assert counts[0] > 2 * counts.mean() and counts[-1] < counts.mean()


def test_bias_update_moves_load_toward_balance():
    a = tiny_v3()
    gate = Gate(a)
    load = torch.tensor([10.0] * 8 + [0.0] * 8)
    gate.update_bias(load, rate=0.01)
    assert (gate.bias[:8] < 0).all() and (gate.bias[8:] > 0).all()
    with pytest.raises(RuntimeError):
        Gate(dataclasses.replace(a, gate_bias=False)).update_bias(load)


def test_gradients_reach_every_parameter():
    a = tiny_v3()
    layer = MoE(a)
    x = torch.randn(2, 32, a.dim, requires_grad=True)
    y = layer(x)
    y.backward(torch.randn_like(y))
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_grouped_gemm_and_loop_fallback_agree_in_values_and_gradients():
    torch.manual_seed(5)
    x = torch.randn(37, 24, requires_grad=True)
    w = torch.randn(4, 16, 24, requires_grad=True)
    offsets = torch.tensor([5, 5, 20, 37], dtype=torch.int32)  # one empty group
    results = []
    for backend in ("grouped_mm", "loop"):
        xb, wb = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
        out = grouped_linear(xb, wb, offsets, backend)
        g = torch.randn_like(out, generator=torch.Generator().manual_seed(0))
        out.backward(g)
        results.append((out, xb.grad, wb.grad))
    for got, want in zip(results[0], results[1]):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_expert_parallel_slice_processes_t_times_k_rows_on_local_experts():
    a = dataclasses.replace(tiny_v3(), n_routed_experts=16)
    layer = MoE(a, routing=Routing("uniform"), n_local_experts=4)  # EP4: 4 local experts
    x = torch.randn(48, a.dim, requires_grad=True)
    y = layer(x)
    y.backward(torch.randn_like(y))
    counts = layer.last_tokens_per_expert
    assert counts.shape == (4,) and counts.sum() == 48 * a.n_activated_experts
    assert counts.tolist() == [48] * 4
    assert layer.experts.w13.shape[0] == 4 and layer.experts.w13.grad is not None
    with pytest.raises(ValueError):
        MoE(a, n_local_experts=5)


def count_flops(fn) -> int:
    register_flop_formulas()
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("config", sorted(MOE_CONFIGS))
@pytest.mark.parametrize("n_local", [None, 4])
def test_flops_match_the_analytic_model(config: str, n_local: int | None):
    a = MOE_CONFIGS[config]()
    layer = MoE(a, n_local_experts=n_local)
    tokens = 96
    x = torch.randn(tokens, a.dim, requires_grad=True)
    analytic = moe_layer_flops(a, tokens=tokens)
    forward = count_flops(lambda: layer(x))
    assert forward == pytest.approx(analytic, rel=0.01)

    def train_step():
        y = layer(x)
        y.backward(torch.randn_like(y))

    assert count_flops(train_step) == pytest.approx(TRAIN_MULTIPLIER * analytic, rel=0.01)


def test_flops_of_the_loop_fallback_match_the_grouped_path():
    a = tiny_v3()
    layer = MoE(a)
    x = torch.randn(64, a.dim)
    grouped = count_flops(lambda: layer(x))
    layer.experts.backend = "loop"
    assert count_flops(lambda: layer(x)) == grouped


def test_bf16_grouped_mm_falls_back_where_a_dimension_is_not_a_multiple_of_8():
    """grouped_mm needs 16-byte row strides ("strides should be multiple of 16 bytes"): an expert
    width of 100 in bf16 takes the loop, says why, and computes the same product."""
    from kernels.grouped import choose_backend, grouped_linear
    from kernels.moe import GroupedExperts

    assert choose_backend("cuda", torch.bfloat16, (9, 0), (7168, 4096, 2048)) == ("grouped_mm", None)
    backend, why = choose_backend("cuda", torch.bfloat16, (9, 0), (256, 200, 100))
    assert backend == "loop" and "multiples of 8" in why and "100" in why
    assert choose_backend("cpu", torch.float32, None, (100,))[0] == "grouped_mm"  # 400 bytes: aligned
    experts = GroupedExperts(3, 256, 100, dtype=torch.bfloat16)
    x = torch.randn(30, 256, dtype=torch.bfloat16)
    counts = torch.tensor([10, 5, 15])
    assert experts.backend_choice(x)[0] == "loop"
    out = experts(x, counts)  # the fused op would raise here
    offsets = torch.cumsum(counts, 0, dtype=torch.int32)
    ref = grouped_linear(
        torch.nn.functional.silu(grouped_linear(x, experts.w13, offsets, "loop")[:, :100])
        * grouped_linear(x, experts.w13, offsets, "loop")[:, 100:],
        experts.w2,
        offsets,
        "loop",
    )
    assert torch.equal(out, ref)
    with pytest.raises(RuntimeError, match="16 bytes"):
        torch.nn.functional.grouped_mm(x, experts.w13.transpose(-2, -1)[:, :, :100].contiguous(), offs=offsets)
