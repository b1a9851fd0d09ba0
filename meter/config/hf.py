"""A Hugging Face ``config.json`` read into meter's model schema.

Serving engines and calculators (vLLM, SGLang, aiconfigurator, llm-analysis) take the model's
``config.json``; so does meter, wherever a model is named. Each supported architecture has one
reader below that maps its fields onto :class:`kernels.args.ModelArgs` and the weights' precision
(``quantization_config``). Nothing is guessed: a field the file lacks is either required (one line
naming the file and field, exit 2) or taken at the default its Hugging Face config class documents
and recorded in ``imported.defaulted``; a field read but not modelled (RoPE scaling of a GQA model,
gpt-oss's SwiGLU clamp) is listed in ``imported.ignored``; a value meter cannot model, or two fields
that disagree, is refused naming the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meter.config.schema import MAX_YAML_BYTES, decode_utf8, read_input_bytes
from meter.errors import ConfigError

CONFIG_JSON = "config.json"
HF_QUANT_CONFIG = "hf_quant_config.json"  # NVIDIA ModelOpt's quantization, beside config.json


@dataclass(frozen=True, kw_only=True)
class ImportRecord:
    """Where an imported model came from: the file, its architecture and digest, and what was assumed."""

    path: str
    architecture: str
    sha256: str
    date: dt.date
    # config.json fields that were absent, as "field=value" with the default taken for them.
    defaulted: tuple[str, ...] = ()
    # Fields read but not modelled by meter (they change no count), as "field=value".
    ignored: tuple[str, ...] = ()
    # Another file of the model directory that was read: NVIDIA ModelOpt's hf_quant_config.json
    # (its quantization, when config.json has no quantization_config), with its sha256.
    quantization_file: str | None = None
    quantization_sha256: str | None = None


@dataclass
class HfModel:
    """What a config.json gives: ModelArgs fields, the weights' precision fields, and the record."""

    args: dict[str, Any]
    weights: dict[str, Any]
    record: ImportRecord
    description: str


def resolve_config_json(path: Path) -> Path:
    """``path`` itself, or the config.json inside a model directory."""
    return path / CONFIG_JSON if path.is_dir() else path


