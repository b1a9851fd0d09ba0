"""Attention that reads part of the context: DeepSeek-V3.2's sparse attention (DSA) and DeepSeek-V4's
hybrid compressed attention, as pure functions of the model's shape and the context length.

Counting conventions are those of :mod:`meter.analytic.flops` (a multiply-add is 2 FLOPs, matrix
products only; prefill averages over the causal triangle, so a query at position t of an L-token
prompt sees t keys and the mean over the prompt is taken continuously).

**DSA** (V3.2; published: V3.2-Exp paper and ``inference/model.py``, FlashMLA's README and deep-dive):

- The lightning indexer scores every preceding token for each query,
  I(t, s) = sum_j w(t, j) * ReLU(q(t, j) . k(s)): per (query, key) pair ``2 * H_I * d_I`` FLOPs for
  the dot products and ``2 * H_I`` for the weighted sum over heads (64 x 128 -> 16,512), in fp8.
  Its projections (``wq_b`` from the query LoRA, ``wk`` and ``weights_proj`` from the hidden
  state) are ordinary products with weights. It stays O(L^2) in prefill, O(L) per decoded token.
- MLA then attends the ``index_topk`` selected tokens in its MQA ("absorbed") form: per pair
  ``2 * H * (kv_lora_rank + qk_rope + kv_lora_rank)`` (128 heads -> 278,528), over min(t, k)
  tokens: O(L k).
- Cache per token per layer: the MLA entry (656 B in FlashMLA's fp8 format, 1,152 B in bf16)
  plus the indexer's key (132 B: 128 fp8 + a float32 scale).
- meter's reading: for prefill the paper says short prompts run "a masked MHA mode to simulate
  DSA"; meter counts the cheaper of that (V3's MHA-form core over every causal pair, plus the
  indexer that makes the mask) and the sparse MQA form, and says which it took.

**Compressed attention** (V4; published: the config's fields and vLLM's implementation; no
primary DeepSeek description was found, so more of it is meter's reading):

- Every layer: multi-query attention, one ``head_dim``-wide KV head whose keys are its values
  (``4 * H * head_dim`` FLOPs per attended entry), over the last ``sliding_window`` tokens.
- A layer with ratio r > 1 also keeps one compressed entry per r tokens (a gated pooling of
  ``wkv`` / ``wgate`` projections; two overlapping streams at the indexed ratio). At the indexed
  ratio (4, "CSA") an indexer like V3.2's scans all L/r entries and the layer attends the top
  ``index_topk``; other ratios (128, "HCA") attend all L/r entries (meter's reading of vLLM's
  "pre-computed" C128A indices). Ratio 0 layers have the window only.
- Cache: per compressed entry 584 B (fp8 MODEL1) or 1,024 B (bf16), plus 132 B per indexer key
  at the indexed ratio; per layer a fixed window of ``sliding_window`` entries per sequence.
- Output: grouped low-rank ``wo_a`` (each of ``o_groups`` groups of heads to ``o_lora_rank``),
  then ``wo_b`` to the model width. Hyper-connections (``hc_mult`` residual streams) add a
  ``(2 + hc) * hc`` x ``hc * dim`` mixing projection before attention and before the FFN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from kernels.args import ModelArgs
from meter.analytic.layer_shapes import kv_cache_elements_per_token_per_layer, mla_params
from meter.domains import InferencePhase

PUBLISHED = "published"
READING = "meter's reading"

# --- means over a causal prompt -----------------------------------------------------------------


def mean_causal(length: float, slope: float = 1.0, cap: float | None = None) -> float:
    """Mean over queries t in [0, length] of min(slope * t, cap): the entries a causal query sees
    when it gains one per 1/slope tokens, capped (top-k, a window). Continuous, like Megatron's s/2."""
    if length <= 0:
        return 0.0
    if cap is None or slope * length <= cap:
        return slope * length / 2.0
    knee = cap / slope
    return cap - cap * knee / (2.0 * length)


# --- parameters --------------------------------------------------------------------------------


def dsa_indexer_params(a: ModelArgs) -> int:
    """One layer's lightning indexer: wq_b (query LoRA -> heads x dim), wk, its LayerNorm, weights_proj."""
    s = a.sparse_attention
    if s is None:
        return 0
    q_in = a.q_lora_rank or a.dim
    return (
        q_in * s.index_n_heads * s.index_head_dim
        + a.dim * s.index_head_dim
        + 2 * s.index_head_dim
        + a.dim * s.index_n_heads
    )


