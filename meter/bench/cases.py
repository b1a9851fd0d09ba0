"""Sweeps of benchmark cases: grids of :class:`meter.results.BenchCase` (one layer, phase, shape, precision)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from kernels.args import ModelArgs
from meter.errors import UsageError
from meter.results.cases import ATTENTION_LAYERS, LAYERS, PHASES, BenchCase

__all__ = [
    "LAYERS",
    "PHASES",
    "BenchCase",
    "applicable_layers",
    "attention_layer",
    "dedupe",
    "ep_problem",
    "expand_grid",
    "grid_from_lists",
    "parse_fused_plan",
]


def ep_problem(a: ModelArgs, ep: int, layers: list[str] | None) -> str | None:
    """Why an expert-parallel degree cannot be benchmarked for this model (and these layers), or None."""
    if ep == 1:
        return None
    if not a.is_moe:
        return "the model has no experts to spread"
    if layers is not None and "moe" not in layers:
        return "only MoE layers have expert parallelism; add moe to the layers"
    if ep > a.n_routed_experts:
        return f"exceeds the model's {a.n_routed_experts} routed experts"
    if a.n_routed_experts % ep:
        return f"does not divide the model's {a.n_routed_experts} routed experts"
    return None


def attention_layer(a: ModelArgs) -> str:
    """The bench's name for the model's attention: ``dsa`` for DeepSeek-V3.2's sparse MLA."""
    return "dsa" if a.sparse_attention is not None else a.attention


def applicable_layers(a: ModelArgs) -> list[str]:
    """The layer kinds a model has and ``kernels`` can run: its attention (not V4's compressed
    attention, which only the analytic model counts), MoE if it has experts, FFN if it has dense FFNs."""
    layers = [attention_layer(a)] if attention_layer(a) in ATTENTION_LAYERS else []
    if a.is_moe:
        layers.append("moe")
    if a.n_ffn_dense_layers:
        layers.append("ffn")
    return layers


def expand_grid(model: str, a: ModelArgs, grid: Mapping[str, Any]) -> list[BenchCase]:
    """Every combination of the grid's list values; irrelevant axes are dropped per layer and phase.

    ``layers`` may hold ``attn`` for the model's own attention. Axes a case ignores (``context`` for
    training, ``form`` outside MLA decode, expert options outside MoE) do not multiply cases.
    """
    axes = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in grid.items() if v is not None}
    layers = [attention_layer(a) if layer == "attn" else layer for layer in axes.pop("layers", applicable_layers(a))]
    for layer in layers:
        if layer not in LAYERS:
            raise UsageError(
                f"model {model} uses {layer} attention (DeepSeek-V4), which has no benchmark workload in kernels/; "
                "meter flops counts it: benchmark its moe layers instead"
            )
    phases = axes.pop("phase", list(PHASES))
    cases: list[BenchCase] = []
    seen: set[BenchCase] = set()
    for layer, phase in itertools.product(layers, phases):
        relevant = {k: v for k, v in axes.items() if _relevant(k, layer, phase)}
        keys = list(relevant)
        for values in itertools.product(*(relevant[k] for k in keys)):
            case = BenchCase(model=model, layer=layer, phase=phase, **dict(zip(keys, values)))
            case = _fill_defaults(case)
            if case not in seen:
                seen.add(case)
                cases.append(case)
    return cases


def _relevant(axis: str, layer: str, phase: str) -> bool:
    if axis in ("fp8", "ep", "routing", "skew", "tokens_per_expert"):
        return layer == "moe"
    if axis in ("form", "compile", "fused_plan"):
        return layer == "mla" and phase == "decode"
    if axis == "context":
        return phase == "decode" and layer in ATTENTION_LAYERS
    if axis == "seq":
        return phase != "decode"
    return True


def _fill_defaults(case: BenchCase) -> BenchCase:
    if case.phase != "decode" and not case.seq and not case.tokens_per_expert:
        case = replace(case, seq=4096)
    if case.phase == "decode" and case.layer in ATTENTION_LAYERS and not case.context:
        case = replace(case, context=4096)
    if case.form == "fused":
        case = replace(case, compile=False)  # compiling applies to the eager forms
    else:
        case = replace(case, fused_plan=None)
    return case


def dedupe(cases: Iterable[BenchCase]) -> list[BenchCase]:
    out: list[BenchCase] = []
    seen: set[BenchCase] = set()
    for c in cases:
        if c not in seen:
            seen.add(c)
            out.append(c)
    return out


def grid_from_lists(**axes: Sequence[Any] | None) -> dict[str, Any]:
    """A grid from command-line lists, leaving out axes the user did not give."""
    return {k: v for k, v in axes.items() if v is not None}


_PLAN = re.compile(r"(?:h(\d+))?(?:n(\d+))?(?:s(\d+))?")


def parse_fused_plan(spec: str) -> dict[str, int]:
    """``"h64n32s2"`` (any of the parts, in that order) -> overrides of the fused decode's launch rule.

    h: query rows (heads x new tokens) per program, n: cache positions per step (both powers of
    two, at least 16), s: context splits. Raises ValueError naming what is wrong.
    """
    m = _PLAN.fullmatch(spec)
    if not spec or m is None:
        raise ValueError(f"expected h<rows>n<positions>s<splits> (any of them, e.g. h64n32s2), not {spec!r}")
    out = {k: int(v) for k, v in zip(("block_h", "block_n", "num_splits"), m.groups()) if v is not None}
    for key in ("block_h", "block_n"):
        value = out.get(key)
        if value is not None and (value < 16 or value & (value - 1)):
            raise ValueError(f"{key[-1]} in {spec!r} must be a power of two of at least 16, not {value}")
    if out.get("num_splits") == 0:
        raise ValueError(f"s in {spec!r} must be at least 1")
    return out
