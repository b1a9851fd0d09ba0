"""The bound of a serving deployment: what one GPU holds, and what one step of it moves and computes.

For each pool (prefill, decode) and per GPU:

- **memory**: the weights it holds (attention, dense FFN and embedding/head sharded over ``tp``;
  its ``(routed + redundant) / ep`` routed experts; the shared experts, router and norms), the KV
  cache of its sequences at the context, the largest activations of one layer, and the share of
  HBM the runtime keeps (``reserved_memory_ratio``). A layout that does not fit is refused.
- **one step**, by component (attention projections, attention core, dense FFN, router, shared
  experts, routed experts, output head): FLOPs from :mod:`meter.analytic.flops`, and the least
  traffic, each weight it touches read once (routed experts only as many as the step's tokens are
  expected to hit) and the KV cache read at the context. A component takes the longer of its FLOPs
  at the dense peak of its precision and its bytes at the HBM bandwidth (the roofline), and the
  components run one after another.
- **communication**: EP dispatch (in the deployment's precision) and combine (bf16) over the
  links (:mod:`meter.cost.ep_comm`), and two tensor-parallel all-reduces a layer over NVLink; the
  step hides ``comm_overlap`` of whichever of compute and communication is shorter.

The bound in tokens/s per GPU is the tokens a GPU completes per step (decode: its batch; prefill:
batch x prompt) over the step time. It is a bound: every kernel at its roof, no scheduling gaps,
load perfectly balanced over the experts (which is what DeepSeek's redundant experts are for).
An efficiency (given, or measured by a run for each regime) scales it to a throughput.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from kernels.args import ModelArgs
from meter.analytic import flops as F
from meter.analytic import sparse_attention as S
from meter.analytic.comm import PAYLOAD_BYTES, tp_allreduce_bytes_per_gpu
from meter.analytic.memory import kv_cache_elements_per_token_per_layer
from meter.analytic.params import count_params, expert_params
from meter.config.deployments import Deployment, Pool
from meter.config.hardware import HardwareSpec
from meter.cost.ep_comm import EpShape, all_to_all_legs
from meter.errors import UsageError

# Bytes a weight takes: fp8 with one fp32 scale per 128 x 128 block (DeepSeek-V3's format).
# fp4 is NVFP4: one fp8 scale per 16 values (NVIDIA's Blackwell format; MXFP4's one per 32 is close).
WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0 + 4.0 / (128 * 128), "fp4": 0.5 + 1.0 / 16}
KV_BYTES = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5 + 1.0 / 16}  # fp4: NVFP4 KV cache (TensorRT-LLM, Blackwell)
# MLA's fp8 cache with scales (FlashMLA): the latent in fp8 with one fp32 scale per 128 values,
# the RoPE part in bf16; 656 bytes a token and layer for DeepSeek-V3 (kernels.md).
FP8_MLA = "fp8_mla"
ACT_BYTES = 2.0  # activations in bf16
LOGIT_BYTES = 4.0  # logits in fp32
GB = 1e9


@dataclass(frozen=True)
class Component:
    """One kind of work in a step on one GPU."""

    name: str
    flops: float
    bytes: float
    dtype: str  # the precision its products run in
    peak_flops_per_s: float
    bandwidth_bytes_per_s: float

    @property
    def compute_s(self) -> float:
        return self.flops / self.peak_flops_per_s

    @property
    def memory_s(self) -> float:
        return self.bytes / self.bandwidth_bytes_per_s

    @property
    def time_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def regime(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flops": self.flops,
            "bytes": self.bytes,
            "dtype": self.dtype,
            "intensity_flop_per_byte": self.flops / self.bytes if self.bytes else None,
            "ridge_flop_per_byte": self.peak_flops_per_s / self.bandwidth_bytes_per_s,
            "regime": self.regime,
            "time_s": self.time_s,
        }


@dataclass(frozen=True)
class Memory:
    """What one GPU holds, against what it has."""

    weights_bytes: float
    kv_cache_bytes: float
    activations_bytes: float
    reserved_bytes: float
    capacity_bytes: float

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.kv_cache_bytes + self.activations_bytes + self.reserved_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    def as_dict(self) -> dict[str, float]:
        return {
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "activations_bytes": self.activations_bytes,
            "reserved_bytes": self.reserved_bytes,
            "capacity_bytes": self.capacity_bytes,
        }


@dataclass(frozen=True)
class Communication:
    """Seconds of one step's communication on one GPU, and how much of it the compute hides."""

    ep_network_s: float
    ep_nvlink_s: float
    ep_s: float  # each all-to-all takes its slower leg (the legs run at once)
    tp_s: float
    hidden_s: float

    @property
    def total_s(self) -> float:
        return self.ep_s + self.tp_s

    @property
    def exposed_s(self) -> float:
        return self.total_s - self.hidden_s

    def as_dict(self) -> dict[str, float]:
        out = dataclasses.asdict(self)
        out.update(total_s=self.total_s, exposed_s=self.exposed_s)
        return out