def _compressor_params(dim: int, width: int, ratio: int, overlap: bool) -> int:
    """wkv and wgate (dim -> streams x width), the position bias (ratio x streams x width), an RMSNorm."""
    streams = 2 if overlap else 1
    return 2 * dim * streams * width + ratio * streams * width + width


def compressed_layer_attention_params(a: ModelArgs, ratio: int) -> int:
    """Weights of one V4 attention block at a compress ratio (0: sliding window only)."""
    c = a.compressed_attention
    assert c is not None
    h, d = a.n_heads, a.head_dim
    q = a.dim * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * h * d if a.q_lora_rank else a.dim * h * d
    kv = a.dim * d + d  # wkv and its norm
    out = c.o_lora_rank * h * d + c.o_groups * c.o_lora_rank * a.dim  # grouped wo_a, then wo_b
    sink = h  # one attention-sink logit per head
    params = q + kv + out + sink
    if ratio > 1:
        indexed = ratio == c.indexed_compress_ratio
        params += _compressor_params(a.dim, d, ratio, overlap=indexed)
        if indexed:
            q_in = a.q_lora_rank or a.dim
            params += q_in * c.index_n_heads * c.index_head_dim + a.dim * c.index_n_heads
            params += _compressor_params(a.dim, c.index_head_dim, ratio, overlap=True)
    return params


def hyper_connection_params_per_layer(a: ModelArgs) -> int:
    """The two mixing projections of one block (before attention, before the FFN); 0 without hc."""
    c = a.compressed_attention
    if c is None or c.hc_mult <= 1:
        return 0
    hc = c.hc_mult
    return 2 * (2 + hc) * hc * hc * a.dim


def attention_params_total(a: ModelArgs) -> int:
    """Attention weights over all main-model layers, for a model whose layers differ (V4) or carry an indexer."""
    if a.compressed_attention is not None:
        ratios = a.compressed_attention.layer_ratios(a.n_layers)
        return sum(compressed_layer_attention_params(a, r) for r in ratios)
    raise ValueError("attention_params_total is for compressed attention; use params.attention_params")


# --- one token's attention, all layers -----------------------------------------------------------


@dataclass(frozen=True)
class AttentionPart:
    """One kind of attention work of one token, summed over layers."""

    name: str
    flops: float
    entries: float  # cached entries (or keys) it reads, summed over layers
    read_bytes: float  # bytes of those entries
    basis: str  # PUBLISHED or READING
    note: str


@dataclass(frozen=True)
class AttentionPerToken:
    """The attention work of one token at a context, by part; projections are products with weights."""

    model_attention: str
    phase: str
    context: int
    projections_flops: float
    parts: tuple[AttentionPart, ...]
    prefill_mode: str | None = None  # DSA prefill: "sparse MQA" or "masked MHA"

    @property
    def core_flops(self) -> float:
        return sum(p.flops for p in self.parts if p.name != "indexer")

    @property
    def indexer_flops(self) -> float:
        return sum(p.flops for p in self.parts if p.name == "indexer")

    @property
    def read_bytes(self) -> float:
        return sum(p.read_bytes for p in self.parts)

    @property
    def indexer_read_bytes(self) -> float:
        return sum(p.read_bytes for p in self.parts if p.name == "indexer")

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(core_flops=self.core_flops, indexer_flops=self.indexer_flops, read_bytes=self.read_bytes)
        return out


def indexer_flops_per_key(n_heads: int, head_dim: int) -> float:
    """One (query, key) score: the heads' dot products and their weighted sum."""
    return 2.0 * n_heads * head_dim + 2.0 * n_heads


def mla_absorbed_flops_per_key(a: ModelArgs) -> float:
    """MLA's MQA form: scores over latent + RoPE, values over the latent, for every head."""
    return 2.0 * a.n_heads * (2 * a.kv_lora_rank + a.qk_rope_head_dim)


def mla_mha_flops_per_key(a: ModelArgs) -> float:
    """MLA's MHA form (per-head keys qk_nope + qk_rope wide, values v_head wide)."""
    return 2.0 * a.n_heads * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim)


def mla_entry_bytes(a: ModelArgs, kv_value_bytes: float) -> float:
    """One MLA cache entry: FlashMLA's fp8 format (with its scales) at 1 byte a value, else plain
    (fp4 caches, at a fraction of a byte with their scales, are taken as given)."""
    s = a.sparse_attention
    if kv_value_bytes == 1 and s is not None:
        return float(s.fp8_kv_entry_bytes)
    return (a.kv_lora_rank + a.qk_rope_head_dim) * kv_value_bytes