def read_hf_config(path: Path, today: dt.date | None = None) -> HfModel:
    """Read and map one config.json; raises ConfigError naming the file and field."""
    raw = read_input_bytes(path, max_bytes=MAX_YAML_BYTES, error=ConfigError, what="a config.json")
    text = decode_utf8(raw, path, ConfigError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(path, None, f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ConfigError(path, None, "nested too deeply to be a config") from None
    if not isinstance(data, Mapping):
        raise ConfigError(path, None, f"expected a JSON object of fields, found a {type(data).__name__}")
    src = _Fields(data, path)
    if not src.has("architectures") and src.maybe("model_type", str) in _BY_MODEL_TYPE:
        # Some exported configs carry only model_type; its transformers class is unambiguous.
        arch = _BY_MODEL_TYPE[src.data["model_type"]]
        src.defaulted.append(f"architectures={json.dumps([arch])} (from model_type {src.data['model_type']})")
        archs = [arch]
    else:
        archs = src.req("architectures", list)
    if len(archs) != 1 or not isinstance(archs[0], str):
        raise ConfigError(path, "architectures", "expected exactly one architecture name", archs)
    arch = archs[0]
    reader = READERS.get(arch)
    if reader is None:
        raise ConfigError(
            path, "architectures", f"unsupported architecture; meter reads {', '.join(sorted(READERS))}", arch
        )
    args, description = reader(src)
    quant_file, quant_sha = None, None
    beside = path.parent / HF_QUANT_CONFIG
    if "quantization_config" not in data and beside.is_file():
        src, quant_sha = _with_modelopt_quantization(src, beside)
        quant_file = str(beside)
    weights = _precision(src, arch)
    record = ImportRecord(
        path=str(path),
        architecture=arch,
        sha256=hashlib.sha256(raw).hexdigest(),
        date=today or dt.date.today(),
        defaulted=tuple(src.defaulted),
        ignored=tuple(src.ignored),
        quantization_file=quant_file,
        quantization_sha256=quant_sha,
    )
    return HfModel(args=args, weights=weights, record=record, description=description)


def _with_modelopt_quantization(src: _Fields, qpath: Path) -> tuple[_Fields, str]:
    """``src`` with the quantization of a ModelOpt hf_quant_config.json as its quantization_config."""
    raw = read_input_bytes(qpath, max_bytes=MAX_YAML_BYTES, error=ConfigError, what="an hf_quant_config.json")
    try:
        data = json.loads(decode_utf8(raw, qpath, ConfigError))
    except json.JSONDecodeError as exc:
        raise ConfigError(qpath, None, f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    q = _Fields(data if isinstance(data, Mapping) else {}, qpath).sub("quantization")
    algo = q.req("quant_algo", str)
    if algo not in ("NVFP4", "FP8"):
        raise q.fail("quant_algo", "meter reads ModelOpt NVFP4 and FP8 (per-tensor) checkpoints", algo)
    quant = {
        "quant_method": "modelopt",
        "quant_algo": algo,
        "exclude_modules": q.maybe("exclude_modules", list) or [],
    }
    merged = _Fields({**src.data, "quantization_config": quant}, src.path, src.prefix)
    merged.defaulted, merged.ignored = src.defaulted, src.ignored
    return merged, hashlib.sha256(raw).hexdigest()


class _Fields:
    """Typed access to a config.json object; records every default it takes."""

    def __init__(self, data: Mapping, path: Path, prefix: str = "", parent: _Fields | None = None):
        self.data, self.path, self.prefix = data, path, prefix
        self.defaulted: list[str] = parent.defaulted if parent else []
        self.ignored: list[str] = parent.ignored if parent else []

    def sub(self, key: str) -> _Fields:
        value = self.req(key, dict)
        return _Fields(value, self.path, f"{self.prefix}{key}.", self)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def fail(self, key: str, problem: str, value: object = ConfigError._MISSING) -> ConfigError:
        return ConfigError(self.path, f"{self.prefix}{key}", problem, value)

    def req(self, key: str, kind: type = int) -> Any:
        if key not in self.data or self.data[key] is None:
            raise self.fail(key, "missing required field")
        return self._check(key, self.data[key], kind)

    def opt(self, key: str, default: Any, kind: type = int) -> Any:
        """The field, or ``default`` (recorded) when absent or null."""
        if key not in self.data or self.data[key] is None:
            self.defaulted.append(f"{self.prefix}{key}={json.dumps(default)}")
            return default
        return self._check(key, self.data[key], kind)

    def maybe(self, key: str, kind: type = int) -> Any:
        """The field, or None when absent or null (for fields whose absence means 'off')."""
        if key not in self.data or self.data[key] is None:
            return None
        return self._check(key, self.data[key], kind)

    def ignore(self, key: str) -> None:
        if self.has(key):
            self.ignored.append(f"{self.prefix}{key}={json.dumps(self.data[key], separators=(',', ':'))}")

    def _check(self, key: str, value: Any, kind: type) -> Any:
        if kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
            # Some exporters write integral floats (factor 40.0 where an int is meant).
            if not ok and isinstance(value, float) and value.is_integer():
                return int(value)
            if ok and value < 0:
                raise self.fail(key, "must be at least 0", value)
        elif kind is float:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
        elif kind is bool:
            ok = isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, str) and bool(value.strip())
        elif kind is list:
            ok = isinstance(value, list)
        elif kind is dict:
            ok = isinstance(value, Mapping)
        else:  # pragma: no cover - a bug in a reader
            raise TypeError(kind)
        if not ok:
            raise self.fail(key, f"expected {_KIND_NAMES[kind]}", value)
        return value


_KIND_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "true or false",
    str: "a string",
    list: "a list",
    dict: "an object",
}


# --- Pieces shared by several architectures ---


def _silu(src: _Fields) -> None:
    act = src.maybe("hidden_act", str)
    if act is not None and act != "silu":
        raise src.fail("hidden_act", "meter models SwiGLU (silu) MLPs only", act)


def _common(src: _Fields) -> dict[str, Any]:
    """Width, depth, heads, vocabulary, norm and RoPE base: fields every decoder has."""
    _silu(src)
    return {
        "vocab_size": src.req("vocab_size"),
        "dim": src.req("hidden_size"),
        "n_layers": src.req("num_hidden_layers"),
        "n_heads": src.req("num_attention_heads"),
        "rope_theta": _rope_theta(src),
        "norm_eps": src.opt("rms_norm_eps", 1e-6, float),
        "tie_word_embeddings": src.opt("tie_word_embeddings", False, bool),
    }


def _rope_theta(src: _Fields) -> float:
    """rope_theta, or transformers 5's rope_parameters.rope_theta."""
    if not src.has("rope_theta") and src.has("rope_parameters"):
        return src.sub("rope_parameters").opt("rope_theta", 10000.0, float)
    return src.opt("rope_theta", 10000.0, float)


def _gqa(src: _Fields, out: dict[str, Any]) -> None:
    """Grouped-query attention fields; head_dim defaults to hidden_size / heads as HF's classes do."""
    heads, dim = out["n_heads"], out["dim"]
    kv = src.opt("num_key_value_heads", heads)
    if kv < 1 or heads % kv:
        raise src.fail("num_key_value_heads", f"must divide num_attention_heads ({heads})", kv)
    if src.has("head_dim"):
        head_dim = src.req("head_dim")
    else:
        if dim % heads:
            raise src.fail(
                "head_dim", f"missing, and hidden_size ({dim}) is not a multiple of num_attention_heads ({heads})"
            )
        head_dim = src.opt("head_dim", dim // heads)
    out.update(n_kv_heads=kv, head_dim=head_dim)
    # GQA models apply RoPE scaling (llama3, yarn) to positions only: no weight or FLOP changes.
    src.ignore("rope_scaling")


def _yarn(src: _Fields, out: dict[str, Any]) -> None:
    """DeepSeek's YaRN block (rope_scaling type yarn, or transformers 5's rope_parameters) onto the MLA fields."""
    if src.has("rope_scaling"):
        rs = src.sub("rope_scaling")
    elif src.has("rope_parameters") and src.sub("rope_parameters").maybe("rope_type", str) not in (None, "default"):
        rs = src.sub("rope_parameters")
    else:
        return
    kind = rs.maybe("type", str) or rs.maybe("rope_type", str)
    if kind != "yarn":
        raise rs.fail("type", "meter models YaRN RoPE scaling for MLA models only", kind)
    out.update(
        rope_factor=rs.req("factor", float),
        original_seq_len=rs.req("original_max_position_embeddings"),
        beta_fast=rs.opt("beta_fast", 32.0, float),
        beta_slow=rs.opt("beta_slow", 1.0, float),
        mscale=rs.opt("mscale", 1.0, float),
    )


def _experts_per_token(src: _Fields, key: str, n_experts: int) -> int:
    k = src.req(key)
    if not 1 <= k <= n_experts:
        raise src.fail(key, f"must be between 1 and the number of experts ({n_experts})", k)
    return k


def _first_dense(src: _Fields, n_layers: int) -> int:
    k = src.opt("first_k_dense_replace", 0)
    if k > n_layers:
        raise src.fail("first_k_dense_replace", f"exceeds num_hidden_layers ({n_layers})", k)
    return k


def _deepseek_moe(src: _Fields, out: dict[str, Any]) -> None:
    """DeepSeek-style MoE fields (V2, V3, V3.2, Kimi K2, GLM-4.5)."""
    n_experts = src.req("n_routed_experts")
    out.update(
        moe_inter_dim=src.req("moe_intermediate_size"),
        n_routed_experts=n_experts,
        n_shared_experts=src.opt("n_shared_experts", 0),
        n_activated_experts=_experts_per_token(src, "num_experts_per_tok", n_experts),
        n_dense_layers=_first_dense(src, out["n_layers"]),
        n_expert_groups=src.opt("n_group", 1),
        n_limited_groups=src.opt("topk_group", 1),
        route_scale=src.opt("routed_scaling_factor", 1.0, float),
        norm_topk_prob=src.opt("norm_topk_prob", False, bool),
    )
    freq = src.opt("moe_layer_freq", 1)
    if freq != 1:
        raise src.fail("moe_layer_freq", "meter models an MoE FFN on every layer after first_k_dense_replace (1)", freq)
    if out["n_dense_layers"] and not src.has("intermediate_size"):
        raise src.fail(
            "intermediate_size", f"missing, and first_k_dense_replace ({out['n_dense_layers']}) layers are dense"
        )
    out["inter_dim"] = src.req("intermediate_size") if out["n_dense_layers"] else src.maybe("intermediate_size") or 0


def _mla(src: _Fields, out: dict[str, Any]) -> None:
    heads = out["n_heads"]
    kv = src.opt("num_key_value_heads", heads)
    if kv != heads:
        raise src.fail(
            "num_key_value_heads", f"MLA expands its latent to every head; must equal num_attention_heads ({heads})", kv
        )
    if src.opt("attention_bias", False, bool):
        raise src.fail("attention_bias", "MLA projections with biases are not modelled", True)
    out.update(
        q_lora_rank=src.maybe("q_lora_rank") or 0,
        kv_lora_rank=src.req("kv_lora_rank"),
        qk_nope_head_dim=src.req("qk_nope_head_dim"),
        qk_rope_head_dim=src.req("qk_rope_head_dim"),
        v_head_dim=src.req("v_head_dim"),
    )
    if out["kv_lora_rank"] < 1:
        raise src.fail("kv_lora_rank", "must be greater than 0 for MLA", out["kv_lora_rank"])


def _score_func(src: _Fields, allowed: tuple[str, ...], default: str) -> str:
    func = src.opt("scoring_func", default, str)
    if func not in allowed:
        raise src.fail("scoring_func", f"must be one of {', '.join(allowed)}", func)
    return func


def _topk_method(src: _Fields) -> bool:
    """Whether the gate has V3's selection bias (topk_method noaux_tc)."""
    method = src.opt("topk_method", "greedy", str)
    if method not in ("noaux_tc", "greedy", "group_limited_greedy"):
        raise src.fail("topk_method", "must be one of noaux_tc, greedy, group_limited_greedy", method)
    return method == "noaux_tc"


# --- One reader per architecture: (ModelArgs fields, description) ---


def _deepseek_mla_moe(src: _Fields) -> dict[str, Any]:
    """What V3 and V3.2 share: MLA, DeepSeekMoE with its gate, YaRN, the MTP layers."""
    out = _common(src)
    _deepseek_moe(src, out)
    _mla(src, out)
    _yarn(src, out)
    out.update(
        score_func=_score_func(src, ("sigmoid", "softmax"), "softmax"),
        gate_bias=_topk_method(src),
        n_mtp_layers=src.opt("num_nextn_predict_layers", 0),
    )
    return out


def _deepseek_v3(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _deepseek_mla_moe(src)
    if src.has("index_topk") or src.has("index_n_heads"):
        raise src.fail(
            "index_topk",
            "DSA indexer fields in a DeepseekV3ForCausalLM config; expected DeepseekV32ForCausalLM",
            src.data.get("index_topk"),
        )
    return out, "MLA attention, DeepSeekMoE"


def _deepseek_v32(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _deepseek_mla_moe(src)
    out.update(
        sparse_attention={
            "index_n_heads": src.req("index_n_heads"),
            "index_head_dim": src.req("index_head_dim"),
            "index_topk": src.req("index_topk"),
        },
    )
    return out, "MLA attention with DeepSeek Sparse Attention (lightning indexer, top-k), DeepSeekMoE"


def _deepseek_v4(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _common(src)
    n_experts = src.req("n_routed_experts")
    heads = out["n_heads"]
    kv = src.req("num_key_value_heads")
    if kv != 1:
        raise src.fail("num_key_value_heads", "DeepSeek-V4 attention has one KV head; must be 1", kv)
    if src.opt("attention_bias", False, bool):
        raise src.fail("attention_bias", "V4 projections with biases are not modelled", True)
    ratios = src.req("compress_ratios", list)
    for i, r in enumerate(ratios):
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise src.fail(f"compress_ratios[{i}]", "expected an integer of at least 0", r)
    out.update(
        n_kv_heads=kv,
        head_dim=src.req("head_dim"),
        q_lora_rank=src.req("q_lora_rank"),
        qk_rope_head_dim=src.req("qk_rope_head_dim"),
        moe_inter_dim=src.req("moe_intermediate_size"),
        n_routed_experts=n_experts,
        n_shared_experts=src.opt("n_shared_experts", 0),
        n_activated_experts=_experts_per_token(src, "num_experts_per_tok", n_experts),
        n_expert_groups=src.opt("n_group", 1),
        n_limited_groups=src.opt("topk_group", 1),
        score_func=_score_func(src, ("sqrtsoftplus", "sigmoid", "softmax"), "sqrtsoftplus"),
        norm_topk_prob=src.opt("norm_topk_prob", False, bool),
        route_scale=src.opt("routed_scaling_factor", 1.0, float),
        gate_bias=_topk_method(src),
        n_mtp_layers=src.opt("num_nextn_predict_layers", 0),
        compressed_attention={
            "compress_ratios": ratios,
            "sliding_window": src.req("sliding_window"),
            "o_lora_rank": src.req("o_lora_rank"),
            "o_groups": src.req("o_groups"),
            "index_n_heads": src.req("index_n_heads"),
            "index_head_dim": src.req("index_head_dim"),
            "index_topk": src.req("index_topk"),
            "hc_mult": src.opt("hc_mult", 1),
            "hc_sinkhorn_iters": src.opt("hc_sinkhorn_iters", 0),
            "n_hash_layers": src.opt("num_hash_layers", 0),
        },
    )
    if heads % out["compressed_attention"]["o_groups"]:
        raise src.fail(
            "o_groups", f"must divide num_attention_heads ({heads})", out["compressed_attention"]["o_groups"]
        )
    _yarn(src, out)
    for key in ("compress_rope_theta", "swiglu_limit", "hc_eps"):
        src.ignore(key)
    return out, "hybrid compressed attention (CSA/HCA with a sliding window), hyper-connections, DeepSeekMoE"


def _qwen3_common(src: _Fields) -> dict[str, Any]:
    out = _common(src)
    _gqa(src, out)
    out.update(qkv_bias=src.opt("attention_bias", False, bool), qk_norm=True)  # Qwen3 always has q_norm/k_norm
    if src.opt("use_sliding_window", False, bool):
        raise src.fail("use_sliding_window", "Qwen's max_window_layers sliding window is not modelled", True)
    return out


def _qwen3(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _qwen3_common(src)
    out["inter_dim"] = src.req("intermediate_size")
    return out, "dense, GQA attention with q/k norms"


def _qwen3_moe(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _qwen3_common(src)
    n_experts = src.req("num_experts")
    out.update(
        moe_inter_dim=src.req("moe_intermediate_size"),
        n_routed_experts=n_experts,
        n_activated_experts=_experts_per_token(src, "num_experts_per_tok", n_experts),
        norm_topk_prob=src.opt("norm_topk_prob", False, bool),
        moe_layer_step=src.opt("decoder_sparse_step", 1),
        score_func="softmax",
    )
    mlp_only = src.opt("mlp_only_layers", [], list)
    if mlp_only != list(range(len(mlp_only))):
        raise src.fail("mlp_only_layers", "meter models dense layers only as the first k layers", mlp_only)
    out["n_dense_layers"] = len(mlp_only)
    dense_needed = out["n_dense_layers"] or out["moe_layer_step"] > 1
    out["inter_dim"] = src.req("intermediate_size") if dense_needed else 0
    if not dense_needed:
        src.ignore("intermediate_size")  # Qwen3 MoE configs carry it; no layer of this model uses it
    return out, "GQA attention with q/k norms, softmax top-k MoE"


def _llama(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _common(src)
    _gqa(src, out)
    if src.opt("attention_bias", False, bool):
        out.update(qkv_bias=True, out_bias=True)  # LlamaAttention puts the bias on q, k, v and o
    if src.opt("mlp_bias", False, bool):
        raise src.fail("mlp_bias", "MLP biases are not modelled", True)
    out["inter_dim"] = src.req("intermediate_size")
    return out, "dense, GQA attention"


def _mixtral(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _common(src)
    _gqa(src, out)
    n_experts = src.req("num_local_experts")
    out.update(
        moe_inter_dim=src.req("intermediate_size"),
        n_routed_experts=n_experts,
        n_activated_experts=_experts_per_token(src, "num_experts_per_tok", n_experts),
        score_func="softmax",
        norm_topk_prob=True,  # MixtralSparseMoeBlock: softmax, top-k, divide by the top-k sum
    )
    window = src.maybe("sliding_window")
    if window:
        out.update(sliding_window=window, n_sliding_layers=out["n_layers"])
    return out, "GQA attention, softmax top-k MoE (renormalised)"


def _gpt_oss(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _common(src)
    _gqa(src, out)
    n_experts = src.req("num_local_experts")
    k = _experts_per_token(src, "num_experts_per_tok", n_experts)
    if src.has("experts_per_token") and src.req("experts_per_token") != k:
        raise src.fail("experts_per_token", f"differs from num_experts_per_tok ({k})", src.req("experts_per_token"))
    bias = src.opt("attention_bias", True, bool)
    n_layers = out["n_layers"]
    types = src.req("layer_types", list)
    if len(types) != n_layers:
        raise src.fail("layer_types", f"has {len(types)} entries; num_hidden_layers is {n_layers}", len(types))
    for i, t in enumerate(types):
        if t not in ("sliding_attention", "full_attention"):
            raise src.fail(f"layer_types[{i}]", "must be sliding_attention or full_attention", t)
    n_sliding = types.count("sliding_attention")
    out.update(
        moe_inter_dim=src.req("intermediate_size"),
        n_routed_experts=n_experts,
        n_activated_experts=k,
        # GptOssTopKRouter: a Linear with a bias, top-k of the logits, softmax over those k,
        # which equals a softmax over all experts renormalised over the top k.
        score_func="softmax",
        norm_topk_prob=True,
        router_bias=True,
        expert_bias=True,
        qkv_bias=bias,
        out_bias=bias,
        attention_sinks=True,
        sliding_window=src.req("sliding_window") if n_sliding else 0,
        n_sliding_layers=n_sliding,
    )
    for key in ("swiglu_limit", "initial_context_length"):
        src.ignore(key)
    return out, "GQA attention alternating sliding-window and full layers with sinks, softmax top-k MoE"


def _llama4(src: _Fields) -> tuple[dict[str, Any], str]:
    top = src
    src = top.sub("text_config") if top.has("text_config") else top
    out = _common(src)
    _gqa(src, out)
    if src.opt("attention_bias", False, bool):
        out.update(qkv_bias=True, out_bias=True)
    n_layers = out["n_layers"]
    n_experts = src.req("num_local_experts")
    step = src.opt("interleave_moe_layer_step", 1)
    if step < 1:
        raise src.fail("interleave_moe_layer_step", "must be at least 1", step)
    moe_layers = src.maybe("moe_layers", list)
    if moe_layers is not None and moe_layers != list(range(step - 1, n_layers, step)):
        raise src.fail(
            "moe_layers", f"differs from every interleave_moe_layer_step ({step})-th layer; not modelled", moe_layers
        )
    out.update(
        moe_inter_dim=src.req("intermediate_size"),
        n_routed_experts=n_experts,
        n_activated_experts=_experts_per_token(src, "num_experts_per_tok", n_experts),
        n_shared_experts=1,  # Llama4TextMoe always adds one shared expert of intermediate_size
        moe_layer_step=step,
        # Llama4Router: top-k of the logits, sigmoid of those, no renormalisation.
        score_func="sigmoid",
        norm_topk_prob=False,
    )
    out["inter_dim"] = src.req("intermediate_size_mlp") if step > 1 else 0
    # Chunked attention on RoPE layers, full attention on NoPE ones (Llama4TextConfig.layer_types).
    chunk = src.maybe("attention_chunk_size")
    types = src.maybe("layer_types", list)
    if types is None:
        rope = src.maybe("no_rope_layers", list)
        if not rope:  # HF: an empty or absent list means a NoPE layer every no_rope_layer_interval
            interval = src.opt("no_rope_layer_interval", 4)
            if rope is not None:
                src.defaulted.append(f"{src.prefix}no_rope_layers=every {interval}th layer NoPE (the list is empty)")
            rope = [int((i + 1) % interval != 0) for i in range(n_layers)]
        if len(rope) < n_layers:
            raise src.fail("no_rope_layers", f"has {len(rope)} entries; num_hidden_layers is {n_layers}", len(rope))
        types = ["chunked_attention" if r else "full_attention" for r in rope[:n_layers]]
    if len(types) != n_layers:
        raise src.fail("layer_types", f"has {len(types)} entries; num_hidden_layers is {n_layers}", len(types))
    n_chunked = types.count("chunked_attention") if chunk else 0
    out.update(attention_chunk=chunk or 0, n_chunked_layers=n_chunked)
    if top.has("vision_config"):
        out["vision_params"] = _llama4_vision_params(top.sub("vision_config"), out["dim"])
    for key in ("attn_temperature_tuning", "floor_scale", "attn_scale", "use_qk_norm"):
        src.ignore(key)  # a query temperature and a weightless L2 norm: no weights, no FLOPs
    return out, "GQA attention (chunked on RoPE layers, global on NoPE layers), sigmoid top-k MoE with a shared expert"


def _llama4_vision_params(v: _Fields, text_dim: int) -> int:
    """Weights of Llama 4's vision encoder, adapter and projector (transformers' modeling_llama4)."""
    d = v.req("hidden_size")
    inter = v.req("intermediate_size")
    layers = v.req("num_hidden_layers")
    patch = v.req("patch_size")
    image = v.req("image_size")
    channels = v.opt("num_channels", 3)
    ratio = v.req("pixel_shuffle_ratio", float)
    proj_in = v.req("projector_input_dim")
    proj_out = v.req("projector_output_dim")
    out_dim = v.req("vision_output_dim")
    patches = (image // patch) ** 2
    n = channels * patch * patch * d  # patch embedding (no bias)
    n += d + (patches + 1) * d  # class embedding, positional embedding
    n += 4 * d  # LayerNorms (weight and bias) before and after the encoder
    per_layer = 4 * (d * d + d) + (d * inter + inter) + (inter * d + d) + 4 * d
    n += layers * per_layer
    shuffled = int(d / (ratio * ratio))
    n += shuffled * proj_in + proj_in * proj_out  # vision adapter MLP (no biases)
    n += out_dim * text_dim  # multi_modal_projector.linear_1
    return n


def _glm4_moe(src: _Fields) -> tuple[dict[str, Any], str]:
    out = _common(src)
    _gqa(src, out)
    _deepseek_moe(src, out)
    out.update(
        score_func="sigmoid",  # Glm4MoeTopkRouter: sigmoid scores, e_score_correction_bias for choice
        gate_bias=True,
        qkv_bias=src.opt("attention_bias", False, bool),  # Glm4MoeAttention: o_proj has no bias
        qk_norm=src.opt("use_qk_norm", False, bool),
        partial_rotary_factor=src.opt("partial_rotary_factor", 0.5, float),
        n_mtp_layers=src.opt("num_nextn_predict_layers", 0),
    )
    return out, "GQA attention (partial RoPE), sigmoid top-k MoE with shared experts"


READERS: dict[str, Callable[[_Fields], tuple[dict[str, Any], str]]] = {
    "DeepseekV2ForCausalLM": _deepseek_v3,
    "DeepseekV3ForCausalLM": _deepseek_v3,
    "DeepseekV32ForCausalLM": _deepseek_v32,
    "DeepseekV4ForCausalLM": _deepseek_v4,
    "Qwen3ForCausalLM": _qwen3,
    "Qwen3MoeForCausalLM": _qwen3_moe,
    "LlamaForCausalLM": _llama,
    "Llama4ForConditionalGeneration": _llama4,
    "Llama4ForCausalLM": _llama4,
    "MixtralForCausalLM": _mixtral,
    "GptOssForCausalLM": _gpt_oss,
    "Glm4MoeForCausalLM": _glm4_moe,
}


_BY_MODEL_TYPE = {
    "deepseek_v2": "DeepseekV2ForCausalLM",
    "deepseek_v3": "DeepseekV3ForCausalLM",
    "kimi_k2": "DeepseekV3ForCausalLM",
    "deepseek_v32": "DeepseekV32ForCausalLM",
    "deepseek_v4": "DeepseekV4ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "qwen3_moe": "Qwen3MoeForCausalLM",
    "llama": "LlamaForCausalLM",
    "llama4": "Llama4ForConditionalGeneration",
    "llama4_text": "Llama4ForCausalLM",
    "mixtral": "MixtralForCausalLM",
    "gpt_oss": "GptOssForCausalLM",
    "glm4_moe": "Glm4MoeForCausalLM",
}


# --- The weights' precision ---

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}
_COMPONENTS = ("attention", "dense_ffn", "shared_experts", "routed_experts", "router", "embedding", "output_head")
# Linear layers a quantizer converts; the embedding is a lookup table and stays in the model dtype.
_LINEAR = ("attention", "dense_ffn", "shared_experts", "routed_experts", "router", "output_head")
# Architectures whose router is an nn.Linear a quantizer converts (DeepSeek's and GLM's gates are not).
_LINEAR_ROUTERS = ("Qwen3", "Mixtral", "Llama", "GptOss")
# Which component a module-name pattern (modules_to_not_convert, exclude_modules, ignore) names.
_PATTERNS = (
    ("shared_expert", "shared_experts"),
    ("experts", "routed_experts"),
    ("router", "router"),
    ("mlp.gate.", "router"),
    ("ffn.gate.", "router"),
    ("attn", "attention"),
    ("embed", "embedding"),
    ("lm_head", "output_head"),
    ("head", "output_head"),
    ("mlp.", "dense_ffn"),  # gate_proj / up_proj / down_proj of a dense layer
)


def _component(pattern: str) -> str | None:
    p = pattern.rstrip("*") + ("." if pattern.endswith(("gate", "gate*")) else "")
    for needle, component in _PATTERNS:
        if needle in p:
            return component
    return None


def _precision(src: _Fields, arch: str) -> dict[str, Any]:
    """WeightPrecision fields from torch_dtype and quantization_config."""
    top = src
    dtype_src = src.sub("text_config") if arch.startswith("Llama4") and src.has("text_config") else src
    name = top.maybe("torch_dtype", str) or top.maybe("dtype", str) or dtype_src.maybe("torch_dtype", str)
    if name is None:
        name = top.opt("torch_dtype", "bfloat16", str)
    base = _DTYPES.get(name)
    if base is None:
        raise top.fail("torch_dtype", f"must be one of {', '.join(_DTYPES)}", name)
    weights: dict[str, Any] = dict.fromkeys(_COMPONENTS, base)
    if not top.has("quantization_config"):
        if arch == "DeepseekV4ForCausalLM" and top.maybe("expert_dtype", str) == "fp4":
            weights["routed_experts"] = "mxfp4"
        return weights
    q = top.sub("quantization_config")
    method = q.maybe("quant_method", str)
    if method is None:
        producer = q.maybe("producer", dict) or {}
        if producer.get("name") != "modelopt":
            raise q.fail("quant_method", "missing required field")
        method = "modelopt"  # NVIDIA ModelOpt writes quant_algo and its producer, no quant_method
    keep: list[str] = []
    for key in ("modules_to_not_convert", "exclude_modules", "ignore"):
        for pattern in q.maybe(key, list) or []:
            component = _component(str(pattern))
            if component is None:
                src.ignored.append(f"quantization_config.{key}:{pattern}")
            else:
                keep.append(component)
    if method == "fp8":
        fmt = q.opt("fmt", "e4m3", str)
        if fmt != "e4m3":
            raise q.fail("fmt", "meter models fp8 e4m3 weights", fmt)
        block = q.maybe("weight_block_size", list)
        if block is not None:
            if len(block) != 2 or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block):
                raise q.fail("weight_block_size", "expected two positive integers", block)
            weights["fp8_block"] = list(block)
        # HF's fine-grained fp8 quantizer converts the Linear layers but never lm_head; DeepSeek's and
        # GLM's routers are not Linear layers (their checkpoints keep the gate in the model dtype).
        for c in ("attention", "dense_ffn", "shared_experts", "routed_experts"):
            weights[c] = "fp8"
        if arch.startswith(_LINEAR_ROUTERS):
            weights["router"] = "fp8"
        moe_algo = q.maybe("moe_quant_algo", str)
        if moe_algo is not None:
            if moe_algo != "NVFP4":
                raise q.fail("moe_quant_algo", "meter models NVFP4 experts only", moe_algo)
            weights["routed_experts"] = "nvfp4"
        elif top.maybe("expert_dtype", str) == "fp4":
            weights["routed_experts"] = "mxfp4"  # DeepSeek-V4: MXFP4 experts with E8M0 scales
    elif method == "mxfp4":
        # gpt-oss: the quantizer converts the experts only (GptOssExperts); the rest stays.
        weights["routed_experts"] = "mxfp4"
    elif method == "modelopt":
        algo = q.req("quant_algo", str)
        fmt = {"NVFP4": "nvfp4", "FP8": "fp8"}.get(algo)
        if fmt is None:
            raise q.fail("quant_algo", "meter reads modelopt NVFP4 and FP8 (per-tensor) checkpoints", algo)
        for c in _LINEAR:
            if c == "router" and not arch.startswith(_LINEAR_ROUTERS):
                continue
            if c != "output_head":
                weights[c] = fmt
    else:
        raise q.fail("quant_method", "unsupported; meter reads fp8, mxfp4 and modelopt (NVFP4, FP8)", method)
    for c in keep:
        weights[c] = base
    return weights


# meter's ModelArgs fields and the config.json fields they are read from (where the names differ).
_HF_FIELDS = {
    "vocab_size": "vocab_size",
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "inter_dim": "intermediate_size",
    "moe_inter_dim": "moe_intermediate_size",
    "n_activated_experts": "num_experts_per_tok",
    "n_expert_groups": "n_group",
    "n_limited_groups": "topk_group",
    "n_dense_layers": "first_k_dense_replace",
    "route_scale": "routed_scaling_factor",
    "n_mtp_layers": "num_nextn_predict_layers",
    "rope_factor": "rope_scaling.factor",
    "original_seq_len": "rope_scaling.original_max_position_embeddings",
    "beta_fast": "rope_scaling.beta_fast",
    "beta_slow": "rope_scaling.beta_slow",
    "sliding_window": "sliding_window",
    "attention_chunk": "attention_chunk_size",
    "partial_rotary_factor": "partial_rotary_factor",
}


def hf_field_name(field: str | None, architecture: str) -> str | None:
    """The config.json field a meter ModelArgs field was read from (as meter's name if unknown)."""
    if field is None:
        return None
    if field == "n_routed_experts":
        return {"Qwen3MoeForCausalLM": "num_experts", "MixtralForCausalLM": "num_local_experts"}.get(
            architecture, "num_local_experts" if architecture.startswith(("GptOss", "Llama4")) else field
        )
    name = _HF_FIELDS.get(field, field)
    return f"text_config.{name}" if architecture.startswith("Llama4") and "." not in name else name


def default_name(path: Path) -> str:
    """A model name for a config.json: its directory's name (HF repo layout), else the file's stem."""
    path = resolve_config_json(path)
    return path.parent.name if path.name == CONFIG_JSON and path.parent.name else path.stem


__all__ = ["CONFIG_JSON", "HfModel", "ImportRecord", "default_name", "read_hf_config", "resolve_config_json"]
