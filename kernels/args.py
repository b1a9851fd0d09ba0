"""Model shape arguments shared by every layer in `kernels`.

Field names follow DeepSeek's inference configs (``inference/configs/config_671B.json``) so a
DeepSeek config maps onto this dataclass one to one; a dense GQA model (Llama) sets
``kv_lora_rank = 0``, ``n_routed_experts = 0`` and the GQA fields instead.

This module imports nothing heavy: ``meter`` loads YAML into it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class ModelArgs:
    """Shape of a transformer decoder: a DeepSeek MoE/MLA model or a dense GQA model."""

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int

    # Dense SwiGLU FFN: every layer of a dense model, the first `n_dense_layers` of an MoE model, and
    # the layers an interleaved MoE model (`moe_layer_step` > 1) keeps dense. 0 for a model with no
    # dense FFN layer (Mixtral, Qwen3 MoE, gpt-oss, Llama 4 Scout).
    inter_dim: int = 0
    n_dense_layers: int = 0
    # After the first n_dense_layers, every moe_layer_step-th layer is MoE and the others dense
    # (Llama 4's interleave_moe_layer_step: layer i is MoE when (i + 1) % step == 0).
    moe_layer_step: int = 1

    # DeepSeekMoE. n_routed_experts == 0 means a dense model.
    moe_inter_dim: int = 0
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    n_activated_experts: int = 0
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    # Expert scores from the router logits: softmax (Mixtral, Qwen3, gpt-oss, DeepSeek-V2), sigmoid
    # (DeepSeek-V3, Kimi K2, GLM-4.5, Llama 4) or sqrt(softplus) (DeepSeek-V4).
    score_func: Literal["softmax", "sigmoid", "sqrtsoftplus"] = "softmax"
    # Divide the top-k weights by their sum (HF `norm_topk_prob`). None keeps the behaviour this
    # field predates: renormalise sigmoid scores, not softmax ones. Softmax then renormalise is
    # exactly a softmax over the top-k logits (Mixtral's and gpt-oss's router).
    norm_topk_prob: bool | None = None
    route_scale: float = 1.0
    # V3's auxiliary-loss-free balancing: a per-expert bias that changes which experts are chosen,
    # never their weights.
    gate_bias: bool = False
    # A router Linear with a bias (gpt-oss): it shifts the logits, so both choice and weights.
    router_bias: bool = False
    # Biases on the experts' projections (gpt-oss: gate_up_proj and down_proj).
    expert_bias: bool = False

    # Multi-head latent attention. kv_lora_rank == 0 means GQA attention instead.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0

    # Grouped-query attention.
    n_kv_heads: int = 0
    head_dim: int = 0
    qkv_bias: bool = False  # biases on q, k and v projections (gpt-oss, GLM-4.5)
    out_bias: bool = False  # a bias on the output projection (gpt-oss)
    qk_norm: bool = False  # a learned RMSNorm (head_dim weights) on each head's q and k (Qwen3, GLM-4.5)
    # A learned logit per head that takes part in the softmax but has no value (gpt-oss's sinks).
    attention_sinks: bool = False
    # Share of each head's channels that RoPE rotates (GLM-4.5: 0.5).
    partial_rotary_factor: float = 1.0

    # Layers that attend to a bounded span (the others attend to the whole context):
    # n_sliding_layers attend to the last `sliding_window` positions (gpt-oss, every other layer);
    # n_chunked_layers attend within their `attention_chunk`-aligned chunk (Llama 4, 3 of 4 layers).
    sliding_window: int = 0
    n_sliding_layers: int = 0
    attention_chunk: int = 0
    n_chunked_layers: int = 0

    # Multi-token prediction depth (DeepSeek-V3: 1 extra module predicting the 2nd next token).
    n_mtp_layers: int = 0

    rope_theta: float = 10000.0
    # YaRN context extension (DeepSeek's inference/model.py): an MLA layer built for more than
    # original_seq_len positions interpolates its slow RoPE frequencies by rope_factor and scales
    # the softmax by (0.1 * mscale * ln(rope_factor) + 1)**2. rope_factor 1 means no extension.
    original_seq_len: int = 4096
    rope_factor: float = 1.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    mscale: float = 1.0
    norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    # Weights of a vision encoder and its projector (Llama 4): in the total, never in a text token's
    # forward pass.
    vision_params: int = 0

    @property
    def attention(self) -> Literal["mla", "gqa"]:
        return "mla" if self.kv_lora_rank > 0 else "gqa"

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    @property
    def n_moe_layers(self) -> int:
        return sum(self.is_moe_layer(i) for i in range(self.n_layers))

    @property
    def n_ffn_dense_layers(self) -> int:
        """Layers whose FFN is the dense SwiGLU (all of them in a dense model)."""
        return self.n_layers - self.n_moe_layers

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` (0-based) has the MoE FFN."""
        if not self.is_moe or layer < self.n_dense_layers:
            return False
        return (layer + 1) % self.moe_layer_step == 0 if self.moe_layer_step > 1 else True

    @property
    def renormalizes_topk(self) -> bool:
        """Whether the router divides the top-k weights by their sum."""
        return self.score_func == "sigmoid" if self.norm_topk_prob is None else self.norm_topk_prob

    @property
    def n_full_attention_layers(self) -> int:
        """Layers that attend to the whole context."""
        return self.n_layers - self.n_sliding_layers - self.n_chunked_layers

    @property
    def qk_head_dim(self) -> int:
        """Per-head query/key width: MLA's nope + rope parts, or the GQA head dim."""
        if self.attention == "mla":
            return self.qk_nope_head_dim + self.qk_rope_head_dim
        return self.head_dim

    @property
    def attn_v_head_dim(self) -> int:
        return self.v_head_dim if self.attention == "mla" else self.head_dim

    @property
    def kv_heads(self) -> int:
        """Heads of K/V actually materialised in the naive (non-absorbed) form."""
        return self.n_heads if self.attention == "mla" else self.n_kv_heads
