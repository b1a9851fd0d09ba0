"""Model configs: ``configs/models/NAME.yaml`` loaded into :class:`ModelConfig`.

A model file is flat, like DeepSeek's own ``config_671B.json``: the shape fields of
:class:`kernels.args.ModelArgs` at the top level, beside a few metadata keys (``name``,
``description``, ``source``, ``date``), an optional ``published`` block of figures the
analytic model is checked against, an optional ``weights`` block (the precision each component
is stored in) and, for a model imported from a Hugging Face ``config.json``, an ``imported``
block recording that file.

Wherever a model is named, a Hugging Face ``config.json`` (or a directory holding one) works
too: :func:`load_model` reads it through :mod:`meter.config.hf`, and :func:`model_yaml` writes
it as a model file that loads back to the same model (``meter models import``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from meter.compat import check_kernels_package
from meter.config.hf import ImportRecord, default_name, hf_field_name, read_hf_config
from meter.config.paths import ConfigLocator
from meter.config.schema import INTERNAL, build_dataclass, check_name_matches_file, read_yaml
from meter.errors import ConfigError

check_kernels_package()
from kernels.args import ModelArgs  # noqa: E402  (after the shadowing check, on purpose)
from kernels.precision import WeightPrecision  # noqa: E402

_POSITIVE = {"gt": 0}
_NON_NEGATIVE = {"ge": 0}
# Range checks for ModelArgs, kept here because `kernels` must not depend on `meter`.
MODEL_CONSTRAINTS: dict[str, dict[str, float]] = {
    **{
        f: _POSITIVE
        for f in (
            "vocab_size",
            "dim",
            "n_layers",
            "n_heads",
            "route_scale",
            "moe_layer_step",
            "rope_theta",
            "norm_eps",
            "n_expert_groups",
            "n_limited_groups",
            "original_seq_len",
            "beta_fast",
            "beta_slow",
            "mscale",
        )
    },
    "rope_factor": {"ge": 1},  # 1 means no YaRN extension
    **{
        f: _NON_NEGATIVE
        for f in (
            "n_dense_layers",
            "moe_inter_dim",
            "n_routed_experts",
            "n_shared_experts",
            "n_activated_experts",
            "q_lora_rank",
            "kv_lora_rank",
            "qk_nope_head_dim",
            "qk_rope_head_dim",
            "v_head_dim",
            "n_kv_heads",
            "head_dim",
            "n_mtp_layers",
            "inter_dim",
            "sliding_window",
            "n_sliding_layers",
            "attention_chunk",
            "n_chunked_layers",
            "vision_params",
        )
    },
    "partial_rotary_factor": {"gt": 0, "le": 1},
}


@dataclass(frozen=True, kw_only=True)
class TrainingCompute:
    """A published total of training compute and the run it counts: the figure people compare."""

    flops: float = field(metadata=_POSITIVE)
    tokens: float = field(metadata=_POSITIVE)
    seq_len: int = field(metadata=_POSITIVE)
    source: str
    date: dt.date


@dataclass(frozen=True, kw_only=True)
class PublishedModelFigures:
    """Figures the model's authors published, for tests and calibration."""

    total_params: float | None = field(default=None, metadata=_POSITIVE)
    active_params: float | None = field(default=None, metadata=_POSITIVE)
    train_flops_per_token: float | None = field(default=None, metadata=_POSITIVE)
    kv_cache_bytes_per_token: int | None = field(default=None, metadata=_POSITIVE)
    # What the published active count includes: the output head but not the input embedding
    # (DeepSeek's and OpenAI's convention, meter's ``active``), both (Mistral, Meta, Qwen), or
    # neither (Z.ai's GLM-4.5).
    active_params_counts: Literal["head", "embeddings", "neither"] = "head"
    source: str | None = None
    training_compute: TrainingCompute | None = None


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """A named model: its shape (for `kernels` and the analytic model) and where it came from."""

    name: str
    args: ModelArgs
    description: str
    source: str
    date: dt.date
    published: PublishedModelFigures = PublishedModelFigures()
    weights: WeightPrecision = WeightPrecision()
    imported: ImportRecord | None = None
    path: Path | None = field(default=None, metadata=INTERNAL, compare=False)


@dataclass(frozen=True, kw_only=True)
class _ModelMeta:
    name: str
    description: str
    source: str
    date: dt.date
    published: PublishedModelFigures = PublishedModelFigures()
    weights: WeightPrecision = WeightPrecision()
    imported: ImportRecord | None = None


_META_KEYS = frozenset(f.name for f in dataclasses.fields(_ModelMeta))


def load_model(name_or_path: str, locator: ConfigLocator | None = None) -> ModelConfig:
    """Load and validate a model config by name (``deepseek-v3``) or path."""
    locator = locator or ConfigLocator.from_env()
    path = locator.find("models", name_or_path)
    if path.suffix == ".json":
        return load_hf_model(path)
    return parse_model(read_yaml(path), path)


