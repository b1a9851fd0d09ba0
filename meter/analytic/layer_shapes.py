"""One attention block's sizes: MLA's weights and one token's cache entry in a layer.

The bottom of the analytic counts: whole-model parameters (:mod:`meter.analytic.params`), memory
(:mod:`meter.analytic.memory`) and the sparse-attention formulas (:mod:`meter.analytic.sparse_attention`)
all build on these, and these on nothing else, so the three need not import one another in a circle.
"""

from __future__ import annotations

from typing import Literal

from kernels.args import ModelArgs

CacheForm = Literal["latent", "expanded"]


def mla_params(a: ModelArgs) -> int:
    """Weights of one MLA block (projections and the q/kv LoRA norms)."""
    h = a.n_heads
    if a.q_lora_rank:
        q = a.dim * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * h * a.qk_head_dim
    else:
        q = a.dim * h * a.qk_head_dim
    kv_a = a.dim * (a.kv_lora_rank + a.qk_rope_head_dim)
    kv_norm = a.kv_lora_rank
    kv_b = a.kv_lora_rank * h * (a.qk_nope_head_dim + a.v_head_dim)
    out = h * a.v_head_dim * a.dim
    return q + kv_a + kv_norm + kv_b + out


def kv_cache_elements_per_token_per_layer(a: ModelArgs, form: CacheForm = "latent") -> int:
    """Cached values per token in one layer.

    MLA's latent cache holds kv_lora_rank + qk_rope_head_dim values (576 for V3) shared by all
    heads; ``expanded`` is what caching per-head keys and values would take instead (DeepSeek's
    reference ``attn_impl="naive"``). GQA caches K and V of its KV heads either way.
    """
    if a.attention == "mla":
        if form == "latent":
            return a.kv_lora_rank + a.qk_rope_head_dim
        return a.n_heads * (a.qk_head_dim + a.v_head_dim)
    if a.attention == "compressed":
        return a.head_dim  # one entry of the shared KV head (keys are values)
    return 2 * a.n_kv_heads * a.head_dim
