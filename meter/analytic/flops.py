"""FLOPs of a model and of its layers, counted the way Megatron-LM and DeepSeek count them.

- A multiply-add is 2 FLOPs; only matrix products count (norms, softmax, activations: 0), which
  is also what ``torch.utils.flop_counter.FlopCounterMode`` counts.
- Training (forward + backward) is 3 x forward: the backward pass does two products (input and
  weight gradients) for each forward one.
- Causal attention: each query attends to half the sequence on average (Megatron's ``s/2``).
  ``pairs="full"`` counts every query-key pair instead, which is what a kernel that computes the
  whole score matrix and masks it executes.
- MLA has two forms. ``naive`` expands latents into per-head keys (qk_nope + qk_rope wide) and
  values; ``absorbed`` folds the key and value up-projections into the query and output, so
  attention runs over the cached latent (kv_lora_rank + qk_rope_head_dim wide) directly. In
  training and prefill both do the same projection work per token. In decode against the latent
  cache the naive form up-projects every cached latent at every step.

Per-token functions return a :class:`FlopsPerToken` breakdown; per-layer functions return the
FLOPs of one forward call at a given batch shape, for comparing with measured layers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields
from typing import Literal

from kernels.args import ModelArgs
from meter.analytic import sparse_attention as S
from meter.analytic.params import (
    attention_matrix_params,
    attention_matrix_params_total,
    expert_params,
    swiglu_params,
)
from meter.domains import InferencePhase

AttentionForm = Literal["naive", "absorbed"]
AttentionPairs = Literal["causal", "full"]
TRAIN_MULTIPLIER = 3  # forward + backward, backward = 2 x forward


def attention_gemm_flops_per_token(a: ModelArgs) -> float:
    """Forward FLOPs of one attention block's projections for one token (either MLA form)."""
    return 2.0 * attention_matrix_params(a)


def mla_kv_up_flops_per_position(a: ModelArgs) -> float:
    """Forward FLOPs of up-projecting one latent into per-head keys and values (``wkv_b``); 0 for GQA."""
    if a.attention != "mla":
        return 0.0
    return 2.0 * a.kv_lora_rank * a.n_heads * (a.qk_nope_head_dim + a.v_head_dim)


