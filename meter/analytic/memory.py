"""Bytes a model stores and moves: KV cache per token, and the traffic of one decode step."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from kernels.args import MlaDecodeForm, ModelArgs
from kernels.precision import WeightPrecision
from meter.analytic.layer_shapes import CacheForm, kv_cache_elements_per_token_per_layer
from meter.analytic.params import count_params, expert_params


def kv_cache_bytes_per_token(
    a: ModelArgs, dtype_bytes: float = 2, form: CacheForm = "latent", context_len: int | None = None
) -> float:
    """KV cache bytes per token over all layers of the main model (MTP modules excluded).

    A sliding-window or chunked layer keeps at most its span of positions; given ``context_len``,
    its bytes are spread over the sequence (a 128-token window costs 128/L of a full layer per
    token at context L). Without it, every layer counts as if it kept every token: the bound for
    an engine that does not free out-of-window entries.

    DeepSeek-V3.2 adds its indexer's key (and at 1 byte a value uses FlashMLA's fp8 format with
    scales); for V4 this is the marginal bytes of one more token (compressed entries and indexer
    keys), its fixed sliding window left out (``sparse_attention.kv_cache`` has the whole cache).
    """
    if a.is_sparse and form == "latent":
        from meter.analytic import sparse_attention as S

        return S.kv_bytes_per_added_token(a, dtype_bytes)
    per_layer = kv_cache_elements_per_token_per_layer(a, form) * dtype_bytes
    if context_len is None:
        return a.n_layers * per_layer
    if context_len < 1:
        raise ValueError("context_len must be at least 1")
    kept = a.n_full_attention_layers * float(context_len)
    if a.n_sliding_layers:
        kept += a.n_sliding_layers * min(context_len, a.sliding_window)
    if a.n_chunked_layers:
        kept += a.n_chunked_layers * min(context_len, a.attention_chunk)
    return kept * per_layer / context_len


def expected_experts_touched(n_experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts hit by ``tokens`` tokens routed uniformly at random to top-k each.

    An approximation: real routing is skewed (fewer distinct experts) and group-limited.
    """
    if n_experts == 0 or tokens <= 0:
        return 0.0
    return n_experts * (1.0 - (1.0 - top_k / n_experts) ** tokens)


@dataclass(frozen=True)
class DecodeStepBytes:
    """Bytes one decode step reads and writes for a batch (weights are read once per step)."""

    batch: int
    context_len: int
    weights: float
    kv_cache_read: float
    kv_cache_write: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache_read + self.kv_cache_write

    @property
    def per_token(self) -> float:
        return self.total / self.batch

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out.update(total=self.total, per_token=self.per_token)
        return out


def decode_step_bytes(
    a: ModelArgs,
    *,
    batch: int,
    context_len: int,
    weight_bytes: float = 2,
    kv_bytes: float = 2,
    form: CacheForm = "latent",
    precision: WeightPrecision | None = None,
) -> DecodeStepBytes:
    """Minimum HBM traffic of one decode step: each weight touched once, the whole KV cache read.

    Routed experts count only as many as the batch is expected to touch (uniform routing), so
    a batch of 1 reads top-k experts per layer and a large batch reads them all. Weights take
    ``weight_bytes`` each, or, given ``precision``, each component's stored format with its scales.
    """
    if batch < 1 or context_len < 1:
        raise ValueError("batch and context_len must be at least 1")
    p = count_params(a)
    dense_weights = p.active - p.routed_experts_active  # attention, dense FFN, router, shared, norms, head
    touched = expected_experts_touched(a.n_routed_experts, a.n_activated_experts, batch)
    routed = a.n_moe_layers * touched * expert_params(a)
    embedding_rows = batch * a.dim
    per_token_cache = kv_cache_bytes_per_token(a, kv_bytes, form, context_len=context_len)
    weights = (dense_weights + routed + embedding_rows) * weight_bytes
    if precision is not None:
        b = precision.bytes_per_weight
        weights = (
            p.attention * b(precision.attention)
            + p.dense_ffn * b(precision.dense_ffn)
            + p.router * b(precision.router)
            + p.shared_experts * b(precision.shared_experts)
            + routed * b(precision.routed_experts)
            + p.output_head * b(precision.output_head)
            + embedding_rows * b(precision.embedding)
            + p.norms * 2.0
        )
    return DecodeStepBytes(
        batch=batch,
        context_len=context_len,
        weights=weights,
        kv_cache_read=batch * _cache_read_per_token(a, context_len, kv_bytes, per_token_cache),
        kv_cache_write=batch * per_token_cache,
    )


def _cache_read_per_token(a: ModelArgs, context_len: int, kv_bytes: float, per_token_cache: float) -> float:
    """Cache one decoded token reads: the earlier positions' entries, or what a sparse model selects."""
    if a.is_sparse:
        from meter.analytic import sparse_attention as S

        return S.decode_kv_read_bytes(a, context_len, kv_bytes)
    return (context_len - 1) * per_token_cache