def compressed_entry_bytes(a: ModelArgs, kv_value_bytes: float) -> float:
    """One V4 cache entry (window or compressed): 584 B in fp8 (MODEL1), head_dim values otherwise."""
    c = a.compressed_attention
    assert c is not None
    return float(c.fp8_kv_entry_bytes) if kv_value_bytes == 1 else a.head_dim * kv_value_bytes


def _dsa_projection_flops(a: ModelArgs) -> float:
    """Per token per layer: MLA's own projections (either form does the same work per new token) and the indexer's."""
    norms = a.q_lora_rank + a.kv_lora_rank
    s = a.sparse_attention
    assert s is not None
    indexer = dsa_indexer_params(a) - 2 * s.index_head_dim
    return 2.0 * (mla_params(a) - norms + indexer)


def dsa_attention_per_token(
    a: ModelArgs, context: int, phase: InferencePhase, kv_value_bytes: float = 1.0
) -> AttentionPerToken:
    """One token of a V3.2 (DSA) model at ``context``: indexer over every earlier token, MLA over the top-k."""
    s = a.sparse_attention
    if s is None:
        raise ValueError("dsa_attention_per_token needs a model with sparse_attention")
    n = a.n_layers
    k = s.index_topk
    if phase == "decode":
        keys, attended = float(context), float(min(context, k))
    else:
        keys, attended = mean_causal(context), mean_causal(context, 1.0, k)
    entry = mla_entry_bytes(a, kv_value_bytes)
    indexer = AttentionPart(
        "indexer",
        n * keys * indexer_flops_per_key(s.index_n_heads, s.index_head_dim),
        n * keys,
        n * keys * s.index_key_bytes,
        PUBLISHED,
        f"{s.index_n_heads} heads x {s.index_head_dim} in fp8, ReLU-weighted scores over every earlier token",
    )
    sparse_flops = n * attended * mla_absorbed_flops_per_key(a)
    mode = None
    core_note = f"MLA in MQA form over the top {k:,} tokens"
    if phase == "prefill":
        masked_flops = n * keys * mla_mha_flops_per_key(a)
        mode = "sparse MQA"
        if masked_flops < sparse_flops:
            sparse_flops, mode, attended = masked_flops, "masked MHA", keys
            core_note = "MLA in MHA form over every causal pair, masked to the indexer's top-k (short prompts)"
    core = AttentionPart(
        "sparse attention",
        sparse_flops,
        n * attended,
        n * attended * entry,
        PUBLISHED if phase == "decode" else READING,
        core_note,
    )
    return AttentionPerToken("dsa", phase, context, n * _dsa_projection_flops(a), (indexer, core), mode)


def _compressed_projection_flops(a: ModelArgs, ratio: int) -> float:
    """Per token per layer: every product with the block's weights (norms, biases and sinks excluded)."""
    c = a.compressed_attention
    assert c is not None
    d = a.head_dim
    not_products = (a.q_lora_rank if a.q_lora_rank else 0) + d + a.n_heads
    if ratio > 1:
        indexed = ratio == c.indexed_compress_ratio
        streams = 2 if indexed else 1
        not_products += ratio * streams * d + d  # position bias, norm
        if indexed:
            not_products += ratio * 2 * c.index_head_dim + c.index_head_dim
    return 2.0 * (compressed_layer_attention_params(a, ratio) - not_products)


