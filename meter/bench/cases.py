"""Benchmark cases: one layer, one phase, one shape, one precision. Sweeps are grids of cases."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from kernels.args import ModelArgs

Layer = Literal["mla", "gqa", "moe", "ffn"]
Phase = Literal["train", "prefill", "decode"]
LAYERS: tuple[str, ...] = ("mla", "gqa", "moe", "ffn")
PHASES: tuple[str, ...] = ("train", "prefill", "decode")


@dataclass(frozen=True)
class BenchCase:
    """One measurement. Shapes: train/prefill run ``batch`` sequences of ``seq`` tokens; decode runs
    ``batch`` sequences one new token each against ``context`` positions. An MoE case may instead
    be sized by ``tokens_per_expert`` (rows each local expert's GEMM gets, on average)."""

    model: str
    layer: Layer
    phase: Phase
    batch: int = 1
    seq: int = 0
    context: int = 0
    tokens_per_expert: int | None = None
    dtype: str = "bf16"
    fp8: str | None = None  # None, "rowwise" or "blockwise": expert GEMMs in fp8
    ep: int = 1  # expert-parallel degree: this GPU holds n_routed_experts / ep experts
    routing: str = "learned"  # learned, uniform, or skew
    skew: float = 1.0  # Zipf exponent when routing == "skew"
    form: str = "absorbed"  # MLA decode form: absorbed, naive or fused (the Triton kernel)
    compile: bool = False  # torch.compile the eager decode forms
    fused_plan: str | None = None  # fused form: overrides of its launch rule, e.g. "h64n32s2"

    def tokens(self, a: ModelArgs) -> int:
        """Tokens one call processes on this GPU."""
        if self.layer == "moe" and self.tokens_per_expert:
            local = a.n_routed_experts // self.ep
            return max(1, round(self.tokens_per_expert * local / a.n_activated_experts))
        return self.batch if self.phase == "decode" else self.batch * self.seq

    @property
    def id(self) -> str:
        parts = [self.layer, self.phase]
        if self.layer == "moe" and self.tokens_per_expert:
            parts.append(f"tpe{self.tokens_per_expert}")
        elif self.phase == "decode":
            parts.append(f"b{self.batch}" + (f"-ctx{self.context}" if self.layer in ("mla", "gqa") else ""))
        else:
            parts.append(f"b{self.batch}-s{self.seq}")
        parts.append(self.dtype + (f"+fp8-{self.fp8}" if self.fp8 else ""))
        if self.layer == "moe":
            if self.ep > 1:
                parts.append(f"ep{self.ep}")
            if self.routing != "learned":
                parts.append(self.routing + (f"{self.skew:g}" if self.routing == "skew" else ""))
        if self.layer == "mla" and self.phase == "decode":
            parts.append(
                self.form + ("+compile" if self.compile else "") + (f"-{self.fused_plan}" if self.fused_plan else "")
            )
        return ".".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def applicable_layers(a: ModelArgs) -> list[str]:
    """The layer kinds a model has: its attention, MoE if it has experts, FFN if it has dense FFNs."""
    layers = [a.attention]
    if a.is_moe:
        layers.append("moe")
    if a.n_ffn_dense_layers:
        layers.append("ffn")
    return layers


GRID_AXES = (
    "layers",
    "phase",
    "batch",
    "seq",
    "context",
    "tokens_per_expert",
    "dtype",
    "fp8",
    "ep",
    "routing",
    "skew",
    "form",
    "compile",
    "fused_plan",
)


def expand_grid(model: str, a: ModelArgs, grid: Mapping[str, Any]) -> list[BenchCase]:
    """Every combination of the grid's list values; irrelevant axes are dropped per layer and phase.

    ``layers`` may hold ``attn`` for the model's own attention. Axes a case ignores (``context`` for
    training, ``form`` outside MLA decode, expert options outside MoE) do not multiply cases.
    """
    axes = {k: (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in grid.items() if v is not None}
    layers = [a.attention if layer == "attn" else layer for layer in axes.pop("layers", applicable_layers(a))]
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
        return phase == "decode" and layer in ("mla", "gqa")
    if axis == "seq":
        return phase != "decode"
    return True


def _fill_defaults(case: BenchCase) -> BenchCase:
    if case.phase != "decode" and not case.seq and not case.tokens_per_expert:
        case = replace(case, seq=4096)
    if case.phase == "decode" and case.layer in ("mla", "gqa") and not case.context:
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
