"""Model shape arguments shared by every layer in `kernels`.

Field names follow DeepSeek's inference configs (``inference/configs/config_671B.json``) so a
DeepSeek config maps onto this dataclass one to one; a dense GQA model (Llama) sets
``kv_lora_rank = 0``, ``n_routed_experts = 0`` and the GQA fields instead.

This module imports nothing heavy: ``meter`` loads YAML into it without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# How an MoE layer routes tokens (kernels.moe.Routing; a bench case names it): the learned gate, or forced
RoutingMode = Literal["learned", "uniform", "skew"]
# fp8 expert GEMMs' scales (kernels.fp8): one per row and output channel, or DeepSeek's 1x128/128x128 blocks
Fp8Recipe = Literal["rowwise", "blockwise"]
# How MLA decodes (kernels.mla): caching per-head K/V, the absorbed latent form, or the fused Triton kernel
MlaDecodeForm = Literal["absorbed", "naive", "fused"]

# Range checks as plain field metadata (read by meter's schema loader; kernels must not import meter).
_POSITIVE = {"gt": 0}
_NON_NEGATIVE = {"ge": 0}


@dataclass(frozen=True, kw_only=True)
class SparseAttentionArgs:
    """DeepSeek Sparse Attention (DSA, DeepSeek-V3.2) on top of MLA.

    A lightning indexer scores every preceding token for each query,
    I(t, s) = sum_j w(t, j) * ReLU(q(t, j) . k(s)), with ``index_n_heads`` query heads of
    ``index_head_dim`` and one key per token shared by them; MLA then attends only the
    ``index_topk`` best-scoring tokens. Field names are those of DeepSeek's config
    (``deepseek-ai/DeepSeek-V3.2-Exp`` inference/config_671B_v3.2.json).
    """

    index_n_heads: int = field(metadata=_POSITIVE)
    index_head_dim: int = field(metadata=_POSITIVE)
    index_topk: int = field(metadata=_POSITIVE)
    # The indexer's q and k are fp8 e4m3 with one float32 scale per block of this many values.
    index_quant_block: int = field(default=128, metadata=_POSITIVE)
    # Bytes per token per layer of the indexer's key cache: 128 fp8 + one float32 scale = 132
    # (DeepSeek-V3.2-Exp inference/model.py Indexer k_cache / k_scale_cache).
    index_key_bytes: int = field(default=132, metadata=_POSITIVE)
    # Bytes per token per layer of the MLA cache in FlashMLA's fp8 sparse format: 512 fp8 latent
    # + 4 float32 scales + 64 bf16 RoPE values = 656 (FlashMLA README, "FP8 KV cache").
    fp8_kv_entry_bytes: int = field(default=656, metadata=_POSITIVE)


@dataclass(frozen=True, kw_only=True)
class CompressedAttentionArgs:
    """DeepSeek-V4's hybrid attention, as its public config.json and vLLM's implementation define it.

    Every layer is multi-query attention with one ``head_dim``-wide KV head (keys are values;
    ``ModelArgs.head_dim``, ``n_kv_heads`` 1) over three sources: the last ``sliding_window``
    tokens; and, where its compress ratio ``r`` is above 1, one compressed entry per ``r``
    tokens. Layers at ``indexed_compress_ratio`` (4: "CSA") select ``index_topk`` compressed
    entries with a lightning indexer as in V3.2; the others ("HCA", 128) attend all of them.
    Ratio 0 (or 1) is a sliding-window-only layer. The output projection is low-rank and grouped:
    ``o_groups`` groups of heads each project to ``o_lora_rank``, then one matrix to the model width.
    """

    # One entry per layer of the main model; config.json's extra trailing entries (the MTP
    # layers') may be kept and are ignored.
    compress_ratios: tuple[int, ...] = field(metadata=_NON_NEGATIVE)
    sliding_window: int = field(metadata=_POSITIVE)
    o_lora_rank: int = field(metadata=_POSITIVE)
    o_groups: int = field(metadata=_POSITIVE)
    index_n_heads: int = field(metadata=_POSITIVE)
    index_head_dim: int = field(metadata=_POSITIVE)
    index_topk: int = field(metadata=_POSITIVE)
    # Which compress ratio has an indexer: vLLM's "C4A" layers run it, "C128A" layers get their
    # indices "pre-computed during metadata build" (meter reads that as: all entries).
    indexed_compress_ratio: int = field(default=4, metadata=_POSITIVE)
    # Manifold-constrained hyper-connections: hc_mult parallel residual streams.
    hc_mult: int = field(default=1, metadata=_POSITIVE)
    hc_sinkhorn_iters: int = field(default=0, metadata=_NON_NEGATIVE)
    # The first n_hash_layers MoE layers route by a token-id -> experts table, not a learned gate.
    n_hash_layers: int = field(default=0, metadata=_NON_NEGATIVE)
    # Bytes per cached entry (sliding-window or compressed) in FlashMLA's fp8 "MODEL1" format:
    # 448 fp8 + 64 bf16 RoPE + 7 UE8M0 scales + 1 pad = 584; and per indexer key entry: 132.
    fp8_kv_entry_bytes: int = field(default=584, metadata=_POSITIVE)
    index_key_bytes: int = field(default=132, metadata=_POSITIVE)

    def layer_ratios(self, n_layers: int) -> tuple[int, ...]:
        """Compress ratio of each of the main model's ``n_layers`` layers (0: sliding window only)."""
        return tuple(0 if r <= 1 else r for r in self.compress_ratios[:n_layers])


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

    # DeepSeek-V3.2's sparse attention over MLA (None: dense attention over the whole context).
    sparse_attention: SparseAttentionArgs | None = None
    # DeepSeek-V4's hybrid compressed attention (None: not a V4-style model).
    compressed_attention: CompressedAttentionArgs | None = None

    @property
    def attention(self) -> Literal["mla", "gqa", "compressed"]:
        if self.compressed_attention is not None:
            return "compressed"
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
    def is_sparse(self) -> bool:
        """Attention that reads a selected subset of the context (V3.2's DSA, V4's indexed layers)."""
        return self.sparse_attention is not None or self.compressed_attention is not None