def compressed_attention_per_token(
    a: ModelArgs, context: int, phase: InferencePhase, kv_value_bytes: float = 1.0
) -> AttentionPerToken:
    """One token of a V4 model at ``context``: window + compressed entries (+ indexer) in every layer."""
    c = a.compressed_attention
    if c is None:
        raise ValueError("compressed_attention_per_token needs a model with compressed_attention")
    per_entry = 4.0 * a.n_heads * a.head_dim  # QK and AV over one shared KV head, keys = values
    entry = compressed_entry_bytes(a, kv_value_bytes)
    w, k = c.sliding_window, c.index_topk
    window = compressed = indexed = scanned = 0.0
    projections = 0.0
    for r in c.layer_ratios(a.n_layers):
        projections += _compressed_projection_flops(a, r) + 2.0 * hyper_connection_params_per_layer(a)
        if phase == "decode":
            window += min(context, w)
            n_c = float(context // r) if r > 1 else 0.0
            if r == c.indexed_compress_ratio:
                scanned += n_c
                indexed += min(n_c, k)
            else:
                compressed += n_c
        else:
            window += mean_causal(context, 1.0, w)
            if r == c.indexed_compress_ratio:
                scanned += mean_causal(context, 1.0 / r)
                indexed += mean_causal(context, 1.0 / r, k)
            elif r > 1:
                compressed += mean_causal(context, 1.0 / r)
    parts = (
        AttentionPart(
            "sliding window",
            window * per_entry,
            window,
            window * entry,
            PUBLISHED,
            f"the last {w} tokens in every layer (config sliding_window; vLLM's SWA cache)",
        ),
        AttentionPart(
            "indexer",
            scanned * indexer_flops_per_key(c.index_n_heads, c.index_head_dim),
            scanned,
            scanned * c.index_key_bytes,
            READING,
            f"ratio-{c.indexed_compress_ratio} layers: {c.index_n_heads} x {c.index_head_dim} indexer scanning every "
            "compressed entry, as V3.2's scans every token",
        ),
        AttentionPart(
            "compressed, top-k",
            indexed * per_entry,
            indexed,
            indexed * entry,
            PUBLISHED,
            f"ratio-{c.indexed_compress_ratio} layers attend the indexer's top {k:,} compressed entries",
        ),
        AttentionPart(
            "compressed, all",
            compressed * per_entry,
            compressed,
            compressed * entry,
            READING,
            "other ratios (128) attend every compressed entry",
        ),
    )
    return AttentionPerToken("compressed", phase, context, projections, parts)


def attention_per_token(
    a: ModelArgs, context: int, phase: InferencePhase, kv_value_bytes: float = 1.0
) -> AttentionPerToken:
    """The sparse or compressed attention of one token; raises for a dense-attention model."""
    if a.compressed_attention is not None:
        return compressed_attention_per_token(a, context, phase, kv_value_bytes)
    if a.sparse_attention is not None:
        return dsa_attention_per_token(a, context, phase, kv_value_bytes)
    raise ValueError("the model's attention reads the whole context; see meter.analytic.flops")


# --- the cache ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KvCache:
    """Bytes one sequence of ``context`` tokens keeps, by part, over all main-model layers."""

    context: int
    attention_bytes: float  # MLA entries (V3.2) or compressed entries (V4)
    indexer_bytes: float  # the indexer's keys
    window_bytes: float  # V4's sliding-window entries: fixed per sequence once context >= window

    @property
    def total_bytes(self) -> float:
        return self.attention_bytes + self.indexer_bytes + self.window_bytes

    @property
    def per_token_bytes(self) -> float:
        return self.total_bytes / self.context

    def as_dict(self) -> dict[str, float]:
        out = asdict(self)
        out.update(total_bytes=self.total_bytes, per_token_bytes=self.per_token_bytes)
        return out


def kv_cache(a: ModelArgs, context: int, kv_value_bytes: float = 1.0) -> KvCache:
    """The cache of one sequence; for dense MLA/GQA it is context x the per-token entry of every layer."""
    if context < 1:
        raise ValueError("context must be at least 1")
    c = a.compressed_attention
    if c is not None:
        entry = compressed_entry_bytes(a, kv_value_bytes)
        attention = indexer = window = 0.0
        for r in c.layer_ratios(a.n_layers):
            window += min(context, c.sliding_window) * entry
            if r > 1:
                attention += (context // r) * entry
                if r == c.indexed_compress_ratio:
                    indexer += (context // r) * c.index_key_bytes
        return KvCache(context, attention, indexer, window)
    s = a.sparse_attention
    if s is not None:
        return KvCache(
            context,
            a.n_layers * context * mla_entry_bytes(a, kv_value_bytes),
            a.n_layers * context * s.index_key_bytes,
            0.0,
        )
    # dense: every layer's entry (memory.kv_cache_bytes_per_token of a dense model, the same product)
    per_token = a.n_layers * (kv_cache_elements_per_token_per_layer(a, "latent") * kv_value_bytes)
    return KvCache(context, context * per_token, 0.0, 0.0)


def kv_cache_bytes_per_token(a: ModelArgs, context: int, kv_value_bytes: float = 1.0) -> float:
    """Mean cache bytes per token of a ``context``-token sequence (V4's window spread over it)."""
    return kv_cache(a, context, kv_value_bytes).per_token_bytes


def kv_bytes_per_added_token(a: ModelArgs, kv_value_bytes: float = 1.0) -> float:
    """Cache bytes one more token adds once the context is long (V4: its share of compressed entries
    and indexer keys; the window is a fixed cost per sequence)."""
    c = a.compressed_attention
    if c is not None:
        entry = compressed_entry_bytes(a, kv_value_bytes)
        rate = 0.0
        for r in c.layer_ratios(a.n_layers):
            if r > 1:
                rate += (entry + (c.index_key_bytes if r == c.indexed_compress_ratio else 0)) / r
        return rate
    s = a.sparse_attention
    if s is not None:
        return a.n_layers * (mla_entry_bytes(a, kv_value_bytes) + s.index_key_bytes)
    raise ValueError("kv_bytes_per_added_token is for sparse or compressed attention")


def decode_kv_read_bytes(a: ModelArgs, context: int, kv_value_bytes: float) -> float:
    """Bytes of cache one decoded token reads at ``context``: all of it for dense attention,
    the indexer's keys and the selected entries for sparse attention."""
    if a.is_sparse:
        return attention_per_token(a, context, "decode", kv_value_bytes).read_bytes
    return kv_cache(a, context, kv_value_bytes).total_bytes


def step_cache_traffic(a: ModelArgs, context: int, phase: InferencePhase, kv_value_bytes: float) -> tuple[float, float]:
    """(attention, indexer) cache bytes one sequence moves per step of the serving bound.

    Decode reads what one token selects (the indexer's keys, the attended entries); prefill writes
    the prompt's cache and reads it back once, as the bound counts for dense attention.
    """
    if phase == "decode":
        att = attention_per_token(a, context, "decode", kv_value_bytes)
        return att.read_bytes - att.indexer_read_bytes, att.indexer_read_bytes
    kv = kv_cache(a, context, kv_value_bytes)
    return 2.0 * (kv.attention_bytes + kv.window_bytes), 2.0 * kv.indexer_bytes


# --- one DSA layer at a batch shape (the benchmark's cases and kernels.dsa) ----------------------

LayerPairs = Literal["causal", "full"]


def dsa_layer_flops(
    a: ModelArgs, *, batch: int, q_len: int, kv_len: int | None = None, pairs: LayerPairs = "causal"
) -> float:
    """Forward FLOPs of one V3.2 attention layer (projections, indexer, sparse MLA) for ``batch``
    sequences of ``q_len`` new tokens against ``kv_len`` positions (the new ones included).

    ``causal`` counts what is useful: query t scores its t earlier tokens and attends min(t, top-k)
    of them (the triangle, as for dense attention). ``full`` counts what ``kernels.dsa`` computes:
    every query scores all ``kv_len`` positions (the future masked) and runs min(top-k, kv_len)
    slots, the invalid ones masked.
    """
    s = a.sparse_attention
    if s is None:
        raise ValueError("dsa_layer_flops needs a model with sparse_attention")
    kv_len = q_len if kv_len is None else kv_len
    if kv_len < q_len:
        raise ValueError(f"kv_len ({kv_len}) must be at least q_len ({q_len})")
    if pairs == "full":
        keys, attended = float(kv_len), float(min(s.index_topk, kv_len))
    else:
        earlier = kv_len - q_len  # cached positions every new query sees
        keys = earlier + mean_causal(q_len)
        attended = (
            mean_causal(kv_len, 1.0, s.index_topk) * kv_len - mean_causal(earlier, 1.0, s.index_topk) * earlier
        ) / q_len
    per_query = (
        _dsa_projection_flops(a)
        + keys * indexer_flops_per_key(s.index_n_heads, s.index_head_dim)
        + attended * mla_absorbed_flops_per_key(a)
    )
    return batch * q_len * per_query


def dsa_layer_bytes(
    a: ModelArgs, *, batch: int, q_len: int, kv_len: int | None = None, dtype_bytes: float = 2
) -> float:
    """Minimum traffic of one V3.2 attention layer, as ``memory.attention_layer_bytes`` counts MLA's:
    weights (the indexer's included) once, input and output once, the new cache entries and indexer
    keys written; with cached positions (decode), every indexer key read and each query's top-k
    latents gathered (``dtype_bytes`` per value: the benchmark's own cache, not DeepSeek's fp8)."""
    s = a.sparse_attention
    if s is None:
        raise ValueError("dsa_layer_bytes needs a model with sparse_attention")
    kv_len = q_len if kv_len is None else kv_len
    latent = a.kv_lora_rank + a.qk_rope_head_dim
    traffic = (mla_params(a) + dsa_indexer_params(a)) * dtype_bytes + 2 * batch * q_len * a.dim * dtype_bytes
    traffic += batch * q_len * (latent + s.index_head_dim) * dtype_bytes  # new entries and keys
    cached = kv_len - q_len
    if cached > 0:
        traffic += batch * cached * s.index_head_dim * dtype_bytes  # every key scored
        traffic += batch * q_len * min(s.index_topk, kv_len) * latent * dtype_bytes  # gathered latents
    return traffic
