"""Small model shapes for kernel tests: the tiny V3 config and variants covering the other branches."""

from __future__ import annotations

import dataclasses

from kernels.args import ModelArgs
from meter.config.models import load_model


def tiny_v3() -> ModelArgs:
    return load_model("deepseek-v3-tiny").args


def v2_like() -> ModelArgs:
    """Softmax gate without selection bias, group-limited (V2's gate), query LoRA."""
    return dataclasses.replace(
        tiny_v3(), score_func="softmax", gate_bias=False, route_scale=16.0, n_shared_experts=2, n_activated_experts=3
    )


def v2_lite_like() -> ModelArgs:
    """Softmax gate, no groups, no query LoRA (a plain wq), 2 shared experts, top-6."""
    return dataclasses.replace(
        tiny_v3(),
        score_func="softmax",
        gate_bias=False,
        route_scale=1.0,
        n_expert_groups=1,
        n_limited_groups=1,
        n_shared_experts=2,
        n_activated_experts=6,
        q_lora_rank=0,
        n_heads=4,
    )


def small_gqa() -> ModelArgs:
    """Llama-shaped dense model, scaled down: 8 query heads over 2 KV heads."""
    return dataclasses.replace(
        load_model("llama-3.1-405b").args,
        dim=128,
        inter_dim=320,
        n_layers=2,
        n_heads=8,
        n_kv_heads=2,
        head_dim=16,
        vocab_size=256,
    )


MOE_CONFIGS = {"tiny-v3": tiny_v3, "v2-like": v2_like, "v2-lite-like": v2_lite_like}
MLA_CONFIGS = {"tiny-v3": tiny_v3, "v2-lite-like": v2_lite_like}
