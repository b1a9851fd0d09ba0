"""Deployments: ``configs/deployments/NAME.yaml`` loaded into :class:`Deployment`.

A deployment says how a model is served, for the serving cost's bound: the precision of each
kind of weight and of the KV cache, and two pools, prefill and decode, each with its parallel
layout (tensor parallel ``tp``, attention data parallel ``dp``, expert parallel ``ep``, redundant
experts), the batch each GPU carries and the context it runs at. A pool's GPUs are ``tp x dp``.

As in hardware files, every figure must be covered by an entry of ``sources`` naming it
(``decode.ep``) or its section (``decode``), with a date. A deployment may name its model and
hardware (DeepSeek's layouts are for V3 on H800) or neither (a single-GPU layout for any small
model). :func:`layout_problem` checks a layout against a model: the experts divide over ``ep``,
the heads over ``tp``; the same check refuses a bad ``--tp``/``--ep`` on the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from meter.config.hardware import Source
from meter.config.paths import ConfigLocator
from meter.config.schema import INTERNAL, between, build_dataclass, check_name_matches_file, ge, gt, read_yaml
from meter.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module to build its parser, before kernels is checked
    from kernels.args import ModelArgs

WeightDtype = Literal["fp8", "bf16", "fp4"]  # fp4: NVFP4 (Blackwell) / MXFP4 (MI355X)
KvDtype = Literal["bf16", "fp8", "fp8_mla", "fp4"]  # fp8_mla: FlashMLA's 656-byte fp8 latent with scales
KV_DTYPES: tuple[str, ...] = KvDtype.__args__  # type: ignore[attr-defined]
WEIGHT_DTYPES: tuple[str, ...] = WeightDtype.__args__  # type: ignore[attr-defined]
PHASES = ("prefill", "decode")


@dataclass(frozen=True, kw_only=True)
class WeightPrecision:
    """The dtype each kind of weight is stored and multiplied in.

    DeepSeek's checkpoint keeps every linear layer in fp8 (128 x 128 blocks, one fp32 scale each)
    and the embedding, output head, router and norms in bf16; ``--weights fp8|bf16`` sets the
    linear layers and leaves the rest.
    """

    attention: WeightDtype = "bf16"
    dense_ffn: WeightDtype = "bf16"
    shared_experts: WeightDtype = "bf16"
    routed_experts: WeightDtype = "bf16"
    router: WeightDtype = "bf16"
    embedding: WeightDtype = "bf16"
    head: WeightDtype = "bf16"

    def with_linear(self, dtype: str) -> WeightPrecision:
        return dataclasses.replace(self, attention=dtype, dense_ffn=dtype, shared_experts=dtype, routed_experts=dtype)

    def describe(self, *, experts: bool = True) -> str:
        """``bf16``, or each dtype with the kinds in it (expert kinds only for an MoE model)."""
        values = {k: v for k, v in dataclasses.asdict(self).items() if experts or k not in EXPERT_KINDS}
        by_dtype: dict[str, list[str]] = {}
        for kind, dtype in values.items():
            by_dtype.setdefault(dtype, []).append(kind.replace("_", " "))
        if len(by_dtype) == 1:
            return next(iter(by_dtype))
        return "; ".join(f"{dtype} {', '.join(kinds)}" for dtype, kinds in by_dtype.items())


EXPERT_KINDS = ("shared_experts", "routed_experts", "router")


@dataclass(frozen=True, kw_only=True)
class Pool:
    """One phase's GPUs: their layout, batch and context.

    ``batch_per_gpu`` is the sequences each GPU carries, averaged over a tensor-parallel group (a
    TP8 replica with 64 sequences has 8 per GPU); None means as many as the KV-cache memory allows
    at ``context``. In prefill, ``context`` is the prompt length and each GPU computes
    ``batch_per_gpu x context`` tokens per step; in decode it is the KV length each new token reads.
    """

    tp: int = field(default=1, metadata=ge(1))
    dp: int = field(default=1, metadata=ge(1))
    ep: int = field(default=1, metadata=ge(1))
    redundant_experts: int = field(default=0, metadata=ge(0))
    routed_experts_per_gpu: int | None = field(default=None, metadata=ge(0))  # a published figure, checked
    shared_experts_per_gpu: int | None = field(default=None, metadata=ge(0))  # likewise
    batch_per_gpu: float | None = field(default=None, metadata=gt(0))
    context: int = field(metadata=gt(0))
    gpus_per_node: int = field(default=8, metadata=ge(1))
    max_nodes_per_token: int | None = field(default=None, metadata=ge(1))
    comm_overlap: float = field(default=0.0, metadata=between(0, 1))  # share of the smaller of compute and comm hidden

    @property
    def gpus(self) -> int:
        return self.tp * self.dp


@dataclass(frozen=True, kw_only=True)
class PublishedThroughput:
    """Throughput the deployment's operator published, to set beside its bound (the implied efficiency)."""

    decode_tokens_per_s_per_gpu: float | None = field(default=None, metadata=gt(0))
    prefill_tokens_per_s_per_gpu: float | None = field(default=None, metadata=gt(0))  # computed tokens