def load_hf_model(path: Path, name: str | None = None, today: dt.date | None = None) -> ModelConfig:
    """A model from a Hugging Face config.json, named after its directory unless ``name`` is given."""
    hf = read_hf_config(path, today)
    try:
        args = build_dataclass(ModelArgs, hf.args, path=path, constraints=MODEL_CONSTRAINTS)
        check_model_consistency(args, path)
    except ConfigError as exc:
        # The check speaks meter's field names; name the config.json's field the user can find.
        hf_field = hf_field_name(exc.field, hf.record.architecture)
        raise ConfigError(path, hf_field, exc.problem, exc.value) from None
    weights = build_dataclass(WeightPrecision, hf.weights, path=path, prefix="quantization_config.")
    rec = hf.record
    return ModelConfig(
        name=name or default_name(path),
        args=args,
        description=f"{rec.architecture}: {hf.description}",
        source=f"Hugging Face config.json {rec.path} (sha256 {rec.sha256})",
        date=rec.date,
        weights=weights,
        imported=rec,
        path=path,
    )


def model_yaml(model: ModelConfig) -> str:
    """The model as a model file (the fields that differ from their defaults) that loads back equal."""
    data: dict[str, Any] = {
        "name": model.name,
        "description": model.description,
        "source": model.source,
        "date": model.date.isoformat(),
    }
    data.update(_non_defaults(model.args))
    defaults = {"weights": WeightPrecision(), "published": PublishedModelFigures(), "imported": None}
    for key, default in defaults.items():
        value = getattr(model, key)
        if value != default:
            data[key] = _non_defaults(value)
    header = "# Written by `meter models import`"
    if model.imported is not None:
        header += f" from {model.imported.path} ({model.imported.architecture})"
    return header + "\n" + yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def _non_defaults(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if not f.init or f.metadata.get("internal"):
            continue
        value = getattr(obj, f.name)
        has_default = f.default is not dataclasses.MISSING
        if has_default and value == f.default:
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return _non_defaults(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def parse_model(data: object, path: Path | None) -> ModelConfig:
    """Validate a parsed model mapping; raises ConfigError naming file, field and value."""
    if not isinstance(data, Mapping):
        build_dataclass(_ModelMeta, data, path=path)  # raises the standard "expected a mapping" error
    args_data = {k: v for k, v in data.items() if k not in _META_KEYS}
    meta_data = {k: v for k, v in data.items() if k in _META_KEYS}
    # Unknown keys are reported against ModelArgs, whose field list is the longer one to match.
    args = build_dataclass(ModelArgs, args_data, path=path, constraints=MODEL_CONSTRAINTS)
    meta = build_dataclass(_ModelMeta, meta_data, path=path)
    check_name_matches_file(meta.name, path)
    check_model_consistency(args, path)
    return ModelConfig(
        name=meta.name,
        args=args,
        description=meta.description,
        source=meta.source,
        date=meta.date,
        published=meta.published,
        weights=meta.weights,
        imported=meta.imported,
        path=path,
    )


def check_model_consistency(a: ModelArgs, path: Path | None) -> None:
    """Refuse shapes that no layer can be built from, naming the first offending field."""

    def fail(field_name: str, problem: str) -> None:
        raise ConfigError(path, field_name, problem, getattr(a, field_name))

    if a.n_dense_layers > a.n_layers:
        fail("n_dense_layers", f"exceeds n_layers ({a.n_layers})")
    if a.n_ffn_dense_layers and a.inter_dim <= 0:
        fail("inter_dim", f"must be greater than 0: {a.n_ffn_dense_layers} layers have the dense FFN")
    if a.n_sliding_layers + a.n_chunked_layers > a.n_layers:
        fail("n_sliding_layers", f"with n_chunked_layers ({a.n_chunked_layers}) exceeds n_layers ({a.n_layers})")
    for count, span in (("n_sliding_layers", "sliding_window"), ("n_chunked_layers", "attention_chunk")):
        if getattr(a, count) and not getattr(a, span):
            fail(span, f"must be greater than 0 when {count} is {getattr(a, count)}")
        if getattr(a, span) and not getattr(a, count):
            fail(count, f"is 0, but {span} is {getattr(a, span)}: name the layers it applies to")
    if a.is_moe:
        if a.moe_inter_dim <= 0:
            fail("moe_inter_dim", "must be greater than 0 for an MoE model (n_routed_experts > 0)")
        if a.n_activated_experts < 1:
            fail("n_activated_experts", "an MoE model must activate at least one routed expert")
        if a.n_activated_experts > a.n_routed_experts:
            fail("n_activated_experts", f"top-k exceeds n_routed_experts ({a.n_routed_experts})")
        if a.n_routed_experts % a.n_expert_groups:
            fail("n_routed_experts", f"not divisible into n_expert_groups ({a.n_expert_groups}) equal groups")
        if a.n_limited_groups > a.n_expert_groups:
            fail("n_limited_groups", f"exceeds n_expert_groups ({a.n_expert_groups})")
        per_group = a.n_routed_experts // a.n_expert_groups
        if a.n_activated_experts > a.n_limited_groups * per_group:
            fail(
                "n_activated_experts",
                f"top-k exceeds the {a.n_limited_groups * per_group} experts in n_limited_groups "
                f"({a.n_limited_groups}) groups of {per_group}",
            )
        if a.gate_bias and a.n_expert_groups > 1 and per_group < 2:
            fail(
                "n_expert_groups",
                "group scores with gate_bias sum each group's top-2 experts; groups need at least 2 experts",
            )
    else:
        for name in ("n_activated_experts", "n_shared_experts"):
            if getattr(a, name):
                fail(name, "set, but n_routed_experts is 0 (a dense model)")
        if a.n_dense_layers not in (0, a.n_layers):
            fail("n_dense_layers", "a dense model (n_routed_experts 0) has only dense layers; omit it")
    if a.sparse_attention is not None and a.attention != "mla":
        raise ConfigError(
            path, "kv_lora_rank", "is 0, but sparse_attention (DSA) selects tokens for MLA, which needs it above 0", 0
        )
    if a.attention == "compressed":
        check_compressed_attention(a, path)
    elif a.attention == "mla":
        for name in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
            if getattr(a, name) <= 0:
                fail(name, "must be greater than 0 for MLA attention (kv_lora_rank > 0)")
        if a.qk_rope_head_dim % 2:
            fail("qk_rope_head_dim", "RoPE rotates pairs of channels; must be even")
        if a.rope_factor > 1 and a.beta_fast < a.beta_slow:
            # Equal betas (Kimi K2: 1 and 1) make a zero-width ramp, which DeepSeek's code widens by 0.001.
            fail(
                "beta_fast",
                f"YaRN's ramp runs from beta_fast down to beta_slow ({a.beta_slow:g}); must not be below it",
            )
    else:
        if a.q_lora_rank:
            fail("q_lora_rank", "set, but kv_lora_rank is 0 (GQA attention has no latent query path)")
        if a.rope_factor != 1:
            fail("rope_factor", "YaRN is implemented for MLA models only (kv_lora_rank > 0)")
        for name in ("n_kv_heads", "head_dim"):
            if getattr(a, name) <= 0:
                fail(name, "must be greater than 0 for GQA attention (kv_lora_rank 0)")
        if a.n_heads % a.n_kv_heads:
            fail("n_kv_heads", f"must divide n_heads ({a.n_heads})")
        if a.head_dim % 2:
            fail("head_dim", "RoPE rotates pairs of channels; must be even")


def check_compressed_attention(a: ModelArgs, path: Path | None) -> None:
    """DeepSeek-V4's hybrid attention: one shared KV head, a ratio per layer, grouped output heads."""
    c = a.compressed_attention
    assert c is not None

    def fail(field_name: str, problem: str, value: object) -> None:
        raise ConfigError(path, field_name, problem, value)

    if a.kv_lora_rank:
        fail("kv_lora_rank", "set beside compressed_attention, whose single KV head has no latent", a.kv_lora_rank)
    if a.n_kv_heads != 1:
        fail("n_kv_heads", "compressed attention has one KV head shared by all query heads; must be 1", a.n_kv_heads)
    if a.head_dim <= 0:
        fail("head_dim", "must be greater than 0 for compressed attention (the KV head's width)", a.head_dim)
    if a.qk_rope_head_dim <= 0 or a.qk_rope_head_dim % 2 or a.qk_rope_head_dim >= a.head_dim:
        fail(
            "qk_rope_head_dim",
            f"must be even, above 0 and below head_dim ({a.head_dim}): the rotated part of each head",
            a.qk_rope_head_dim,
        )
    n = len(c.compress_ratios)
    if n not in (a.n_layers, a.n_layers + a.n_mtp_layers):
        fail(
            "compressed_attention.compress_ratios",
            f"has {n} entries; expected one per layer ({a.n_layers}, or {a.n_layers + a.n_mtp_layers} with the MTP layers)",
            list(c.compress_ratios),
        )
    if a.n_heads % c.o_groups:
        fail("compressed_attention.o_groups", f"must divide n_heads ({a.n_heads})", c.o_groups)
    if c.n_hash_layers > a.n_moe_layers:
        fail("compressed_attention.n_hash_layers", f"exceeds the MoE layers ({a.n_moe_layers})", c.n_hash_layers)
    if c.indexed_compress_ratio < 2:
        fail("compressed_attention.indexed_compress_ratio", "must be at least 2 (a compressing ratio)", 1)


def list_models(locator: ConfigLocator | None = None) -> list[ModelConfig]:
    locator = locator or ConfigLocator.from_env()
    return [parse_model(read_yaml(p), p) for p in locator.names("models").values()]
