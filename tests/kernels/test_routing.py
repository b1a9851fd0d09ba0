"""Each model's router, as its own code writes it, against kernels.moe.Gate in float64.

The references transcribe the routers of Hugging Face transformers and DeepSeek's code, one
formula each, written without kernels/: Qwen3 MoE (softmax, top-k, renormalise when
``norm_topk_prob``), Mixtral (the same, always renormalised), gpt-oss (a router with a bias, top-k
of the logits, softmax over those k), Llama 4 (top-k of the logits, sigmoid, no renormalisation),
DeepSeek-V4 (sqrt(softplus) scores, a selection bias, renormalised, scaled). V3's sigmoid router
with groups is covered in test_moe.py.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from kernels.args import ModelArgs
from kernels.moe import Gate

E, K, D, T = 16, 4, 24, 40


def args(**kw) -> ModelArgs:
    base = dict(vocab_size=64, dim=D, n_layers=1, n_heads=2, n_kv_heads=1, head_dim=8, moe_inter_dim=8)
    base.update(n_routed_experts=E, n_activated_experts=K)
    base.update(kw)
    return ModelArgs(**base)


def gate_of(a: ModelArgs, seed: int = 0) -> Gate:
    torch.manual_seed(seed)
    g = Gate(a).double()
    if g.logit_bias is not None:
        with torch.no_grad():
            g.logit_bias.normal_(std=0.3)
    if g.bias is not None:
        g.bias.normal_(std=0.05)
    return g


def qwen3_moe(x, w, top_k, norm_topk_prob):
    """transformers Qwen3MoeSparseMoeBlock: softmax in float, top-k, divide by the sum if norm_topk_prob."""
    probs = F.softmax(x @ w.T, dim=1, dtype=torch.float64)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    if norm_topk_prob:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, experts


def mixtral(x, w, top_k):
    """transformers MixtralSparseMoeBlock: softmax, top-k, routing_weights /= sum."""
    probs = F.softmax(x @ w.T, dim=1, dtype=torch.float64)
    weights, experts = torch.topk(probs, top_k, dim=-1)
    return weights / weights.sum(dim=-1, keepdim=True), experts


def gpt_oss(x, w, b, top_k):
    """transformers GptOssTopKRouter: logits = x W^T + b; top-k of the logits; softmax over those k."""
    top, experts = torch.topk(x @ w.T + b, top_k, dim=-1, sorted=True)
    return F.softmax(top, dim=1, dtype=top.dtype), experts


def llama4(x, w, top_k):
    """transformers Llama4Router: top-k of the logits, sigmoid of those (no renormalisation)."""
    top, experts = torch.topk(x @ w.T, top_k, dim=1)
    return torch.sigmoid(top), experts


def deepseek_v4(x, w, bias, top_k, route_scale):
    """sqrt(softplus) scores; the bias picks experts, the unbiased scores weigh them; renormalise, scale."""
    scores = torch.sqrt(torch.log1p(torch.exp(x @ w.T)))
    experts = torch.topk(scores + bias, top_k, dim=-1).indices
    weights = scores.gather(1, experts)
    return weights / weights.sum(dim=-1, keepdim=True) * route_scale, experts


def by_expert(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """[T, E] with each token's weight at its chosen experts: order-free comparison."""
    return torch.zeros(weights.shape[0], E, dtype=torch.float64).scatter(1, experts, weights.double())


def check(gate: Gate, x: torch.Tensor, ref: tuple[torch.Tensor, torch.Tensor]):
    weights, experts = gate(x)
    assert torch.equal(experts.sort(dim=1).values, ref[1].sort(dim=1).values)
    torch.testing.assert_close(by_expert(weights, experts), by_expert(*ref), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("norm", [True, False])
def test_qwen3_softmax_with_and_without_renormalisation(norm: bool):
    g = gate_of(args(score_func="softmax", norm_topk_prob=norm))
    x = torch.randn(T, D, dtype=torch.float64)
    check(g, x, qwen3_moe(x, g.weight.detach(), K, norm))
    w, _ = g(x)
    assert torch.allclose(w.sum(-1), torch.ones(T, dtype=torch.float64)) == norm


def test_mixtral_renormalises_after_the_softmax():
    g = gate_of(args(score_func="softmax", norm_topk_prob=True), seed=1)
    x = torch.randn(T, D, dtype=torch.float64)
    check(g, x, mixtral(x, g.weight.detach(), K))


def test_gpt_oss_softmax_over_the_top_k_logits_with_a_router_bias():
    g = gate_of(args(score_func="softmax", norm_topk_prob=True, router_bias=True), seed=2)
    x = torch.randn(T, D, dtype=torch.float64)
    check(g, x, gpt_oss(x, g.weight.detach(), g.logit_bias.detach(), K))
    # The bias moves the choice: without it other experts win for some tokens.
    plain = gpt_oss(x, g.weight.detach(), torch.zeros(E, dtype=torch.float64), K)[1]
    assert not torch.equal(plain.sort(1).values, g(x)[1].sort(1).values)


def test_llama4_sigmoid_of_the_top_k_logits():
    g = gate_of(args(score_func="sigmoid", norm_topk_prob=False, n_activated_experts=1), seed=3)
    x = torch.randn(T, D, dtype=torch.float64)
    check(g, x, llama4(x, g.weight.detach(), 1))


def test_deepseek_v4_sqrt_softplus_with_selection_bias():
    a = args(score_func="sqrtsoftplus", norm_topk_prob=True, gate_bias=True, route_scale=2.5)
    g = gate_of(a, seed=4)
    x = torch.randn(T, D, dtype=torch.float64)
    check(g, x, deepseek_v4(x, g.weight.detach(), g.bias, K, 2.5))


def test_renormalisation_default_is_the_behaviour_before_the_flag():
    a = args(score_func="sigmoid")
    assert a.norm_topk_prob is None and a.renormalizes_topk
    assert not dataclasses.replace(a, score_func="softmax").renormalizes_topk
    assert not dataclasses.replace(a, norm_topk_prob=False).renormalizes_topk
