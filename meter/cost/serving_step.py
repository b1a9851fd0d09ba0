"""The time of one serving step (decode or prefill) on one GPU: predicted, with its bound beside it.

A step is a list of :class:`Op` (per GPU, per step): the GEMMs (attention projections, dense FFN,
shared and routed experts at their tokens per expert, the output head), the attention core (MLA or
GQA: the KV cache read at the context, and its FLOPs), the elementwise work (norms, RoPE, residual,
activation), and the links (TP all-reduce, EP dispatch and combine). The FLOPs and bytes come from
:mod:`meter.cost.layout` (the same counts as the deployment bound), so the prediction and the
bound are one workload timed two ways:

- **bound**: every op at its roofline (FLOPs at the dense peak of its precision, bytes at the HBM
  bandwidth), the elementwise work left out (an engine may fuse it away), the links fully hidden
  behind the compute (the step takes the longer of the two), no per-step overhead;
- **prediction**: each op through an efficiency that depends on its size (:class:`Efficiencies`):
  a GEMM of ``M`` rows reaches ``gemm_compute x M / (M + gemm_rows_half)`` of its peak, a kernel
  moving ``x`` bytes ``memory x x / (x + launch_bytes_half)`` of the bandwidth, an attention
  kernel at context ``c`` ``attention_memory x c / (c + context_half)``; each collective pays a
  latency; the links are exposed (less ``comm_overlap`` of the shorter side); each layer and each
  step pay an overhead (launches, scheduling, sampling).

As every efficiency is at most 1 and every added term is positive, a prediction never exceeds its
bound. Nothing here reads a file: the caller loads the model, hardware and deployment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from kernels.args import ModelArgs
from meter.config.deployments import Deployment, Pool
from meter.config.hardware import HardwareSpec
from meter.cost.layout import (
    ACT_BYTES,
    GB,
    communication,
    components,
    expert_group_tokens,
    peak_flops_per_s,
    routed_hit_share,
)

OpKind = Literal["gemm", "attention", "elementwise", "link"]

# GEMM launches a layer per component (MLA: q down/up, kv down, o; a SwiGLU FFN: gate-up, down)
_LAUNCHES = {"attention projections": 4, "dense FFN": 2, "shared experts": 2, "routed experts": 2}
# elementwise passes over a token's hidden state a layer: two norms, two residual adds, RoPE, the
# activation, each read and written
_ELEMENTWISE_PASSES = 12


@dataclass(frozen=True)
class Op:
    """One kind of work in a step on one GPU; ``size`` is what its efficiency depends on (a GEMM's
    rows, an attention kernel's context, a collective's bytes)."""

    name: str
    kind: OpKind
    flops: float
    bytes: float
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    size: float
    launches: float  # kernels or collectives a step
    in_bound: bool = True

    @property
    def bound_s(self) -> float:
        compute = self.flops / self.peak_flops_per_s if self.flops else 0.0
        return max(compute, self.bytes / self.bandwidth_bytes_per_s)


@dataclass(frozen=True)
class StepWork:
    """One step's work on one GPU, independent of any efficiency (computed once, timed many times)."""

    phase: str
    ops: tuple[Op, ...]
    tokens_per_gpu: float  # tokens the GPU runs through the model this step (decode: batch x (1 + drafts))
    n_layers: int
    comm_overlap: float


@dataclass(frozen=True)
class Efficiencies:
    """The free parameters of the step model, with where they came from.

    Defaults come from DeepSeek's published kernel records on H800 (kernels.md): DeepGEMM reaches
    1550 of 1979 fp8 TFLOPS (0.78) and 2668 of 3350 GB/s on M=64 decode shapes (0.80), 1688 GB/s
    on its smallest (0.50, which puts half efficiency near 9 MB a kernel); FlashMLA 3000 of 3350
    GB/s memory-bound (0.90) and 660 of 990 TFLOPS compute-bound (0.67); DeepEP's intranode
    normal kernels 153 of the 160 GB/s DeepSeek counts usable (0.96, of which 0.8 is kept for
    NCCL's all-reduce, which moves twice the bytes). The latencies and overheads are assumptions
    (a one-node NCCL all-reduce of a few KB takes about 10 us; CUDA-graph decode with about 15
    launches a layer at 2 us; a scheduler and sampler pass of 1 ms), to be replaced by a fit
    (:mod:`meter.cost.serving_fit`) or by meter's own op table (not yet wired: ``meter bench`` at
    the frontier's shapes would fill these per device).
    """

    gemm_compute: float = 0.78
    gemm_rows_half: float = 64.0
    memory: float = 0.80
    launch_bytes_half: float = 9e6
    attention_memory: float = 0.90
    attention_compute: float = 0.67
    context_half: float = 256.0
    link: float = 0.80
    link_latency_s: float = 10e-6
    layer_overhead_s: float = 30e-6
    step_overhead_s: float = 1e-3
    source: str = field(default="published kernel records (FlashMLA, DeepGEMM, DeepEP on H800; kernels.md)")

    def with_values(self, source: str, **values: float) -> Efficiencies:
        return dataclasses.replace(self, source=source, **values)


DEFAULTS = Efficiencies()


def _curve(top: float, x: float, half: float) -> float:
    return top * x / (x + half) if x > 0 else top