# --- One layer's minimum traffic: each weight and input read once, each output written once ---


def attention_layer_bytes(
    a: ModelArgs, *, batch: int, q_len: int, kv_len: int | None = None, dtype_bytes: float = 2, cached: bool = False
) -> float:
    """One attention block's forward traffic; ``cached`` adds reading kv_len - q_len cached positions."""
    from meter.analytic.params import attention_params

    kv_len = q_len if kv_len is None else kv_len
    cache_elems = kv_cache_elements_per_token_per_layer(a, "latent")
    traffic = attention_params(a) * dtype_bytes + 2 * batch * q_len * a.dim * dtype_bytes
    traffic += batch * q_len * cache_elems * dtype_bytes  # new cache entries
    if cached:
        traffic += batch * (kv_len - q_len) * cache_elems * dtype_bytes  # the cache read
    return traffic


def fp8_expert_bytes(a: ModelArgs, recipe: str) -> float:
    """Bytes of one routed expert's weights in fp8: a byte per weight plus the float32 scales
    (rowwise: one per output channel; blockwise: one per 128x128 block, K padded to 4 blocks)."""
    d, f = a.dim, a.moe_inter_dim
    if recipe == "rowwise":
        scales = 2 * f + d  # w13 has 2F output channels, w2 has D
    elif recipe == "blockwise":

        def blocks(n: int, k: int) -> int:
            kb = -(-k // 128)
            return -(-n // 128) * (-(-kb // 4) * 4)

        scales = blocks(2 * f, d) + blocks(d, f)
    else:
        raise ValueError(f"unknown fp8 recipe {recipe!r}")
    return expert_params(a) * 1 + scales * 4


def moe_layer_bytes(
    a: ModelArgs,
    *,
    tokens: int,
    weight_bytes: float = 2,
    act_bytes: float = 2,
    n_local_experts: int | None = None,
    fp8: str | None = None,
) -> float:
    """One MoE FFN's forward traffic: router, shared experts, the local experts its tokens touch.

    ``fp8`` (a recipe) puts the routed experts in fp8 with their scales; the router and the shared
    expert stay at ``weight_bytes``, as they run in the layer's own precision.
    """
    from meter.analytic.params import router_params

    n_local = n_local_experts or a.n_routed_experts
    if n_local == a.n_routed_experts:
        touched = expected_experts_touched(n_local, a.n_activated_experts, tokens)
    else:  # tokens * k rows land on n_local experts
        touched = n_local * (1.0 - (1.0 - 1.0 / n_local) ** (tokens * a.n_activated_experts))
    routed = touched * (fp8_expert_bytes(a, fp8) if fp8 else expert_params(a) * weight_bytes)
    weights = (router_params(a) + a.n_shared_experts * expert_params(a)) * weight_bytes + routed
    return weights + 2 * tokens * a.dim * act_bytes


def ffn_layer_bytes(a: ModelArgs, *, tokens: int, dtype_bytes: float = 2) -> float:
    """One dense SwiGLU FFN's forward traffic."""
    from meter.analytic.params import swiglu_params

    return swiglu_params(a.dim, a.inter_dim) * dtype_bytes + 2 * tokens * a.dim * dtype_bytes


# --- What each MLA decode form moves (one layer, one step) ---

FP32_BYTES = 4


@dataclass(frozen=True)
class MlaDecodeTraffic:
    """HBM bytes of one MLA decode step of one layer in one form, by part, beside the minimum.

    Every part counts each tensor an operation reads or writes as one pass through memory (no
    reuse from L2): the model of the eager forms' kernel sequence that ``kernels.mla`` runs. The
    fused form assumes the head blocks of one split share each cache tile through L2 (they are
    launched next to each other), so its cache is read once.
    """

    form: str
    weights: float  # the layer's weights, once
    activations: float  # x in, output, the new cache entries; q_lat and o_lat through memory
    cache_reads: float  # the latent cache: twice (kv) in the eager absorbed form, once otherwise
    scores: float  # B x S x H x T scores through memory (eager absorbed: every elementwise pass)
    expanded_kv: float  # per-head keys and values written and read again (naive)
    split_partials: float  # fp32 partial outputs of a split context, written and read (fused)
    minimum: float  # attention_layer_bytes: weights, inputs and outputs once, the cache read once

    @property
    def total(self) -> float:
        return self.weights + self.activations + self.cache_reads + self.scores + self.expanded_kv + self.split_partials

    @property
    def ratio_to_minimum(self) -> float:
        return self.total / self.minimum

    def as_dict(self) -> dict[str, float | str]:
        out: dict[str, float | str] = asdict(self)
        out.update(total=self.total, ratio_to_minimum=self.ratio_to_minimum)
        return out


def _score_bytes_per_element(dtype_bytes: float, masked: bool) -> float:
    """Bytes per score element of the eager absorbed form (``MLA._absorbed_attention``).

    In the input dtype: the two score products write, the add reads two and writes one, the scale
    reads and writes, the mask (S > 1) reads and writes, the product with the cache reads. The
    softmax runs in fp32 at least: a narrower dtype is widened (read, write fp32), normalised in
    fp32 (read, write) and narrowed back (read fp32, write).
    """
    e = dtype_bytes
    passes = e * (1 + 1 + 3 + 2 + (2 if masked else 0) + 1)
    if e < FP32_BYTES:
        return passes + (e + FP32_BYTES) + 2 * FP32_BYTES + (FP32_BYTES + e)
    return passes + 2 * e


def mla_decode_traffic(
    a: ModelArgs,
    *,
    batch: int,
    context: int,
    form: MlaDecodeForm,
    q_len: int = 1,
    dtype_bytes: float = 2,
    splits: int = 1,
) -> MlaDecodeTraffic:
    """Bytes one MLA decode step moves for ``batch`` sequences of ``q_len`` new tokens attending to
    ``context`` positions (the new ones included), in the ``absorbed``, ``naive`` or ``fused`` form.

    The naive form is modelled with a fused attention kernel (flash SDPA, as on a GPU): its waste
    is the per-head keys and values it writes and reads for every cached position, not scores.
    """
    from meter.analytic.params import attention_params

    if a.attention != "mla":
        raise ValueError("mla_decode_traffic needs an MLA model")
    if min(batch, q_len, splits) < 1 or context < q_len:
        raise ValueError("batch, q_len and splits must be at least 1, and context at least q_len")
    e = dtype_bytes
    h, c, r, p, v = a.n_heads, a.kv_lora_rank, a.qk_rope_head_dim, a.qk_nope_head_dim, a.v_head_dim
    rows = batch * q_len * h  # query rows: one per head and new token
    positions = batch * context  # cache positions attended to (the step reads all of them)
    io = 2 * batch * q_len * a.dim * e + batch * q_len * (c + r) * e
    latent_qo = 4 * rows * c * e  # q_lat and o_lat, each written once and read once
    parts = dict(scores=0.0, expanded_kv=0.0, split_partials=0.0)
    if form == "absorbed":
        # The output un-absorption copies o_lat head-major first: two passes more.
        activations, cache = io + latent_qo + 2 * rows * c * e, positions * (2 * c + r) * e
        parts["scores"] = rows * context * _score_bytes_per_element(e, masked=q_len > 1)
    elif form == "fused":
        activations, cache = io + latent_qo, positions * (c + r) * e
        if splits > 1:
            parts["split_partials"] = 2 * rows * splits * (c + 1) * FP32_BYTES  # outputs and log-sum-exps
    elif form == "naive":
        activations, cache = io, positions * (c + r) * e
        # wkv_b writes k_nope and v; the concatenation reads k_nope (and k_pe again) and writes k;
        # attention reads k and v.
        parts["expanded_kv"] = positions * (h * (p + v) + h * p + r + 2 * h * (p + r) + h * v) * e
    else:
        raise ValueError(f"unknown MLA decode form {form!r}")
    return MlaDecodeTraffic(
        form=form,
        weights=attention_params(a) * e,
        activations=activations,
        cache_reads=cache,
        minimum=attention_layer_bytes(
            a, batch=batch, q_len=q_len, kv_len=context, dtype_bytes=dtype_bytes, cached=True
        ),
        **parts,
    )


# --- What the weights take in the checkpoint's own precision ---


@dataclass(frozen=True)
class WeightBytes:
    """Bytes of the main model's weights by component, each in its stored format (scales included)."""

    embedding: float
    attention: float
    dense_ffn: float
    router: float
    shared_experts: float
    routed_experts: float
    output_head: float
    other: float  # norms and a vision encoder, in the model's 16-bit dtype

    @property
    def total(self) -> float:
        return sum(asdict(self).values())

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out.update(total=self.total)
        return out


def weight_bytes(a: ModelArgs, precision: WeightPrecision) -> WeightBytes:
    """Bytes of every weight of the main model (MTP excluded) in ``precision``."""
    p = count_params(a)
    b = precision.bytes_per_weight
    return WeightBytes(
        embedding=p.embedding * b(precision.embedding),
        attention=p.attention * b(precision.attention),
        dense_ffn=p.dense_ffn * b(precision.dense_ffn),
        router=p.router * b(precision.router),
        shared_experts=p.shared_experts * b(precision.shared_experts),
        routed_experts=p.routed_experts * b(precision.routed_experts),
        output_head=p.output_head * b(precision.output_head),
        other=(p.norms + p.vision) * 2.0,
    )
