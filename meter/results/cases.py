"""What was measured: a benchmark case and a communication case, as the run file names them.

These are the specs both sides of the run file share: the bench builds cases from grids and
suites, the cost model and reports read them back. Shapes: train/prefill run ``batch`` sequences
of ``seq`` tokens; decode runs ``batch`` sequences one new token each against ``context``
positions. An MoE case may instead be sized by ``tokens_per_expert`` (rows each local expert's
GEMM gets, on average).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kernels.args import Fp8Recipe, MlaDecodeForm, ModelArgs, RoutingMode
from meter.config.schema import ge, gt
from meter.domains import Phase

Layer = Literal["mla", "gqa", "moe", "ffn", "dsa"]  # dsa: DeepSeek-V3.2 sparse MLA
Dtype = Literal["bf16", "fp16", "fp32"]
Collective = Literal["dispatch", "combine", "all_reduce", "all_gather", "all_to_all"]
# fp8, bf16, fp32: meter's own collectives; the rest are types nccl-tests measures (meter import nccl-tests)
Payload = Literal["fp8", "bf16", "fp16", "fp32", "fp64", "int8", "uint8", "int32", "uint32", "int64", "uint64"]

LAYERS: tuple[str, ...] = Layer.__args__  # type: ignore[attr-defined]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]
ATTENTION_LAYERS = ("mla", "gqa", "dsa")  # layers whose decode reads a cache of ``context`` positions


@dataclass(frozen=True)
class BenchCase:
    """One measurement: one layer, one phase, one shape, one precision."""

    model: str
    layer: Layer
    phase: Phase
    batch: int = field(default=1, metadata=ge(1))
    seq: int = field(default=0, metadata=ge(0))
    context: int = field(default=0, metadata=ge(0))
    tokens_per_expert: int | None = field(default=None, metadata=gt(0))
    dtype: Dtype = "bf16"
    fp8: Fp8Recipe | None = None  # expert GEMMs in fp8 with these scales
    ep: int = field(default=1, metadata=ge(1))  # expert-parallel degree: this GPU holds n_routed_experts / ep
    routing: RoutingMode = "learned"
    skew: float = field(default=1.0, metadata=ge(0))  # Zipf exponent when routing == "skew"
    form: MlaDecodeForm = "absorbed"  # MLA decode form (fused: the Triton kernel)
    compile: bool = False  # torch.compile the eager MLA decode forms
    fused_plan: str | None = None  # the fused form's launch-rule overrides, e.g. "h64n32s2"

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
            parts.append(f"b{self.batch}" + (f"-ctx{self.context}" if self.layer in ATTENTION_LAYERS else ""))
        else:
            parts.append(f"b{self.batch}-s{self.seq}")
        parts.append(self.dtype + (f"+fp8-{self.fp8}" if self.fp8 else ""))
        if self.layer == "moe":
            if self.ep > 1:
                parts.append(f"ep{self.ep}")
            if self.routing != "learned":
                parts.append(self.routing + (f"{self.skew:g}" if self.routing == "skew" else ""))
        if self.layer == "mla" and self.phase == "decode":
            plan = f"-{self.fused_plan}" if self.fused_plan else ""
            parts.append(self.form + ("+compile" if self.compile else "") + plan)
        return ".".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CommCase:
    """One collective at one size; MoE dispatch and combine also carry the token shape that sized them."""

    collective: Collective
    bytes_per_rank: int = field(metadata=ge(0))  # the per-rank message (all_gather: each rank's share)
    payload: Payload = "bf16"
    tokens_per_rank: int | None = field(default=None, metadata=gt(0))
    hidden: int | None = field(default=None, metadata=gt(0))
    top_k: int | None = field(default=None, metadata=gt(0))

    @property
    def id(self) -> str:
        if self.tokens_per_rank:
            return f"{self.collective}.t{self.tokens_per_rank}-h{self.hidden}-k{self.top_k}.{self.payload}"
        return f"{self.collective}.{self.bytes_per_rank}B.{self.payload}"