def op_time_s(op: Op, e: Efficiencies) -> float:
    """Predicted seconds of one op: its roofline through its size-dependent efficiency."""
    if op.kind == "link":
        return op.launches * e.link_latency_s + op.bytes / (op.bandwidth_bytes_per_s * e.link)
    per_launch = op.bytes / max(op.launches, 1.0)
    if op.kind == "attention":
        compute = op.flops / (op.peak_flops_per_s * e.attention_compute)
        memory = op.bytes / (op.bandwidth_bytes_per_s * _curve(e.attention_memory, op.size, e.context_half))
        return max(compute, memory)
    memory = op.bytes / (op.bandwidth_bytes_per_s * _curve(e.memory, per_launch, e.launch_bytes_half))
    if op.kind == "elementwise" or not op.flops:
        return memory
    compute = op.flops / (op.peak_flops_per_s * _curve(e.gemm_compute, op.size, e.gemm_rows_half))
    return max(compute, memory)


@dataclass(frozen=True)
class StepTime:
    """Seconds of one step: predicted and bound."""

    compute_s: float
    link_s: float
    overhead_s: float
    predicted_s: float
    bound_s: float


def step_time(w: StepWork, e: Efficiencies) -> StepTime:
    compute = sum(op_time_s(op, e) for op in w.ops if op.kind != "link")
    link = sum(op_time_s(op, e) for op in w.ops if op.kind == "link")
    exposed = link - w.comm_overlap * min(link, compute)
    overhead = w.n_layers * e.layer_overhead_s + e.step_overhead_s
    return StepTime(compute, link, overhead, compute + exposed + overhead, step_bound_s(w))


def step_bound_s(w: StepWork) -> float:
    """The roofline step: only the unavoidable work at peak, the links hidden behind it."""
    compute = sum(op.bound_s for op in w.ops if op.kind != "link" and op.in_bound)
    link = sum(op.bound_s for op in w.ops if op.kind == "link")
    return max(compute, link)


def step_work(
    a: ModelArgs,
    hw: HardwareSpec,
    d: Deployment,
    pool: Pool,
    phase: str,
    batch: float,
    *,
    query_tokens: int = 1,
    draft_layers: int = 0,
    roofline: bool = False,
) -> StepWork:
    """The work of one step on one GPU of ``pool`` carrying ``batch`` sequences (averaged over its
    TP group). With ``roofline`` the attention core counts at the widest peak the GPU has (an engine
    may run it in fp8), for a bound that no engine beats. Decode runs ``query_tokens`` per sequence (1 + MTP drafts verified at once) reading
    the cache once; prefill runs ``batch x pool.context`` prompt tokens. ``draft_layers`` extra
    layers run (MTP's draft modules), each costing one layer's share of the step."""
    run_batch = batch * query_tokens if phase == "decode" else batch
    parts = components(a, hw, d, pool, phase, run_batch)
    tokens = run_batch if phase == "decode" else batch * pool.context
    group = tokens * pool.tp  # rows a TP rank's GEMM runs: the whole group's tokens
    scale = 1.0 + draft_layers / a.n_layers
    ops = []
    for c in parts:
        flops, nbytes, size, kind = c.flops, c.bytes, group, "gemm"
        launches = _LAUNCHES.get(c.name, 1) * _layers(a, c.name)
        peak = c.peak_flops_per_s
        if c.name == "attention core":
            kind, size = "attention", float(pool.context)
            if roofline:
                peak = max(peak, peak_flops_per_s(hw, "fp8"))
            if phase == "decode":
                nbytes = c.bytes / query_tokens  # the drafts read the same cache in one pass
        elif c.name == "routed experts" and a.is_moe:
            hit = routed_hit_share(a, pool, tokens)
            slots = a.n_routed_experts + pool.redundant_experts
            size = expert_group_tokens(pool, tokens) * a.n_activated_experts / (slots * max(hit, 1e-12))
        elif c.name == "router and norms":
            kind = "elementwise"
        ops.append(Op(c.name, kind, flops * scale, nbytes * scale, peak, c.bandwidth_bytes_per_s, size, launches))
    elementwise = _ELEMENTWISE_PASSES * a.n_layers * group * a.dim * ACT_BYTES * scale
    ops.append(
        Op(
            "elementwise",
            "elementwise",
            0.0,
            elementwise,
            1.0,
            hw.memory_bandwidth_bytes_per_s,
            group,
            a.n_layers,
            False,
        )
    )
    ops.extend(_links(a, hw, d, pool, tokens, scale))
    return StepWork(phase, tuple(ops), tokens, a.n_layers + draft_layers, pool.comm_overlap)


def _layers(a: ModelArgs, name: str) -> int:
    if name in ("shared experts", "routed experts"):
        return a.n_moe_layers
    if name == "dense FFN":
        return a.n_ffn_dense_layers
    if name == "output head":
        return 1
    return a.n_layers


def _links(a: ModelArgs, hw: HardwareSpec, d: Deployment, pool: Pool, tokens: float, scale: float) -> list[Op]:
    """TP all-reduces and EP all-to-alls as link ops, their bytes at the bandwidth the bound uses."""
    c = communication(a, hw, d, pool, tokens, 0.0)
    nvlink = hw.nvlink_bandwidth_gb_s * GB / 2 if hw.nvlink_bandwidth_gb_s else 1.0
    out = []
    if c.tp_s:
        # a TP group wider than a node all-reduces over the network, not NVLink
        across = pool.tp > pool.gpus_per_node and hw.network_bandwidth_gb_s
        link = hw.network_bandwidth_gb_s * GB if across else nvlink
        out.append(Op("TP all-reduce", "link", 0.0, c.tp_s * nvlink * scale, 0.0, link, 0.0, 2 * a.n_layers))
    if c.ep_s:
        out.append(
            Op("EP dispatch and combine", "link", 0.0, c.ep_s * nvlink * scale, 0.0, nvlink, 0.0, 2 * a.n_moe_layers)
        )
    return out