@dataclass(frozen=True)
class PhaseBound:
    """One pool's step on one GPU: its shape, memory, components and communication, and the bound."""

    phase: str
    pool: Pool  # batch_per_gpu resolved
    tokens_per_step: float  # tokens one GPU completes per step
    memory: Memory
    components: tuple[Component, ...]
    comm: Communication

    @property
    def compute_s(self) -> float:
        return sum(c.time_s for c in self.components)

    @property
    def step_s(self) -> float:
        return self.compute_s + self.comm.exposed_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_step / self.step_s

    def regime_s(self, regime: str) -> float:
        return sum(c.time_s for c in self.components if c.regime == regime)

    def efficiency(self, compute_efficiency: Any, memory_efficiency: Any) -> Any:
        """The share of the bound reached when compute-bound work runs at ``compute_efficiency`` of
        its roof and memory-bound work at ``memory_efficiency`` (floats or sample arrays); the
        exposed communication stays as the links allow."""
        actual = (
            self.regime_s("compute") / compute_efficiency
            + self.regime_s("memory") / memory_efficiency
            + self.comm.exposed_s
        )
        return self.step_s / actual

    def as_dict(self) -> dict[str, Any]:
        p = self.pool
        return {
            "gpus": p.gpus,
            "tp": p.tp,
            "dp": p.dp,
            "ep": p.ep,
            "redundant_experts": p.redundant_experts,
            "batch_per_gpu": p.batch_per_gpu,
            "context": p.context,
            "tokens_per_step_per_gpu": self.tokens_per_step,
            "memory_per_gpu_bytes": self.memory.total_bytes,
            "memory": self.memory.as_dict(),
            "components": [c.as_dict() for c in self.components],
            "compute_s": self.compute_s,
            "comm": self.comm.as_dict(),
            "step_s": self.step_s,
            "bound_tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
        }


@dataclass(frozen=True)
class DeploymentBound:
    deployment: Deployment  # with every override applied
    model: str
    hardware: str
    prefill: PhaseBound
    decode: PhaseBound

    def phase(self, name: str) -> PhaseBound:
        return self.prefill if name == "prefill" else self.decode


# --- what a GPU holds ---------------------------------------------------------------------------


def held_params(a: ModelArgs, pool: Pool) -> dict[str, float]:
    """Weights (a count, not bytes) one GPU holds, by kind. Experts split over ``ep`` GPUs, or,
    without expert parallelism, over the tensor-parallel group like every other matrix."""
    p = count_params(a)
    expert_shards = pool.ep if pool.ep > 1 else pool.tp
    slots = a.n_routed_experts + pool.redundant_experts
    return {
        "attention": p.attention / pool.tp,
        "dense_ffn": p.dense_ffn / pool.tp,
        "router": p.router,
        "norms": p.norms,
        "shared_experts": p.shared_experts / pool.tp,
        "routed_experts": a.n_moe_layers * slots * expert_params(a) / expert_shards,
        "embedding": p.embedding / pool.tp,
        "head": p.output_head / pool.tp,
    }


def held_weight_bytes(a: ModelArgs, pool: Pool, d: Deployment) -> dict[str, float]:
    dtypes = dataclasses.asdict(d.weights)
    return {k: n * WEIGHT_BYTES[dtypes.get(k, "bf16")] for k, n in held_params(a, pool).items()}


