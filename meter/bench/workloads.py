"""Build a benchmark case on a device: the layer, rotated random inputs, and one call to time.

Inputs are random (never zeros: zeros can run faster and hide wrong indexing). Several input sets
are rotated through so that small inputs do not sit in L2 between calls; decode caches are filled
with random values. FLOPs and bytes per call come from the analytic model, not from the run.

A workload can be built on the meta device for a memory plan (:mod:`meter.bench.memory_plan`):
``target`` is then the device the plan is for, and every backend is chosen as it would be there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from kernels.args import ModelArgs
from meter.analytic import flops as F
from meter.analytic import memory as M
from meter.analytic.params import attention_params, expert_params, router_params, swiglu_params
from meter.bench.cases import parse_fused_plan
from meter.device.select import ComputeDevice
from meter.results.cases import BenchCase
from meter.results.records import CaseDetails

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}
ROTATION_TARGET_BYTES = 2 * 64 * 2**20  # rotate inputs until they span twice a large (64 MiB) L2
MAX_INPUT_SETS = 8
HOST_SYNC = "the per-expert loop reads each expert's row count on the host (a device sync)"


class UnsupportedCase(Exception):
    """This case cannot run here (a dtype, a form or a device feature); the sweep records why."""


class InsufficientMemory(Exception):
    """The case would not fit: estimated before allocating, so a CPU run is not killed by the OS."""


@dataclass
class WorkloadPart:
    """A part of the layer timed on its own, e.g. the expert GEMMs on pre-sorted (pre-quantised) rows."""

    name: str
    precision: str  # the GEMMs' precision: fp8, bf16, fp16, fp32
    step: Callable[[int], None]
    flops_per_call: float


@dataclass
class Workload:
    case: BenchCase
    step: Callable[[int], None]  # one call on input set i
    n_inputs: int
    flops_per_call: float  # useful FLOPs (analytic; causal attention counts half)
    bytes_per_call: float  # memory traffic (analytic): the minimum, or what an MLA decode form moves
    tokens_per_call: int
    module: torch.nn.Module
    inputs: list[torch.Tensor] = field(default_factory=list)  # the rotated input sets
    notes: list[str] = field(default_factory=list)
    details: CaseDetails = field(default_factory=CaseDetails)
    replay: Callable[[], None] | None = None  # a captured CUDA graph of step(0), when there is one
    graph_unsafe: str | None = None  # why step must never be captured in a CUDA graph (it syncs with the host)
    parts: list[WorkloadPart] = field(default_factory=list)


def estimate_memory_bytes(case: BenchCase, a: ModelArgs) -> float:
    """A generous analytic estimate (weights, gradients, activations, caches, a materialised score
    matrix): only the fall-back for cases whose peak cannot be measured on the meta device."""
    b = DTYPE_BYTES[case.dtype]
    train = case.phase == "train"
    t = case.tokens(a)
    if case.layer == "moe":
        n_local = a.n_routed_experts // case.ep
        weights = (router_params(a) + (a.n_shared_experts + n_local) * expert_params(a)) * b
        rows = t * a.n_activated_experts
        acts = rows * (2 * a.dim + 3 * a.moe_inter_dim) * b + t * (2 * a.dim + 3 * a.moe_inter_dim) * b
    elif case.layer == "ffn":
        weights = swiglu_params(a.dim, a.inter_dim) * b
        acts = t * (2 * a.dim + 3 * a.inter_dim) * b
    else:
        weights = attention_params(a) * b
        heads = a.n_heads
        if case.phase == "decode":
            ctx = case.context
            cache = case.batch * ctx * M.kv_cache_elements_per_token_per_layer(a) * b
            if a.attention == "mla" and case.form == "naive":
                cache += case.batch * ctx * heads * (a.qk_head_dim + a.v_head_dim) * b * 2
            scores = case.batch * heads * ctx * 4 * 3
            acts = cache + scores
        else:
            per_token = heads * (2 * a.qk_head_dim + a.attn_v_head_dim) + a.dim * 2
            acts = t * per_token * b * 3
            acts += case.batch * heads * case.seq * case.seq * 4 * 2  # a score matrix, if SDPA falls back to math
        if case.layer == "dsa":  # the indexer's per-head scores over every (query, key) pair
            s = a.sparse_attention
            assert s is not None
            q_len, kv_len = (1, case.context) if case.phase == "decode" else (case.seq, case.seq)
            acts += case.batch * q_len * kv_len * (s.index_n_heads + 1) * b * 2
    factor = 3.0 if train else 1.0  # weights + grads + optimizer-free temporaries
    return 1.25 * (weights * factor + acts * (2.5 if train else 1.2))


def build_workload(
    case: BenchCase,
    a: ModelArgs,
    device: ComputeDevice,
    *,
    seed: int = 0,
    free_bytes: int | None = None,
    target: ComputeDevice | None = None,
) -> Workload:
    """Instantiate the layer and inputs of ``case`` on ``device``; raises UnsupportedCase.

    ``target`` (default: ``device``) is the device whose kernels are chosen: the GPU a memory plan
    on the meta device is for.
    """
    target = target or device
    _check_supported(case, a, target)
    torch.manual_seed(seed)
    dev, dtype = torch.device(device.torch_device), TORCH_DTYPES[case.dtype]
    builder = {"moe": _moe, "ffn": _ffn, "mla": _attention, "gqa": _attention, "dsa": _dsa}[case.layer]
    return builder(case, a, dev, dtype, free_bytes, target)


def _check_supported(case: BenchCase, a: ModelArgs, target: ComputeDevice) -> None:
    if case.layer == "moe" and not a.is_moe:
        raise UnsupportedCase(f"model {case.model} has no MoE layers")
    if case.layer == "ffn" and not a.n_ffn_dense_layers:
        raise UnsupportedCase(f"model {case.model} has no dense FFN layers")
    if case.layer == "dsa" and a.sparse_attention is None:
        raise UnsupportedCase(f"model {case.model} has no sparse attention (DSA is DeepSeek-V3.2's)")
    if case.layer in ("mla", "gqa") and case.layer != a.attention:
        raise UnsupportedCase(f"model {case.model} uses {a.attention.upper()} attention, not {case.layer.upper()}")
    if case.layer == "moe" and a.n_routed_experts % case.ep:
        raise UnsupportedCase(f"ep {case.ep} does not divide {a.n_routed_experts} routed experts")
    if case.fp8:
        if case.phase == "train":
            raise UnsupportedCase(
                "fp8 expert GEMMs run forward only (prefill, decode); fp8 training is not implemented"
            )
        reason = _fp8_problem(case.fp8, a, target)
        if reason:
            raise UnsupportedCase(reason)
    if case.layer == "mla" and case.phase == "decode" and case.form == "fused":
        _check_fused(target)
    if case.compile and not (case.layer == "mla" and case.phase == "decode"):
        raise UnsupportedCase("--compile applies to the MLA decode forms")
    if case.dtype == "fp16" and target.kind == "cpu":
        raise UnsupportedCase("fp16 matrix products are not a CPU benchmark (use fp32 or bf16)")
    if case.phase != "decode" and case.seq < 1 and not case.tokens_per_expert:
        raise UnsupportedCase("train and prefill need seq >= 1")


def _check_fused(target: ComputeDevice) -> None:
    from kernels.triton import fused_decode_unavailable

    if target.kind != "cuda":
        # Triton's interpreter would run it here, far too slowly to mean anything as a timing.
        raise UnsupportedCase("the fused MLA decode kernel needs a CUDA GPU; the CPU bench does not interpret it")
    if not target.present:
        return  # a plan for a GPU not at hand: its image is assumed to carry the triton extra
    reason = fused_decode_unavailable("cuda")
    if reason:
        raise UnsupportedCase(reason)


def _fp8_problem(recipe: str, a: ModelArgs, target: ComputeDevice) -> str | None:
    from kernels.fp8 import fp8_support

    dims = (a.dim, 2 * a.moe_inter_dim, a.moe_inter_dim)
    if not target.present:  # planning for a GPU that is not here: judge by its hardware config
        capability = target.capability
        if capability is not None and capability < (8, 9):
            return "fp8 tensor cores need compute capability 8.9 or newer"
        if recipe == "blockwise" and capability not in (None, (9, 0)):
            return "DeepSeek's 1x128/128x128 blockwise fp8 GEMM is implemented for sm90 (Hopper) only"
        return fp8_support(torch.device("meta"), recipe, dims)  # type: ignore[arg-type]
    return fp8_support(torch.device(target.torch_device), recipe, dims)  # type: ignore[arg-type]


def _n_inputs(bytes_per_set: float, free_bytes: int | None) -> int:
    n = max(1, min(MAX_INPUT_SETS, math.ceil(ROTATION_TARGET_BYTES / max(bytes_per_set, 1))))
    if free_bytes is not None:
        n = max(1, min(n, int(0.1 * free_bytes // max(bytes_per_set, 1))))
    return n


def _randn(shape, dev, dtype, requires_grad=False) -> torch.Tensor:
    return torch.randn(shape, device=dev, dtype=dtype).requires_grad_(requires_grad)


def _step_for(module: Callable, inputs: list[torch.Tensor], grads: list[torch.Tensor] | None) -> Callable[[int], None]:
    """A call on input set i: forward only (inference mode), or forward + backward with a fixed dy.

    A training call starts from no gradients, as a training step does after the optimiser's
    ``zero_grad``: otherwise every call after the first adds a ``+=`` over every gradient.
    """
    if grads is None:

        def step(i: int) -> None:
            with torch.inference_mode():
                module(inputs[i % len(inputs)])
    else:
        assert isinstance(module, torch.nn.Module)

        def step(i: int) -> None:
            j = i % len(inputs)
            module.zero_grad(set_to_none=True)
            inputs[j].grad = None
            module(inputs[j]).backward(grads[j])

    return step


def _moe(case: BenchCase, a: ModelArgs, dev, dtype, free_bytes, target: ComputeDevice) -> Workload:
    from kernels.moe import MoE, Routing

    tokens = case.tokens(a)
    n_local = a.n_routed_experts // case.ep
    layer = MoE(a, routing=Routing(case.routing, case.skew), n_local_experts=n_local, dtype=dtype, device=dev)
    notes: list[str] = []
    train = case.phase == "train"
    layer.train(train)
    if not train:
        layer.requires_grad_(False)
    set_bytes = tokens * a.dim * DTYPE_BYTES[case.dtype] * (2 if train else 1)
    n = _n_inputs(set_bytes, free_bytes)
    inputs = [_randn((tokens, a.dim), dev, dtype, requires_grad=train) for _ in range(n)]
    grads = [_randn((tokens, a.dim), dev, dtype) for _ in range(n)] if train else None
    backend, why = _expert_backend(layer, dtype, target)
    if case.fp8:
        from kernels.fp8 import Fp8Experts

        layer.experts = Fp8Experts(layer.experts, case.fp8)
        backend, why = layer.experts.backend, layer.experts.fallback_reason
        notes.append(f"expert GEMMs in fp8 ({case.fp8} scales); router and shared expert in {case.dtype}")
    if why:
        notes.append(f"expert GEMMs: {backend} ({why})")
    fwd = F.moe_layer_flops(a, tokens=tokens)
    traffic = M.moe_layer_bytes(
        a,
        tokens=tokens,
        weight_bytes=DTYPE_BYTES[case.dtype],
        act_bytes=DTYPE_BYTES[case.dtype],
        n_local_experts=n_local,
        fp8=case.fp8,
    )
    if case.ep > 1:
        notes.append(
            f"EP{case.ep} slice: {n_local} local experts get the {tokens}x{a.n_activated_experts} rows "
            f"one GPU receives; dispatch/combine communication not included"
        )
    graph_unsafe = None
    if "per expert" in backend or backend == "loop":
        graph_unsafe = HOST_SYNC
    elif case.routing == "skew":
        graph_unsafe = "skewed routing draws from its own random generator, which a CUDA graph would freeze"
    return Workload(
        case=case,
        step=_step_for(layer, inputs, grads),
        n_inputs=n,
        flops_per_call=fwd * (F.TRAIN_MULTIPLIER if train else 1),
        bytes_per_call=traffic * (3 if train else 1),
        tokens_per_call=tokens,
        module=layer,
        inputs=inputs,
        notes=notes,
        details=CaseDetails(
            local_experts=n_local,
            rows_per_expert=tokens * a.n_activated_experts / n_local,
            expert_gemm="fp8-" + case.fp8 if case.fp8 else backend,
            backend=backend,
            fallback_reason=why,
        ),
        graph_unsafe=graph_unsafe,
        parts=[] if train else [_expert_gemm_part(layer, inputs[0], case)],
    )


def _expert_backend(layer, dtype, target: ComputeDevice) -> tuple[str, str | None]:
    """The grouped-GEMM backend as the target device chooses it, set on the layer so that what
    runs is what is recorded (and so that a layer built on the meta device for a plan takes the
    backend of the GPU it stands in for)."""
    from kernels.grouped import choose_backend

    experts = layer.experts
    dims = (experts.w13.shape[2], experts.w13.shape[1], experts.w2.shape[2])  # D, 2F, F
    backend, why = choose_backend(target.kind, dtype, target.capability, dims)
    if backend == "grouped_mm" and target.kind == "cuda" and target.present:
        from kernels.ops import probe_ops

        probe = probe_ops(target.torch_device)
        if not probe.ok("grouped_mm_bf16"):
            backend, why = "loop", f"grouped_mm failed its probe: {probe.reason('grouped_mm_bf16')}"
    experts.backend = backend
    return backend, why


def _expert_gemm_part(layer, x_TD: torch.Tensor, case: BenchCase) -> WorkloadPart:
    """The routed experts' two GEMMs alone, on rows already routed and sorted (and, for fp8,
    already quantised): what the layer's grouped GEMM does without the gate, the sort, the
    quantisation and the scatter around it."""
    experts = layer.experts
    with torch.inference_mode():
        _, chosen = layer.gate(x_TD)
        if layer.n_local != layer.args.n_routed_experts:
            chosen = chosen % layer.n_local
        order = torch.argsort(chosen.flatten(), stable=True)
        rows = x_TD.detach()[order // chosen.shape[1]]
        counts = torch.histc(chosen.flatten().float(), bins=layer.n_local, min=0, max=layer.n_local).to(torch.int32)
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
    n_rows, hidden = rows.shape[0], layer.args.moe_inter_dim
    flops = 2.0 * n_rows * (rows.shape[1] * 2 * hidden + hidden * rows.shape[1])
    if case.fp8:
        with torch.inference_mode():
            x_q, x_s = experts.quantize(rows)
            h = experts.gemm(x_q, x_s, "w13", offsets)
            gate, up = h.split(hidden, dim=-1)
            a_q, a_s = experts.quantize(torch.nn.functional.silu(gate) * up)

        def step(i: int) -> None:
            with torch.inference_mode():
                experts.gemm(x_q, x_s, "w13", offsets)
                experts.gemm(a_q, a_s, "w2", offsets)

        return WorkloadPart("expert GEMMs on pre-quantised inputs", "fp8", step, flops)

    def step(i: int) -> None:
        with torch.inference_mode():
            experts(rows, counts)

    return WorkloadPart("expert GEMMs on pre-sorted rows (SwiGLU between)", case.dtype, step, flops)


def _ffn(case: BenchCase, a: ModelArgs, dev, dtype, free_bytes, target: ComputeDevice) -> Workload:
    from kernels.dense import SwiGLU

    tokens = case.tokens(a)
    layer = SwiGLU(a.dim, a.inter_dim, dtype=dtype, device=dev)
    train = case.phase == "train"
    if not train:
        layer.requires_grad_(False)
    n = _n_inputs(tokens * a.dim * DTYPE_BYTES[case.dtype], free_bytes)
    inputs = [_randn((tokens, a.dim), dev, dtype, requires_grad=train) for _ in range(n)]
    grads = [_randn((tokens, a.dim), dev, dtype) for _ in range(n)] if train else None
    fwd = F.dense_ffn_layer_flops(a, tokens=tokens)
    traffic = M.ffn_layer_bytes(a, tokens=tokens, dtype_bytes=DTYPE_BYTES[case.dtype])
    return Workload(
        case=case,
        step=_step_for(layer, inputs, grads),
        n_inputs=n,
        flops_per_call=fwd * (F.TRAIN_MULTIPLIER if train else 1),
        bytes_per_call=traffic * (3 if train else 1),
        tokens_per_call=tokens,
        module=layer,
        inputs=inputs,
        details=CaseDetails(backend="torch.mm (dense SwiGLU)"),
    )


def _attention(case: BenchCase, a: ModelArgs, dev, dtype, free_bytes, target: ComputeDevice) -> Workload:
    if case.phase == "decode":
        return _attention_decode(case, a, dev, dtype, free_bytes, target)
    from kernels.dense import GQAttention
    from kernels.mla import MLA

    cls = MLA if a.attention == "mla" else GQAttention
    layer = cls(a, max_seq_len=case.seq, dtype=dtype, device=dev)
    train = case.phase == "train"
    if not train:
        layer.requires_grad_(False)
    shape = (case.batch, case.seq, a.dim)
    n = _n_inputs(case.batch * case.seq * a.dim * DTYPE_BYTES[case.dtype], free_bytes)
    inputs = [_randn(shape, dev, dtype, requires_grad=train) for _ in range(n)]
    grads = [_randn(shape, dev, dtype) for _ in range(n)] if train else None
    fwd = F.attention_layer_flops(a, batch=case.batch, q_len=case.seq, pairs="causal")
    traffic = M.attention_layer_bytes(a, batch=case.batch, q_len=case.seq, dtype_bytes=DTYPE_BYTES[case.dtype])
    from meter.bench.sdpa import sdpa_backend

    v_dim = a.attn_v_head_dim
    backend = sdpa_backend(target, dtype, a.qk_head_dim, v_dim, causal=True, grad=train)
    return Workload(
        case=case,
        step=_step_for(layer, inputs, grads),
        n_inputs=n,
        flops_per_call=fwd * (F.TRAIN_MULTIPLIER if train else 1),
        bytes_per_call=traffic * (3 if train else 1),
        tokens_per_call=case.batch * case.seq,
        module=layer,
        inputs=inputs,
        notes=["FLOPs count causal attention as half the sequence (Megatron/DeepSeek)"],
        details=CaseDetails(backend=f"sdpa-{backend}"),
    )


def _attention_decode(case: BenchCase, a: ModelArgs, dev, dtype, free_bytes, target: ComputeDevice) -> Workload:
    """One new token per sequence at position context-1, against a cache filled with random values."""
    from meter.bench.sdpa import sdpa_backend

    pos = case.context - 1
    details: dict[str, Any] = {}
    if a.attention == "mla":
        from kernels.mla import MLA, LatentKVCache

        layer = MLA(a, max_seq_len=case.context, dtype=dtype, device=dev).requires_grad_(False)
        cache = LatentKVCache(case.batch, case.context, a, dtype, device=dev)
        form = case.form
        plan = _fused_plan(case, a, dev) if form == "fused" else None
        backend = {
            "absorbed": "einsum (absorbed, eager)",
            "fused": "triton (fused split-KV decode)",
        }.get(form) or "sdpa-" + sdpa_backend(target, dtype, a.qk_head_dim, a.v_head_dim, causal=False, grad=False)
        if case.compile:
            backend = backend.replace("eager", "torch.compile") if "eager" in backend else backend + " + torch.compile"

        def call(x: torch.Tensor) -> torch.Tensor:
            return layer.decode(x, cache, pos, form, plan)

        if case.compile:
            call = torch.compile(call)
        traffic = M.mla_decode_traffic(
            a,
            batch=case.batch,
            context=case.context,
            form=form,
            dtype_bytes=DTYPE_BYTES[case.dtype],
            splits=plan.num_splits if plan else 1,
        )
        details.update(
            bytes_minimum=traffic.minimum,
            bytes_ratio_to_minimum=traffic.ratio_to_minimum,
        )
        if case.compile:  # inductor fuses some elementwise passes; the eager count bounds it from above
            details["bytes_model"] = "eager kernel sequence (an upper bound under torch.compile)"
        if plan:
            details.update(block_h=plan.block_h, block_n=plan.block_n, num_splits=plan.num_splits)
        bytes_per_call = traffic.total
    else:
        from kernels.dense import GQAttention, KVCache

        layer = GQAttention(a, max_seq_len=case.context, dtype=dtype, device=dev).requires_grad_(False)
        cache = KVCache(case.batch, case.context, a.n_kv_heads, a.head_dim, dtype, device=dev)
        form = "naive"
        backend = "sdpa-" + sdpa_backend(target, dtype, a.head_dim, a.head_dim, causal=False, grad=False)

        def call(x: torch.Tensor) -> torch.Tensor:
            return layer.decode(x, cache, pos)

        bytes_per_call = M.attention_layer_bytes(
            a, batch=case.batch, q_len=1, kv_len=case.context, dtype_bytes=DTYPE_BYTES[case.dtype], cached=True
        )

    for buf in cache.buffers():
        if buf.is_floating_point():
            buf.normal_()
    n = _n_inputs(case.batch * a.dim * DTYPE_BYTES[case.dtype], free_bytes)
    inputs = [_randn((case.batch, 1, a.dim), dev, dtype) for _ in range(n)]
    flops_form = "absorbed" if form == "fused" else form  # the same products, in one kernel
    fwd = F.attention_layer_flops(a, batch=case.batch, q_len=1, kv_len=case.context, pairs="full", form=flops_form)
    notes = ["the cache (larger than L2) is read every step; inputs rotated"]
    if a.attention == "mla":
        notes.append(
            f"bytes: what the {form} form moves (analytic), {details['bytes_ratio_to_minimum']:.2f}x the minimum"
        )
    cache_bytes = sum(b.numel() * b.element_size() for b in cache.buffers() if b.is_floating_point())
    return Workload(
        case=case,
        step=_step_for(call, inputs, None),
        n_inputs=n,
        flops_per_call=fwd,
        bytes_per_call=bytes_per_call,
        tokens_per_call=case.batch,
        module=layer,
        inputs=inputs,
        notes=notes,
        details=CaseDetails(cache_bytes=cache_bytes, backend=backend, **details),
    )


def _dsa(case: BenchCase, a: ModelArgs, dev, dtype, free_bytes, target: ComputeDevice) -> Workload:
    """DeepSeek-V3.2's sparse MLA (``kernels.dsa``): prefill of ``seq`` tokens, or one new token per
    sequence at position context-1 against random caches. FLOPs and bytes are counted as for MLA:
    prefill's useful causal work (the triangle), decode's work against the whole cache."""
    from kernels.dsa import IndexerKeyCache, SparseMLA
    from kernels.mla import LatentKVCache
    from meter.analytic import sparse_attention as S

    if case.phase == "train":
        raise UnsupportedCase(
            "the dsa workload runs inference (prefill, decode); the indexer's training loss is not modelled"
        )
    s = a.sparse_attention
    assert s is not None
    nbytes = DTYPE_BYTES[case.dtype]
    notes = [
        f"indexer scores in {case.dtype} (DeepSeek's run in fp8 with block scales); top-{s.index_topk} gathered per query",
    ]
    if case.phase == "decode":
        q_len, kv_len = 1, case.context
        layer = SparseMLA(a, max_seq_len=case.context, dtype=dtype, device=dev).requires_grad_(False)
        cache = LatentKVCache(case.batch, case.context, a, dtype, device=dev)
        keys = IndexerKeyCache(case.batch, case.context, a, dtype, device=dev)
        for buf in (*cache.buffers(), *keys.buffers()):
            if buf.is_floating_point():
                buf.normal_()
        pos = case.context - 1

        def call(x: torch.Tensor) -> torch.Tensor:
            return layer.decode(x, cache, keys, pos)

        pairs: S.LayerPairs = "full"
        shape = (case.batch, 1, a.dim)
        cache_bytes = sum(
            t.numel() * t.element_size() for t in (*cache.buffers(), *keys.buffers()) if t.is_floating_point()
        )
        notes.append("the caches are read every step; inputs rotated")
    else:
        q_len = kv_len = case.seq
        layer = SparseMLA(a, max_seq_len=case.seq, dtype=dtype, device=dev).requires_grad_(False)
        call = layer
        pairs = "causal"
        shape = (case.batch, case.seq, a.dim)
        cache_bytes = None
        notes.append("FLOPs count the useful causal work; the kernel scores every pair and masks the future")
    n = _n_inputs(math.prod(shape) * nbytes, free_bytes)
    inputs = [_randn(shape, dev, dtype) for _ in range(n)]
    return Workload(
        case=case,
        step=_step_for(call, inputs, None),
        n_inputs=n,
        flops_per_call=S.dsa_layer_flops(a, batch=case.batch, q_len=q_len, kv_len=kv_len, pairs=pairs),
        bytes_per_call=S.dsa_layer_bytes(a, batch=case.batch, q_len=q_len, kv_len=kv_len, dtype_bytes=nbytes),
        tokens_per_call=case.batch * q_len,
        module=layer,
        inputs=inputs,
        notes=notes,
        details=CaseDetails(cache_bytes=cache_bytes, backend="einsum (indexer, gathered top-k, absorbed MLA)"),
    )


def _fused_plan(case: BenchCase, a: ModelArgs, dev: torch.device):
    """The fused kernel's launch plan: the rule of kernels.triton.plan, with the case's overrides."""
    from kernels.triton.plan import DEFAULT_SMS, plan_decode

    overrides = parse_fused_plan(case.fused_plan) if case.fused_plan else {}
    sms = torch.cuda.get_device_properties(dev).multi_processor_count if dev.type == "cuda" else DEFAULT_SMS
    return plan_decode(
        batch=case.batch,
        rows=a.n_heads,
        max_context=case.context,
        latent_dim=a.kv_lora_rank,
        num_sms=sms,
        **overrides,
    )


def capture_cuda_graph(workload: Workload) -> str | None:
    """Capture ``step(0)`` of a decode workload into a CUDA graph; returns why not, or None.

    A step that syncs with the host is never captured: capture aborts inside ``torch.cuda.graph``
    and can leave later cases on the wrong stream or memory pool. Such steps are known ahead
    (``graph_unsafe``); the warm-up before capture also runs with torch's sync debug mode set to
    raise, so a sync nobody declared stops the capture before it starts.
    """
    if workload.case.phase != "decode":
        return "CUDA graphs are used for decode only"
    if workload.graph_unsafe:
        return f"not captured in a CUDA graph: {workload.graph_unsafe}; timed eagerly"
    previous = torch.cuda.get_sync_debug_mode()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    try:
        torch.cuda.set_sync_debug_mode("error")
        with torch.cuda.stream(side):
            for _ in range(3):
                workload.step(0)
    except RuntimeError as exc:
        torch.cuda.synchronize()
        return f"not captured in a CUDA graph: the step syncs with the host ({str(exc).splitlines()[0][:120]}); timed eagerly"
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            workload.step(0)
        torch.cuda.synchronize()
    except Exception as exc:  # capture refuses some ops; time eagerly then
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        return f"CUDA graph capture failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); timed eagerly"
    workload.replay = graph.replay
    return None