@dataclass(frozen=True, kw_only=True)
class Deployment:
    name: str
    description: str
    model: str | None = None
    hardware: str | None = None
    weights: WeightPrecision = WeightPrecision()
    kv_cache: KvDtype = "bf16"
    dispatch: WeightDtype = "bf16"  # payload of the EP dispatch; the combine is bf16
    reserved_memory_ratio: float = field(default=0.1, metadata=between(0, 0.9))  # HBM kept for the runtime
    prefill: Pool
    decode: Pool
    published: PublishedThroughput | None = None
    sources: list[Source] = field(default_factory=list)
    notes: str | None = None
    path: Path | None = field(default=None, metadata=INTERNAL, compare=False)

    def pool(self, phase: str) -> Pool:
        return self.prefill if phase == "prefill" else self.decode


_UNSOURCED = frozenset({"name", "description", "model", "hardware", "sources", "notes"})


def load_deployment(name_or_path: str, locator: ConfigLocator | None = None) -> Deployment:
    locator = locator or ConfigLocator.from_env()
    path = locator.find("deployments", name_or_path)
    data = read_yaml(path)
    d = build_dataclass(Deployment, data, path=path)
    check_name_matches_file(d.name, path)
    _check_sources(data, d, path)
    for kind, name in (("models", d.model), ("hardware", d.hardware)):
        if name is not None and not locator.exists(kind, name):
            raise ConfigError(path, "model" if kind == "models" else "hardware", f"no such {kind} config", name)
    if d.model is not None:
        from meter.config.models import load_model

        args = load_model(d.model, locator).args
        for phase in PHASES:
            problem = layout_problem(d.pool(phase), args)
            if problem:
                raise ConfigError(path, f"{phase}.{problem[0]}", problem[1], getattr(d.pool(phase), problem[0]))
    return dataclasses.replace(d, path=path)


def _check_sources(data: Mapping[str, Any], d: Deployment, path: Path) -> None:
    """Every figure the file sets (``decode.ep``, ``kv_cache``) is named by a source, itself or its section."""
    covered = {name for src in d.sources for name in src.fields}
    for key, value in data.items():
        if key in _UNSOURCED:
            continue
        names = [f"{key}.{sub}" for sub in value] if isinstance(value, Mapping) else [key]
        for name in names:
            if name not in covered and key not in covered:
                raise ConfigError(path, name, "has no entry in 'sources' (every figure needs a source and date)")


def layout_problem(pool: Pool, a: ModelArgs) -> tuple[str, str] | None:
    """(field, why) when ``pool`` cannot serve the model ``a``, or None. Fields are Pool's names."""
    if a.n_heads % pool.tp:
        return "tp", f"does not divide the {a.n_heads} attention heads"
    if a.attention == "gqa" and pool.tp > a.n_kv_heads and pool.tp % a.n_kv_heads:
        return "tp", f"neither divides nor is a multiple of the {a.n_kv_heads} KV heads"
    slots = a.n_routed_experts + pool.redundant_experts
    if not a.is_moe:
        if pool.ep > 1:
            return "ep", "the model has no experts to spread (a dense model); expert parallelism needs an MoE model"
        if pool.redundant_experts:
            return "redundant_experts", "the model has no experts (a dense model)"
        return None
    if slots % pool.ep:
        return (
            "ep",
            f"does not divide the {slots} expert copies ({a.n_routed_experts} routed + {pool.redundant_experts} redundant)",
        )
    if pool.ep > pool.gpus or pool.gpus % pool.ep:
        return "ep", f"does not divide the pool's {pool.gpus} GPUs (tp {pool.tp} x dp {pool.dp})"
    if pool.routed_experts_per_gpu is not None and pool.routed_experts_per_gpu * pool.ep != slots:
        return "routed_experts_per_gpu", f"x ep ({pool.ep}) is not the {slots} expert copies"
    if pool.shared_experts_per_gpu is not None and pool.shared_experts_per_gpu != a.n_shared_experts:
        return (
            "shared_experts_per_gpu",
            f"the model has {a.n_shared_experts} shared experts, each replicated on every GPU",
        )
    return None


def list_deployments(locator: ConfigLocator | None = None) -> dict[str, Path]:
    return (locator or ConfigLocator.from_env()).names("deployments")


def deployments_for(model: str, locator: ConfigLocator | None = None) -> list[str]:
    """Names of the deployments written for ``model``."""
    locator = locator or ConfigLocator.from_env()
    return [name for name in list_deployments(locator) if load_deployment(name, locator).model == model]