def kv_bytes_per_token(a: ModelArgs, pool: Pool, dtype: str) -> float:
    """KV cache bytes one GPU keeps per token of its sequences: MLA's latent is needed whole by
    every tensor-parallel rank; GQA's KV heads split over them (or repeat, past one head each)."""
    if a.is_sparse:  # DeepSeek-V3.2 / V4: entries, indexer keys, V4's window spread over the context
        return S.kv_cache_bytes_per_token(a, pool.context, sparse_kv_value_bytes(dtype))
    if a.attention == "mla" and dtype == FP8_MLA:
        return a.n_layers * (a.kv_lora_rank * (1 + 4 / 128) + a.qk_rope_head_dim * 2)
    if a.attention == "mla":
        elems = kv_cache_elements_per_token_per_layer(a)
    else:
        elems = 2 * max(1, a.n_kv_heads // pool.tp) * a.head_dim
    return a.n_layers * elems * KV_BYTES.get(dtype, 1.0)  # fp8_mla on GQA: plain fp8


def sparse_kv_value_bytes(dtype: str) -> float:
    """Bytes a value of a sparse/compressed model's cache (1: the model's own fp8 entry format, with
    its scales, from its config); a cache dtype this table lacks is taken as fp8's format."""
    return KV_BYTES.get(dtype, 1.0)


def activation_bytes(a: ModelArgs, pool: Pool, tokens: float, logit_rows: float) -> float:
    """The largest live tensors of one layer for ``tokens`` tokens on the GPU: the residual stream
    and three hidden-size buffers, the MLP's gate and up outputs, the tokens an EP dispatch
    brings in, and the logits of the rows that reach the head."""
    widths = [a.inter_dim if a.n_ffn_dense_layers else 0]
    if a.is_moe:
        widths.append(a.moe_inter_dim * (a.n_shared_experts + a.n_activated_experts))
    per_token = ACT_BYTES * (4 * a.dim + 2 * max(widths) / pool.tp)
    received = tokens * a.n_activated_experts * a.dim * ACT_BYTES if a.is_moe and pool.ep > 1 else 0.0
    return tokens * per_token + received + logit_rows * a.vocab_size / pool.tp * LOGIT_BYTES


def memory(a: ModelArgs, hw: HardwareSpec, d: Deployment, pool: Pool, phase: str, batch: float) -> Memory:
    group_sequences = batch * pool.tp  # a TP group's GPUs all keep its sequences' (sharded) KV cache
    tokens = group_sequences * (pool.context if phase == "prefill" else 1)
    capacity = hw.memory_gb * GB
    return Memory(
        weights_bytes=sum(held_weight_bytes(a, pool, d).values()),
        kv_cache_bytes=group_sequences * pool.context * kv_bytes_per_token(a, pool, d.kv_cache),
        activations_bytes=activation_bytes(a, pool, tokens, group_sequences),
        reserved_bytes=d.reserved_memory_ratio * capacity,
        capacity_bytes=capacity,
    )


def _gb(x: float) -> str:
    return f"{x / 1e12:.3g} TB" if x >= 1e12 else f"{x / GB:.3g} GB"


def refuse(d: Deployment, phase: str, model: str, hw: HardwareSpec, m: Memory, batch: float) -> UsageError:
    pool = d.pool(phase)
    return UsageError(
        f"deployment '{d.name}' does not fit: its {phase} pool ({pool.gpus} x {hw.name}, tp {pool.tp}, ep {pool.ep}) "
        f"needs {_gb(m.total_bytes)} per GPU for {model} (weights {_gb(m.weights_bytes)} in "
        f"{d.weights.describe()}, KV cache {_gb(m.kv_cache_bytes)} for {batch:g} x {pool.context:,} tokens, "
        f"activations {_gb(m.activations_bytes)}, runtime reserve {_gb(m.reserved_bytes)}) but a GPU has "
        f"{_gb(m.capacity_bytes)}: {_gb(m.total_bytes - m.capacity_bytes)} short"
    )


def fitted_batch(a: ModelArgs, model: str, hw: HardwareSpec, d: Deployment, phase: str) -> float:
    """The pool's batch per GPU (sequences, averaged over a TP group, so it may be a fraction):
    the given one if it fits, else as many as the memory holds. A prefill pool whose given batch
    does not fit prefills in chunks: the share of a batch that fits (chunked prefill), not a refusal
    of the whole deployment."""
    pool = d.pool(phase)
    empty, one = memory(a, hw, d, pool, phase, 0), memory(a, hw, d, pool, phase, 1)
    per_sequence = one.total_bytes - empty.total_bytes
    room = (empty.capacity_bytes - empty.total_bytes) / per_sequence
    if pool.batch_per_gpu is not None:
        m = memory(a, hw, d, pool, phase, pool.batch_per_gpu)
        if m.fits:
            return pool.batch_per_gpu
        if phase == "prefill" and room > 0:
            return room
        raise refuse(d, phase, model, hw, m, pool.batch_per_gpu)
    batch = math.floor(room)
    if batch < 1:
        if phase == "prefill" and room > 0:
            return room
        raise refuse(d, phase, model, hw, one, 1)
    return batch


# --- one step ----------------------------------------------------------------------------------


def peak_flops_per_s(hw: HardwareSpec, dtype: str) -> float:
    """The dense peak of ``dtype``; a GPU without one (fp8 on an A100, fp4 on a Hopper) multiplies
    in the next wider type it has."""
    for wider in _WIDER.get(dtype, (dtype, "bf16")):
        peak = hw.peak_flops(wider)
        if peak:
            return peak
    return 0.0


_WIDER = {"fp4": ("fp4", "fp8", "bf16"), "fp8": ("fp8", "bf16")}


def expert_group_tokens(pool: Pool, tokens_per_gpu: float) -> float:
    """Tokens that reach one GPU's experts in a step: those of the GPUs its experts serve, which are
    the EP group (``ep`` GPUs) or, without expert parallelism, the TP group sharing each expert.
    ``tokens_per_gpu`` is averaged over the group, so a TP8 group with 4 sequences has 0.5 a GPU."""
    return tokens_per_gpu * max(pool.ep, pool.tp)


def routed_hit_share(a: ModelArgs, pool: Pool, tokens_per_gpu: float) -> float:
    """Expected share of a GPU's routed-expert copies that a step's tokens hit: each of the tokens
    reaching the group (batch x ep, not batch x tp x ep) picks ``top_k`` of the ``routed +
    redundant`` copies, uniformly."""
    if not a.is_moe:
        return 0.0
    slots = a.n_routed_experts + pool.redundant_experts
    return 1.0 - (1.0 - a.n_activated_experts / slots) ** expert_group_tokens(pool, tokens_per_gpu)


def components(
    a: ModelArgs, hw: HardwareSpec, d: Deployment, pool: Pool, phase: str, batch: float
) -> tuple[Component, ...]:
    """Per-GPU FLOPs and bytes of one step, by kind of work; each GPU does 1/tp of its group's work."""
    if phase == "decode":
        per_token = F.decode_flops_per_token(a, pool.context, form="absorbed")
        tokens, group = float(batch), float(batch * pool.tp)
    else:
        per_token = F.prefill_flops_per_token(a, pool.context)
        tokens, group = float(batch * pool.context), float(batch * pool.context * pool.tp)
    kv = kv_bytes_per_token(a, pool, d.kv_cache)
    # decode reads the whole cache; prefill writes its prompt's and reads it back once
    kv_traffic = batch * pool.tp * (pool.context if phase == "decode" else 2 * pool.context) * kv
    indexer_traffic = 0.0
    if a.is_sparse:  # decode reads the indexer's keys and only the entries it selects
        core_bytes, indexer_bytes = S.step_cache_traffic(a, pool.context, phase, sparse_kv_value_bytes(d.kv_cache))
        kv_traffic, indexer_traffic = batch * pool.tp * core_bytes, batch * pool.tp * indexer_bytes
    held = held_weight_bytes(a, pool, d)
    w = d.weights
    bw = hw.memory_bandwidth_bytes_per_s
    rows = [
        ("attention projections", per_token.attention_gemm, held["attention"], w.attention),
        ("attention core", per_token.attention_core, kv_traffic, "bf16"),
        ("indexer", per_token.indexer, indexer_traffic, "fp8"),  # V3.2/V4: fp8 scores (DeepSeek's code)
        ("dense FFN", per_token.dense_ffn, held["dense_ffn"], w.dense_ffn),
        ("router and norms", per_token.router, held["router"] + held["norms"], w.router),
        ("shared experts", per_token.shared_experts, held["shared_experts"], w.shared_experts),
        (
            "routed experts",
            per_token.routed_experts,
            held["routed_experts"] * routed_hit_share(a, pool, tokens),
            w.routed_experts,
        ),
        ("output head", per_token.output_head, held["head"] + group * a.dim * WEIGHT_BYTES[w.embedding], w.head),
    ]
    return tuple(
        Component(name, tokens * flops, nbytes, dtype, peak_flops_per_s(hw, dtype), bw)
        for name, flops, nbytes, dtype in rows
        if flops > 0 or nbytes > 0
    )


def communication(
    a: ModelArgs, hw: HardwareSpec, d: Deployment, pool: Pool, tokens: float, compute_s: float
) -> Communication:
    """EP all-to-alls and TP all-reduces of one step on one GPU (``tokens``: the GPU's own)."""
    nvlink = hw.nvlink_bandwidth_gb_s * GB / 2 if hw.nvlink_bandwidth_gb_s else None  # quoted bidirectional
    network = hw.network_bandwidth_gb_s * GB if hw.network_bandwidth_gb_s else None
    ep_network = ep_nvlink = ep = tp = 0.0
    if a.is_moe and pool.ep > 1:
        x = {"ep_degree": pool.ep, "gpus_per_node": pool.gpus_per_node}
        x.update({k: v for k, v in (("nvlink_bytes_per_s", nvlink), ("network_bytes_per_s", network)) if v})
        if pool.max_nodes_per_token is not None:
            x["max_nodes_per_token"] = pool.max_nodes_per_token
        shape = EpShape(hidden=a.dim, top_k=a.n_activated_experts, n_moe_layers=a.n_moe_layers)
        try:
            legs = [all_to_all_legs(x, shape, PAYLOAD_BYTES[p]) for p in (d.dispatch, "bf16")]
        except ValueError:
            raise UsageError(
                f"hardware '{hw.name}' lacks the NVLink or network bandwidth the EP {pool.ep} layout's all-to-alls need"
            ) from None
        scale = tokens * a.n_moe_layers
        ep_network = scale * sum(float(n) for n, _ in legs)
        ep_nvlink = scale * sum(float(v) for _, v in legs)
        ep = scale * sum(max(float(n), float(v)) for n, v in legs)
    if pool.tp > 1:
        if nvlink is None:
            raise UsageError(f"hardware '{hw.name}' has no NVLink figure for the tp {pool.tp} all-reduces")
        per_layer = tp_allreduce_bytes_per_gpu(tokens=tokens * pool.tp, hidden=a.dim, tp=pool.tp, value_bytes=ACT_BYTES)
        tp = 2 * a.n_layers * per_layer / nvlink
    hidden = pool.comm_overlap * min(ep + tp, compute_s)
    return Communication(ep_network, ep_nvlink, ep, tp, hidden)


def phase_bound(a: ModelArgs, model: str, hw: HardwareSpec, d: Deployment, phase: str) -> PhaseBound:
    batch = fitted_batch(a, model, hw, d, phase)
    pool = dataclasses.replace(d.pool(phase), batch_per_gpu=batch)
    parts = components(a, hw, d, pool, phase, batch)
    tokens = float(batch if phase == "decode" else batch * pool.context)
    comm = communication(a, hw, d, pool, tokens, sum(c.time_s for c in parts))
    return PhaseBound(phase, pool, tokens, memory(a, hw, d, pool, phase, batch), parts, comm)


def deployment_bound(a: ModelArgs, model: str, hw: HardwareSpec, d: Deployment) -> DeploymentBound:
    """Both pools' bounds; a pool that does not fit is refused with the shortfall."""
    if hw.memory_gb is None or hw.memory_bandwidth_bytes_per_s is None or hw.kind != "gpu":
        raise UsageError(f"hardware '{hw.name}' has no HBM size or bandwidth; a serving bound needs a GPU config")
    d = dataclasses.replace(d, model=model)
    return DeploymentBound(
        d, model, hw.name, phase_bound(a, model, hw, d, "prefill"), phase_bound(a, model, hw, d, "decode")
    )
