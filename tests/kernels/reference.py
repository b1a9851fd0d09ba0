"""Straightforward float64 references for the kernels, written independently of `kernels/`.

Loops over tokens and heads, explicit softmax and masks: slow and obvious on purpose.
"""

from __future__ import annotations

import math

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def rotate(x: torch.Tensor, position: int, theta: float, inv_freq: list[float] | None = None) -> torch.Tensor:
    """RoPE on the last dim of x (pairs (2i, 2i+1)) at one position; pair i turns by ``inv_freq[i]``
    per position (``theta**(-2i/d)`` unless given)."""
    d = x.shape[-1]
    out = x.clone()
    for i in range(d // 2):
        angle = position * (theta ** (-2 * i / d) if inv_freq is None else inv_freq[i])
        c, s = math.cos(angle), math.sin(angle)
        a, b = x[..., 2 * i], x[..., 2 * i + 1]
        out[..., 2 * i] = a * c - b * s
        out[..., 2 * i + 1] = a * s + b * c
    return out


def swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    g = x @ w_gate.T
    return ((g / (1 + torch.exp(-g))) * (x @ w_up.T)) @ w_down.T


def moe(x_TD: torch.Tensor, p: dict, a) -> tuple[torch.Tensor, list[list[int]]]:
    """DeepSeekMoE for each token on its own. ``p`` holds float64 weights:
    gate [E, D], bias [E] or None, experts (w_gate [E, F, D], w_up [E, F, D], w_down [E, D, F]),
    shared (w_gate, w_up, w_down) or None. Returns the output and each token's chosen experts.
    """
    out = torch.zeros_like(x_TD)
    chosen = []
    e_total, groups = a.n_routed_experts, a.n_expert_groups
    per_group = e_total // groups
    for t in range(x_TD.shape[0]):
        x = x_TD[t]
        logits = p["gate"] @ x
        if a.score_func == "sigmoid":
            scores = 1 / (1 + torch.exp(-logits))
        else:
            scores = torch.exp(logits - logits.max())
            scores = scores / scores.sum()
        choice = scores + p["bias"] if p["bias"] is not None else scores.clone()
        allowed = set(range(e_total))
        if groups > 1:
            group_score = []
            for g in range(groups):
                members = sorted(choice[g * per_group : (g + 1) * per_group].tolist(), reverse=True)
                group_score.append(sum(members[:2]) if p["bias"] is not None else members[0])
            kept = sorted(range(groups), key=lambda g: -group_score[g])[: a.n_limited_groups]
            allowed = {e for g in kept for e in range(g * per_group, (g + 1) * per_group)}
        ranked = sorted(allowed, key=lambda e: -float(choice[e]))[: a.n_activated_experts]
        weights = torch.stack([scores[e] for e in ranked])
        if a.renormalizes_topk:  # norm_topk_prob; unset: sigmoid renormalises, softmax does not
            weights = weights / weights.sum()
        weights = weights * a.route_scale
        y = torch.zeros_like(x)
        for w, e in zip(weights, ranked):
            y = y + w * swiglu(x, p["w_gate"][e], p["w_up"][e], p["w_down"][e])
        if p["shared"] is not None:
            y = y + swiglu(x, *p["shared"])
        out[t] = y
        chosen.append(ranked)
    return out, chosen


def attention(q_SHd: torch.Tensor, k_THd: torch.Tensor, v_THe: torch.Tensor, scale: float, offset: int) -> torch.Tensor:
    """Causal attention of S queries at positions offset.. against T keys (T = offset + S)."""
    s, h = q_SHd.shape[:2]
    out = torch.zeros(s, h, v_THe.shape[-1], dtype=q_SHd.dtype)
    for i in range(s):
        visible = offset + i + 1
        for head in range(h):
            logits = (k_THd[:visible, head] @ q_SHd[i, head]) * scale
            w = torch.exp(logits - logits.max())
            w = w / w.sum()
            out[i, head] = w @ v_THe[:visible, head]
    return out


def mla(
    x_SD: torch.Tensor, p: dict, a, inv_freq: list[float] | None = None, scale: float | None = None
) -> torch.Tensor:
    """MLA over one sequence, naive form, in float64. ``p`` holds the layer's weights by name;
    ``inv_freq`` and ``scale`` replace the plain RoPE frequencies and the 1/sqrt(d_qk) scale."""
    s = x_SD.shape[0]
    h, nope, rope, v_dim = a.n_heads, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim
    if a.q_lora_rank:
        q = rms_norm(x_SD @ p["wq_a"].T, p["q_norm"], a.norm_eps) @ p["wq_b"].T
    else:
        q = x_SD @ p["wq"].T
    q = q.view(s, h, nope + rope)
    kv_a = x_SD @ p["wkv_a"].T
    latent = rms_norm(kv_a[:, : a.kv_lora_rank], p["kv_norm"], a.norm_eps)
    k_pe = kv_a[:, a.kv_lora_rank :]
    kv = (latent @ p["wkv_b"].T).view(s, h, nope + v_dim)
    q_full = torch.zeros(s, h, nope + rope, dtype=x_SD.dtype)
    k_full = torch.zeros(s, h, nope + rope, dtype=x_SD.dtype)
    for i in range(s):
        q_full[i, :, :nope] = q[i, :, :nope]
        q_full[i, :, nope:] = rotate(q[i, :, nope:], i, a.rope_theta, inv_freq)
        k_full[i, :, :nope] = kv[i, :, :nope]
        k_full[i, :, nope:] = rotate(k_pe[i], i, a.rope_theta, inv_freq)  # one RoPE key shared by all heads
    out = attention(q_full, k_full, kv[:, :, nope:], (nope + rope) ** -0.5 if scale is None else scale, 0)
    return out.reshape(s, h * v_dim) @ p["wo"].T


def gqa(x_SD: torch.Tensor, p: dict, a) -> torch.Tensor:
    """Grouped-query attention over one sequence in float64 (wq, wk, wv, wo)."""
    s = x_SD.shape[0]
    h, g, d = a.n_heads, a.n_kv_heads, a.head_dim
    q = (x_SD @ p["wq"].T).view(s, h, d)
    k = (x_SD @ p["wk"].T).view(s, g, d)
    v = (x_SD @ p["wv"].T).view(s, g, d)
    for i in range(s):
        q[i] = rotate(q[i], i, a.rope_theta)
        k[i] = rotate(k[i], i, a.rope_theta)
    group = h // g
    k = torch.stack([k[:, j // group] for j in range(h)], dim=1)
    v = torch.stack([v[:, j // group] for j in range(h)], dim=1)
    return attention(q, k, v, d**-0.5, 0).reshape(s, h * d) @ p["wo"].T