def attention_core_flops_per_pair(a: ModelArgs, form: AttentionForm = "naive") -> float:
    """Forward FLOPs of QK^T and AV for one (query, key) pair, summed over heads."""
    if a.attention == "mla" and form == "absorbed":
        return 2.0 * a.n_heads * ((a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank)
    return 2.0 * a.n_heads * (a.qk_head_dim + a.attn_v_head_dim)


def attention_pairs(q_len: int, kv_len: int, pairs: AttentionPairs, *, window: int = 0, chunk: int = 0) -> float:
    """Query-key pairs of one sequence: q_len new queries against kv_len keys (kv_len >= q_len).

    Causal counts Megatron's half-triangle for the new block: q_len*(kv_len-q_len) + q_len^2/2,
    i.e. the integral of "keys seen at position x" over the new positions. A sliding ``window``
    caps that at the window; a ``chunk`` restarts it at every chunk boundary (Llama 4's chunked
    attention). ``full`` counts every pair of the score matrix a kernel computes before masking,
    which for a bounded layer is the span it attends to at most.
    """
    if kv_len < q_len:
        raise ValueError(f"kv_len ({kv_len}) must be at least q_len ({q_len})")
    if window and chunk:
        raise ValueError("a layer has a sliding window or a chunk, not both")
    if pairs == "full":
        span = min(kv_len, window or chunk or kv_len)
        return float(q_len) * span
    return _causal_keys_upto(kv_len, window, chunk) - _causal_keys_upto(kv_len - q_len, window, chunk)


def _causal_keys_upto(x: float, window: int, chunk: int) -> float:
    """Integral over positions 0..x of the keys a causal query at that position attends to."""
    if window and x > window:
        return window * window / 2.0 + window * (x - window)
    if chunk:
        whole, part = divmod(x, chunk)
        return whole * chunk * chunk / 2.0 + part * part / 2.0
    return x * x / 2.0


def attended_keys(a: ModelArgs, q_len: int, kv_len: int, pairs: AttentionPairs = "causal") -> float:
    """Keys a new token attends to, on average over q_len new tokens, summed over the model's layers.

    Full-attention layers see the context; sliding-window and chunked layers their span.
    """
    per_kind = (
        (a.n_full_attention_layers, 0, 0),
        (a.n_sliding_layers, a.sliding_window, 0),
        (a.n_chunked_layers, 0, a.attention_chunk),
    )
    pairs_total = sum(n * attention_pairs(q_len, kv_len, pairs, window=w, chunk=c) for n, w, c in per_kind if n)
    return pairs_total / q_len


def decode_attended_keys(a: ModelArgs, context_len: int) -> float:
    """Keys one generated token at position ``context_len`` (itself included) attends to, over all layers."""
    keys = a.n_full_attention_layers * float(context_len)
    if a.n_sliding_layers:
        keys += a.n_sliding_layers * min(context_len, a.sliding_window)
    if a.n_chunked_layers:
        keys += a.n_chunked_layers * ((context_len - 1) % a.attention_chunk + 1)
    return keys


@dataclass(frozen=True)
class FlopsPerToken:
    """Forward (or training) FLOPs per token, by component."""

    attention_gemm: float
    attention_core: float
    dense_ffn: float
    router: float
    shared_experts: float
    routed_experts: float
    output_head: float
    # A sparse-attention indexer's scores (DeepSeek-V3.2, V4): products of activations, like the core.
    indexer: float = 0.0

    @property
    def attention(self) -> float:
        return self.attention_gemm + self.attention_core + self.indexer

    @property
    def gemm(self) -> float:
        """Everything but the attention core and the indexer's scores: the products with weights."""
        return self.total - self.attention_core - self.indexer

    @property
    def total(self) -> float:
        return sum(getattr(self, f.name) for f in fields(self))

    def scaled(self, factor: float) -> FlopsPerToken:
        return FlopsPerToken(**{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out.update(attention=self.attention, gemm=self.gemm, total=self.total)
        return out


def forward_flops_per_token(
    a: ModelArgs,
    mean_kv_len: float,
    *,
    form: AttentionForm = "naive",
    head_fraction: float = 1.0,
    kv_up_positions: float = 1.0,
    layer_keys: float | None = None,
) -> FlopsPerToken:
    """Forward FLOPs for one token that attends to ``mean_kv_len`` keys in every layer.

    Args:
        layer_keys: keys attended summed over the layers, when they differ by layer (sliding
            windows, chunks: :func:`attended_keys`); default ``n_layers * mean_kv_len``.
        head_fraction: share of tokens that go through the output head (1 in training; prefill
            computes logits for the last position only).
        kv_up_positions: latents each token up-projects with ``wkv_b`` in the naive MLA form: 1 in
            training and prefill (its own), the whole context in decode over a latent cache.
    """
    n_moe = a.n_moe_layers
    kv_up = mla_kv_up_flops_per_position(a)
    extra_kv_up = kv_up * (kv_up_positions - 1.0) if form == "naive" else 0.0
    return FlopsPerToken(
        attention_gemm=2.0 * attention_matrix_params_total(a) + a.n_layers * extra_kv_up,
        attention_core=attention_core_flops_per_pair(a, form)
        * (a.n_layers * mean_kv_len if layer_keys is None else layer_keys),
        dense_ffn=a.n_ffn_dense_layers * 2.0 * swiglu_params(a.dim, a.inter_dim),
        router=n_moe * 2.0 * a.dim * a.n_routed_experts,
        shared_experts=n_moe * a.n_shared_experts * 2.0 * expert_params(a) if a.is_moe else 0.0,
        routed_experts=n_moe * a.n_activated_experts * 2.0 * expert_params(a) if a.is_moe else 0.0,
        output_head=head_fraction * 2.0 * a.dim * a.vocab_size,
    )


def with_sparse_attention(f: FlopsPerToken, a: ModelArgs, context: int, phase: InferencePhase) -> FlopsPerToken:
    """``f`` with its attention counted as the model reads its context: DeepSeek-V3.2's indexer and
    top-k MLA, or V4's window, compressed entries and indexer (``meter.analytic.sparse_attention``).
    A dense-attention model's counts are returned unchanged."""
    if not a.is_sparse:
        return f
    att = S.attention_per_token(a, context, phase)
    return dataclasses.replace(
        f, attention_gemm=att.projections_flops, attention_core=att.core_flops, indexer=att.indexer_flops
    )


def train_flops_per_token(a: ModelArgs, seq_len: int, *, pairs: AttentionPairs = "causal") -> FlopsPerToken:
    """Forward + backward FLOPs per token of the main model (MTP excluded: see ``mtp_train_flops_per_token``).

    A sparse-attention model is counted as its sparse forward (prefill form) x 3.
    """
    mean_kv = attention_pairs(seq_len, seq_len, pairs) / seq_len
    keys = attended_keys(a, seq_len, seq_len, pairs)
    forward = with_sparse_attention(forward_flops_per_token(a, mean_kv, layer_keys=keys), a, seq_len, "prefill")
    return forward.scaled(TRAIN_MULTIPLIER)


def mtp_train_flops_per_token(a: ModelArgs, seq_len: int, *, pairs: AttentionPairs = "causal") -> float:
    """Extra forward + backward FLOPs per token of the MTP modules (projection, block, shared head)."""
    if not a.n_mtp_layers:
        return 0.0
    mean_kv = attention_pairs(seq_len, seq_len, pairs) / seq_len
    block = attention_gemm_flops_per_token(a) + attention_core_flops_per_pair(a) * mean_kv
    if a.is_moe:
        block += 2.0 * a.dim * a.n_routed_experts + 2.0 * (a.n_shared_experts + a.n_activated_experts) * expert_params(
            a
        )
    else:
        block += 2.0 * swiglu_params(a.dim, a.inter_dim)
    per_module = 2.0 * (2 * a.dim * a.dim) + block + 2.0 * a.dim * a.vocab_size
    return TRAIN_MULTIPLIER * a.n_mtp_layers * per_module


def prefill_flops_per_token(a: ModelArgs, prompt_len: int, *, pairs: AttentionPairs = "causal") -> FlopsPerToken:
    """Forward FLOPs per prompt token; logits for the last position only."""
    mean_kv = attention_pairs(prompt_len, prompt_len, pairs) / prompt_len
    keys = attended_keys(a, prompt_len, prompt_len, pairs)
    f = forward_flops_per_token(a, mean_kv, head_fraction=1.0 / prompt_len, layer_keys=keys)
    return with_sparse_attention(f, a, prompt_len, "prefill")


def decode_flops_per_token(a: ModelArgs, context_len: int, *, form: AttentionForm = "absorbed") -> FlopsPerToken:
    """Forward FLOPs for one generated token attending to ``context_len`` positions (itself included).

    The naive MLA form decodes against the same latent cache, so it up-projects all
    ``context_len`` latents through ``wkv_b`` at every step; the absorbed form never does.
    """
    f = forward_flops_per_token(
        a,
        float(context_len),
        form=form,
        kv_up_positions=float(context_len),
        layer_keys=decode_attended_keys(a, context_len),
    )
    return with_sparse_attention(f, a, context_len, "decode")


# --- One layer at a given batch shape (forward FLOPs; x TRAIN_MULTIPLIER for forward + backward) ---


def attention_layer_flops(
    a: ModelArgs,
    *,
    batch: int,
    q_len: int,
    kv_len: int | None = None,
    pairs: AttentionPairs = "causal",
    form: AttentionForm = "naive",
) -> float:
    """One attention block (MLA or GQA) for batch sequences of q_len new tokens against kv_len keys.

    Projections run on the new tokens; the naive MLA form up-projects every key position's
    latent (kv_len of them: the sequence itself in training and prefill, the cache in decode).
    """
    kv_len = q_len if kv_len is None else kv_len
    kv_up = mla_kv_up_flops_per_position(a)
    gemm = batch * q_len * (attention_gemm_flops_per_token(a) - kv_up)
    gemm += batch * (kv_len if form == "naive" else q_len) * kv_up
    core = batch * attention_pairs(q_len, kv_len, pairs) * attention_core_flops_per_pair(a, form)
    return gemm + core


def expert_gemm_flops(a: ModelArgs, token_assignments: float) -> float:
    """Routed-expert SwiGLU FLOPs for a number of (token, expert) assignments."""
    return 2.0 * token_assignments * expert_params(a)


def moe_layer_flops(
    a: ModelArgs,
    *,
    tokens: int,
    routed_assignments: float | None = None,
    include_shared: bool = True,
    include_router: bool = True,
) -> float:
    """One MoE FFN: router, shared experts and routed experts for ``tokens`` tokens.

    ``routed_assignments`` defaults to tokens * top-k (every token sent to k experts).
    """
    assignments = tokens * a.n_activated_experts if routed_assignments is None else routed_assignments
    flops = expert_gemm_flops(a, assignments)
    if include_router:
        flops += 2.0 * tokens * a.dim * a.n_routed_experts
    if include_shared:
        flops += expert_gemm_flops(a, tokens * a.n_shared_experts)
    return flops


def dense_ffn_layer_flops(a: ModelArgs, *, tokens: int) -> float:
    """One dense SwiGLU FFN for ``tokens`` tokens."""
    return 2.0 * tokens * swiglu_params(a.dim, a.inter_dim)
