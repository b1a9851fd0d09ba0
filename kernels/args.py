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

    # Dense SwiGLU FFN: every layer of a dense model, the first `n_dense_layers` of an MoE model.
    inter_dim: int
    n_dense_layers: int = 0

    # DeepSeekMoE. n_routed_experts == 0 means a dense model.
    moe_inter_dim: int = 0
    n_routed_experts: int = 0
    n_shared_experts: int = 0
    n_activated_experts: int = 0
    n_expert_groups: int = 1
    n_limited_groups: int = 1
    score_func: Literal["softmax", "sigmoid"] = "softmax"
    route_scale: float = 1.0
    # V3's auxiliary-loss-free balancing: a per-expert bias that changes which experts are chosen,
    # never their weights.
    gate_bias: bool = False

    # Multi-head latent attention. kv_lora_rank == 0 means GQA attention instead.
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0

    # Grouped-query attention (dense models).
    n_kv_heads: int = 0
    head_dim: int = 0

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

    @property
    def attention(self) -> Literal["mla", "gqa"]:
        return "mla" if self.kv_lora_rank > 0 else "gqa"

    @property
    def is_moe(self) -> bool:
        return self.n_routed_experts > 0

    @property
    def n_moe_layers(self) -> int:
        return self.n_layers - self.n_dense_layers if self.is_moe else 0

    @property
    def n_ffn_dense_layers(self) -> int:
        """Layers whose FFN is the dense SwiGLU (all of them in a dense model)."""
        return self.n_dense_layers if self.is_moe else self.n_layers

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
