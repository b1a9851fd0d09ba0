"""Parameter counts of a model, per component, from its shape alone.

Conventions (those of DeepSeek's "671B total, 37B activated"):

- ``total`` counts every weight of the main model, input embedding and output head included,
  the multi-token-prediction (MTP) module excluded (DeepSeek's 685B checkpoint = 671B + 14B MTP).
- ``active`` counts the weights one token's forward pass multiplies with: attention, dense FFN,
  router, shared experts, top-k routed experts, norms and the output head. The input embedding is
  a table lookup, not a matrix product, so it is left out (``active_with_embedding`` has it).
- MTP modules share the embedding and output head with the main model; only their own weights
  (two norms, the 2*dim -> dim projection, one transformer block, the head norm) count in ``mtp``.
- A vision encoder (Llama 4) counts in ``total`` and never in ``active``: a text token's forward
  pass does not run it.
- Vectors (biases, norm weights, attention sinks) count as parameters; FLOPs count only the
  matrices (``attention_matrix_params``, ``expert_params``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kernels.args import ModelArgs
from meter.analytic.layer_shapes import mla_params


def gqa_params(a: ModelArgs) -> int:
    """Weights of one grouped-query attention block (wq, wk, wv, wo and their vectors)."""
    q = a.dim * a.n_heads * a.head_dim
    kv = 2 * a.dim * a.n_kv_heads * a.head_dim
    out = a.n_heads * a.head_dim * a.dim
    return q + kv + out + attention_vector_params(a)


def attention_vector_params(a: ModelArgs) -> int:
    """The vectors of one attention block: biases, q/k norms, sinks, MLA's LoRA norms."""
    n = 0
    if a.attention == "mla":
        n += a.q_lora_rank + a.kv_lora_rank  # q_norm (with a q LoRA) and kv_norm
    else:
        if a.qkv_bias:
            n += (a.n_heads + 2 * a.n_kv_heads) * a.head_dim
        if a.qk_norm:
            n += 2 * a.head_dim
    if a.out_bias:
        n += a.dim
    if a.attention_sinks:
        n += a.n_heads
    return n


def attention_params(a: ModelArgs) -> int:
    """One attention block: MLA (with V3.2's indexer), GQA, or V4's at the window-only ratio (its MTP layer's).

    V4's layers differ by compress ratio: whole-model counts use
    ``sparse_attention.attention_params_total``.
    """
    from meter.analytic import sparse_attention as S

    if a.attention == "compressed":
        return S.compressed_layer_attention_params(a, 0) + S.hyper_connection_params_per_layer(a)
    if a.attention == "mla":
        return mla_params(a) + S.dsa_indexer_params(a)
    return gqa_params(a)


def attention_params_all_layers(a: ModelArgs) -> int:
    """Attention weights of every main-model layer (V4: each at its own compress ratio)."""
    from meter.analytic import sparse_attention as S

    if a.attention == "compressed":
        return S.attention_params_total(a) + a.n_layers * S.hyper_connection_params_per_layer(a)
    return a.n_layers * attention_params(a)


def attention_matrix_params(a: ModelArgs) -> int:
    """Weights of one attention block's matrices: what its projections multiply with.

    (Sparse and compressed attention count their projections in ``meter.analytic.sparse_attention``.)
    """
    return attention_params(a) - attention_vector_params(a)


def attention_matrix_params_total(a: ModelArgs) -> int:
    """Weights of every layer's attention matrices."""
    return a.n_layers * attention_matrix_params(a)


def swiglu_params(dim: int, hidden: int) -> int:
    """w1 (gate), w3 (up) and w2 (down) of one SwiGLU MLP."""
    return 3 * dim * hidden


def expert_params(a: ModelArgs) -> int:
    """One routed (or shared) expert."""
    return swiglu_params(a.dim, a.moe_inter_dim)


def expert_bias_params(a: ModelArgs) -> int:
    """Biases of one routed expert (gpt-oss: gate and up, 2F; down, D); 0 without."""
    return 2 * a.moe_inter_dim + a.dim if a.expert_bias else 0


def router_params(a: ModelArgs) -> int:
    """Gate weight, plus V3's per-expert selection bias or gpt-oss's logit bias."""
    return a.n_routed_experts * (a.dim + int(a.gate_bias) + int(a.router_bias))


def layer_norm_params(a: ModelArgs) -> int:
    """The two RMSNorms around attention and FFN in one block."""
    return 2 * a.dim


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts by component (numbers of weights, not bytes)."""

    embedding: int
    attention: int
    dense_ffn: int
    router: int
    shared_experts: int
    routed_experts: int
    routed_experts_active: int
    norms: int
    output_head: int
    mtp: int
    mtp_active: int
    vision: int = 0

    @property
    def total(self) -> int:
        return (
            self.vision
            + self.embedding
            + self.attention
            + self.dense_ffn
            + self.router
            + self.shared_experts
            + self.routed_experts
            + self.norms
            + self.output_head
        )

    @property
    def active(self) -> int:
        return (
            self.attention
            + self.dense_ffn
            + self.router
            + self.shared_experts
            + self.routed_experts_active
            + self.norms
            + self.output_head
        )

    @property
    def active_with_embedding(self) -> int:
        return self.active + self.embedding

    @property
    def total_with_mtp(self) -> int:
        return self.total + self.mtp

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out.update(
            total=self.total,
            active=self.active,
            active_with_embedding=self.active_with_embedding,
            total_with_mtp=self.total_with_mtp,
        )
        return out


def _block_params(a: ModelArgs, moe: bool) -> tuple[int, int]:
    """(total, active) weights of one transformer block with a dense or an MoE FFN."""
    base = attention_params(a) + layer_norm_params(a)
    if not moe:
        ffn = swiglu_params(a.dim, a.inter_dim)
        return base + ffn, base + ffn
    shared = a.n_shared_experts * expert_params(a)
    routed = expert_params(a) + expert_bias_params(a)
    total = base + router_params(a) + shared + a.n_routed_experts * routed
    active = base + router_params(a) + shared + a.n_activated_experts * routed
    return total, active


def count_params(a: ModelArgs) -> ParamCounts:
    """Parameter counts of the whole model, by component."""
    n_moe = a.n_moe_layers
    n_dense = a.n_ffn_dense_layers
    embedding = a.vocab_size * a.dim
    head = 0 if a.tie_word_embeddings else a.vocab_size * a.dim
    # One MTP module: enorm + hnorm + eh_proj (2*dim -> dim) + a block like the last layer + head norm.
    mtp_block_total, mtp_block_active = _block_params(a, moe=a.is_moe)
    mtp_own = 2 * a.dim + 2 * a.dim * a.dim + a.dim
    return ParamCounts(
        embedding=embedding,
        # V4's hyper-connection mixing weights (before attention and before the FFN) count with attention
        attention=attention_params_all_layers(a),
        dense_ffn=n_dense * swiglu_params(a.dim, a.inter_dim),
        router=n_moe * router_params(a),
        shared_experts=n_moe * a.n_shared_experts * expert_params(a),
        routed_experts=n_moe * a.n_routed_experts * (expert_params(a) + expert_bias_params(a)),
        routed_experts_active=n_moe * a.n_activated_experts * (expert_params(a) + expert_bias_params(a)),
        norms=a.n_layers * layer_norm_params(a) + a.dim,  # + the final norm
        output_head=head,
        mtp=a.n_mtp_layers * (mtp_own + mtp_block_total),
        mtp_active=a.n_mtp_layers * (mtp_own + mtp_block_active),
        vision=a.vision_params,
    )
