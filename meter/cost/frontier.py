"""The throughput-interactivity frontier: output tokens/s per GPU against tokens/s per user over a
concurrency sweep, for a layout (aggregated, or disaggregated prefill and decode pools), with the
bound beside every point and what a point costs.

A point at concurrency ``c`` (requests in flight in the whole system):

- **decode** carries ``c / decode GPUs`` sequences a GPU (fewer if the KV cache holds fewer; the
  rest queue) at the mean context ``isl + osl / 2``; its step time comes from
  :mod:`meter.cost.serving_step`. With MTP, a step verifies ``1 + drafts`` tokens a sequence and
  accepts ``1 + a + a^2 + ...`` of them (``a`` the acceptance of each draft position).
- **prefill** runs chunks of up to ``prefill_token_budget`` tokens a replica (several prompts a
  step, or a part of one); the computed prompt is ``isl x (1 - cache hit rate)``.
- **aggregated** (one pool does both): in one request's lifetime the replica decodes ``osl /
  accepted`` steps and prefills the ``c`` prompts that turn over meanwhile, during which decode
  waits: ``E = osl / accepted x t_decode + c x t_prefill_per_prompt``. Output tokens/s per GPU
  = ``c x osl / E / GPUs``; TTFT = one decode step (the one running) + the prefill of the prompts
  arriving together; TPOT = ``(E - TTFT) / (osl - 1)`` as a benchmark measures it.
- **disaggregated**: decode makes ``c x accepted / t_decode`` tokens/s unless the prefill pool's
  prompts/s x osl is less; TPOT = ``t_decode / accepted``; TTFT = the prefill plus any queue.

The bound takes each step at its roofline (:func:`meter.cost.serving_step.step_bound_s`), the KV
cache in the smallest format an engine keeps on that GPU (fp8; NVFP4 where the GPU has fp4), the
experts of a multi-node decode pool spread over all its GPUs (one wide EP instance), every draft accepted, prefill at its most efficient
batch, and in the aggregated case the longer of decode and prefill rather than their sum (an
engine may mix them in one step): a ceiling no measured point should pass.

Dollars: a GPU-hour price split between input and output by the share of GPU time each phase
takes (aggregated) or by pool (disaggregated); joules from the power per GPU given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kernels.args import ModelArgs
from meter.config.deployments import Deployment, Pool
from meter.config.hardware import HardwareSpec
from meter.cost.layout import fitted_batch, memory
from meter.cost.serving_step import Efficiencies, StepWork, step_bound_s, step_time, step_work
from meter.errors import UsageError

BOUND_PREFILL_TOKENS = 65536  # prefill's bound takes a batch this large: its weights read as rarely as can be
DEFAULT_CONCURRENCIES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class ParallelShape:
    """One pool's parallelism: tensor parallel ``tp``; ``ep`` expert parallel; attention-DP runs
    attention data-parallel over the ``tp`` GPUs (tp 1, dp tp) with the experts over ``ep``."""

    tp: int
    ep: int = 1
    dp_attention: bool = False

    def pool(self, base: Pool, context: int, comm_overlap: float = 0.0, domain: int | None = None) -> Pool:
        """The pool of this shape; ``domain``: GPUs one NVLink domain joins (8 a node; 72 an NVL72 rack)."""
        ep = self.ep
        if self.dp_attention:
            # attention data-parallel with the MoE tensor-parallel (ep 1) moves the bytes of EP over
            # the same GPUs: each reads 1/tp of every expert hit, as EP reads 1/tp of the experts
            ep = self.ep if self.ep > 1 else self.tp
            tp, dp = 1, max(self.tp, ep)
        else:
            tp, dp = self.tp, max(1, self.ep // self.tp)
        return dataclasses.replace(
            base,
            tp=tp,
            dp=dp,
            ep=ep,
            context=context,
            batch_per_gpu=None,
            redundant_experts=0,
            routed_experts_per_gpu=None,
            shared_experts_per_gpu=None,
            comm_overlap=comm_overlap,
            gpus_per_node=domain or base.gpus_per_node,
        )

    @property
    def gpus(self) -> int:
        return max(self.tp, self.ep)

    @property
    def label(self) -> str:
        return f"TP{self.tp}" + (f" EP{self.ep}" if self.ep > 1 else "") + (" DPA" if self.dp_attention else "")


@dataclass(frozen=True)
class ServingLayout:
    """Aggregated (``prefill_gpus == 0``: the decode shape does both) or disaggregated."""

    decode: ParallelShape
    decode_gpus: int = 0  # 0: one replica of the decode shape
    prefill: ParallelShape | None = None
    prefill_gpus: int = 0

    @property
    def aggregated(self) -> bool:
        return self.prefill_gpus == 0

    @property
    def n_decode_gpus(self) -> int:
        return self.decode_gpus or self.decode.gpus

    @property
    def gpus(self) -> int:
        return self.n_decode_gpus + self.prefill_gpus

    @property
    def prefill_shape(self) -> ParallelShape:
        return self.prefill or self.decode

    @property
    def label(self) -> str:
        if self.aggregated:
            return self.decode.label + (f" x{self.n_decode_gpus // self.decode.gpus}" if self.decode_gpus else "")
        return f"disagg {self.prefill_gpus}P {self.prefill_shape.label} : {self.n_decode_gpus}D {self.decode.label}"


@dataclass(frozen=True)
class Workload:
    isl: int
    osl: int
    cache_hit_rate: float = 0.0  # share of prompt tokens served from a prefix cache

    @property
    def computed_prompt(self) -> int:
        return max(1, round(self.isl * (1 - self.cache_hit_rate)))

    @property
    def decode_context(self) -> int:
        return self.isl + self.osl // 2


@dataclass(frozen=True)
class EngineSettings:
    """What the engine does beside the deployment's precisions: MTP (draft tokens a step and the
    acceptance of each draft position; DeepSeek-V3's report: 85-90% for its one MTP module), the
    chunked-prefill token budget a step (SGLang's and vLLM's default chunk is 8,192), and how much of
    the communication it hides behind compute (none by default; DeepSeek's two micro-batches hide
    it all)."""

    mtp_draft_tokens: int = 0
    mtp_acceptance: float = 0.7
    prefill_token_budget: int = 8192
    comm_overlap: float = 0.0  # share of the shorter of links and compute hidden (two-batch overlap: up to 1)

    def accepted_tokens(self, acceptance: float | None = None) -> float:
        a = self.mtp_acceptance if acceptance is None else acceptance
        return 1.0 + sum(a**i for i in range(1, self.mtp_draft_tokens + 1))


@dataclass(frozen=True)
class Prices:
    usd_per_gpu_hour: float | None = None
    power_per_gpu_w: float | None = None
    usd_per_gpu_hour_p10: float | None = None  # the price's range (providers, a --price range)
    usd_per_gpu_hour_p90: float | None = None

    def band(self, usd: float | None) -> tuple[float | None, float | None]:
        """P10 and P90 of a cost proportional to the price, given its central value."""
        if usd is None or self.usd_per_gpu_hour is None or self.usd_per_gpu_hour_p10 is None:
            return None, None
        return (
            usd * self.usd_per_gpu_hour_p10 / self.usd_per_gpu_hour,
            usd * self.usd_per_gpu_hour_p90 / self.usd_per_gpu_hour,
        )


@dataclass(frozen=True)
class PointWork:
    """Everything about a point that does not depend on the efficiencies: timed many times in a fit."""

    layout: ServingLayout
    workload: Workload
    engine: EngineSettings
    concurrency: int
    hardware: str  # the GPU's config name
    decode_batch_per_gpu: float  # on a busy decode GPU
    running: float  # sequences decoding in the whole system; the rest of the concurrency queues
    running_bound: float  # the most that could decode: the cache in the bound's dtype, no runtime reserve
    decode: StepWork
    prefill: StepWork
    prefill_prompts_per_step: float  # a replica's prompts a prefill step
    decode_bound_s: float
    prefill_bound_s_per_prompt: float  # of a prefill replica


@dataclass(frozen=True)
class FrontierPoint:
    concurrency: int
    layout: str
    gpus: int
    decode_batch_per_gpu: float
    output_tokens_per_s_per_gpu: float
    total_tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    ttft_s: float
    tpot_s: float
    output_tokens_per_s_per_gpu_bound: float
    tokens_per_s_per_user_bound: float
    usd_per_m_output_tokens: float | None
    usd_per_m_input_tokens: float | None
    joules_per_output_token: float | None
    usd_per_m_output_tokens_p10: float | None  # over the price's range
    usd_per_m_output_tokens_p90: float | None
    decode_step_s: float
    prefill_share: float  # of the GPU time (aggregated) or the GPUs (disaggregated)


def point_work(
    a: ModelArgs,
    hw: HardwareSpec,
    d: Deployment,
    layout: ServingLayout,
    workload: Workload,
    engine: EngineSettings,
    concurrency: int,
    *,
    check_memory: bool = True,
) -> PointWork:
    """The decode and prefill steps of a point, with their bounds. Raises UsageError (from the
    memory check) when not even one sequence's KV cache fits beside the weights; a measured point
    (``check_memory=False``) ran, so where not even one fits in meter's memory model it is taken at
    its concurrency instead."""
    drafts = engine.mtp_draft_tokens
    domain = hw.scale_up_domain_gpus
    dpool = layout.decode.pool(d.decode, workload.decode_context, engine.comm_overlap, domain)
    dd = dataclasses.replace(d, decode=dpool)
    replicas = max(1, layout.n_decode_gpus // layout.decode.gpus)
    # below one sequence a replica, the busy replicas carry one each and the rest idle
    wanted = max(concurrency / replicas, 1.0) / layout.decode.gpus
    batch = _fitting(a, hw, dd, dpool, wanted, check_memory)
    running = min(concurrency, batch * layout.n_decode_gpus)
    decode = step_work(a, hw, dd, dpool, "decode", batch, query_tokens=1 + drafts, draft_layers=drafts)
    # the bound: the smallest cache the GPU allows, and experts spread over every decode GPU (an
    # engine may run one wide EP instance over several nodes, which holds fewer experts a GPU)
    lean = dataclasses.replace(dd, kv_cache="fp4" if hw.peak_flops("fp4") else "fp8")
    wide = dpool
    if a.is_moe and dpool.ep > 1 and layout.n_decode_gpus > dpool.ep:
        ep = layout.n_decode_gpus
        wide = dataclasses.replace(dpool, ep=ep, dp=ep // dpool.tp, redundant_experts=-a.n_routed_experts % ep)
    # the bound's batch: as many as the smallest cache and all of HBM hold (an engine may keep more
    # than the prediction's deployment assumes)
    roomy = dataclasses.replace(lean, reserved_memory_ratio=0.0)
    bound_batch = _fitting(a, hw, roomy, dpool, wanted, check_memory)
    running_bound = min(concurrency, bound_batch * layout.n_decode_gpus)
    # whichever of the pool as laid out and the wide instance is faster at its roofline (the wide
    # one holds fewer experts a GPU but may send more over the network)
    shapes = [(dpool, bound_batch)] + ([(wide, running_bound / wide.gpus)] if wide is not dpool else [])
    decode_bound = min(
        step_bound_s(
            step_work(a, hw, lean, p, "decode", b, query_tokens=1 + drafts, draft_layers=drafts, roofline=True)
        )
        for p, b in shapes
    )

    shape = layout.prefill_shape
    prompt = workload.computed_prompt
    ppool = shape.pool(d.prefill, prompt, engine.comm_overlap, domain)
    per_replica = concurrency if layout.aggregated else concurrency / max(1, layout.prefill_gpus // shape.gpus)
    prompts = max(min(per_replica, engine.prefill_token_budget / prompt), engine.prefill_token_budget / prompt / 8)
    prompts = min(prompts, max(per_replica, 1.0))
    prefill = step_work(a, hw, dataclasses.replace(d, prefill=ppool), ppool, "prefill", prompts / shape.gpus)
    big = max(1.0, BOUND_PREFILL_TOKENS / prompt)
    pre_bound = step_work(
        a, hw, dataclasses.replace(lean, prefill=ppool), ppool, "prefill", big / shape.gpus, roofline=True
    )
    return PointWork(
        layout,
        workload,
        engine,
        concurrency,
        hw.name,
        batch,
        running,
        running_bound,
        decode,
        prefill,
        prompts,
        decode_bound,
        step_bound_s(pre_bound) / big,
    )


def _fitting(a: ModelArgs, hw: HardwareSpec, d: Deployment, pool: Pool, wanted: float, strict: bool) -> float:
    """The decode batch a GPU carries: ``wanted`` if the memory holds it, else as many as it holds
    (the rest queue)."""
    if memory(a, hw, d, pool, "decode", wanted).fits:
        return wanted
    try:
        return min(wanted, fitted_batch(a, d.model or "the model", hw, d, "decode"))
    except UsageError:
        if strict:
            raise
        return wanted


def time_point(
    w: PointWork, e: Efficiencies, prices: Prices = Prices(), acceptance: float | None = None
) -> FrontierPoint:
    """The point's throughput, latencies and cost under efficiencies ``e``, and its bound."""
    lay, wl, c = w.layout, w.workload, w.concurrency
    accepted = w.engine.accepted_tokens(acceptance)
    accepted_bound = 1.0 + w.engine.mtp_draft_tokens
    t_d = step_time(w.decode, e).predicted_s
    t_pre = step_time(w.prefill, e).predicted_s
    t_p1 = t_pre / w.prefill_prompts_per_step  # replica seconds a prompt
    running = w.running
    steps = wl.osl / accepted
    if lay.aggregated:
        cycle = steps * t_d + c * t_p1
        ttft = t_d + t_pre
        queue = cycle * (c / running - 1) if running < c else 0.0
        ttft += queue
        out_rate = c * wl.osl / (cycle + queue)
        tpot = max((cycle - t_d - t_pre) / max(wl.osl - 1, 1), t_d / accepted)
        prefill_share = min(1.0, c * t_p1 / cycle)
        cycle_bound = max(wl.osl / accepted_bound * w.decode_bound_s, c * w.prefill_bound_s_per_prompt)
        out_bound = c * wl.osl / cycle_bound / lay.gpus
    else:
        replicas = max(1, lay.prefill_gpus // lay.prefill_shape.gpus)
        prefill_prompts_per_s = replicas / t_p1
        decode_rate = running * accepted / t_d
        out_rate = min(decode_rate, prefill_prompts_per_s * wl.osl)
        tpot = t_d / accepted
        cycle = c * wl.osl / out_rate
        ttft = t_pre + max(0.0, cycle - steps * t_d - t_pre)
        prefill_share = lay.prefill_gpus / lay.gpus
        out_bound = (
            min(w.running_bound * accepted_bound / w.decode_bound_s, replicas / w.prefill_bound_s_per_prompt * wl.osl)
            / lay.gpus
        )
    out_per_gpu = min(out_rate / lay.gpus, out_bound)
    user = 1.0 / tpot
    user_bound = accepted_bound / w.decode_bound_s
    in_per_gpu = out_per_gpu * wl.isl / wl.osl
    price, power = prices.usd_per_gpu_hour, prices.power_per_gpu_w
    usd_out = price / 3600 * (1 - prefill_share) / out_per_gpu * 1e6 if price is not None else None
    usd_in = price / 3600 * prefill_share / in_per_gpu * 1e6 if price is not None else None
    return FrontierPoint(
        concurrency=c,
        layout=lay.label,
        gpus=lay.gpus,
        decode_batch_per_gpu=w.decode_batch_per_gpu,
        output_tokens_per_s_per_gpu=out_per_gpu,
        total_tokens_per_s_per_gpu=out_per_gpu + in_per_gpu,
        tokens_per_s_per_user=min(user, user_bound),
        ttft_s=ttft,
        tpot_s=tpot,
        output_tokens_per_s_per_gpu_bound=out_bound,
        tokens_per_s_per_user_bound=user_bound,
        usd_per_m_output_tokens=usd_out,
        usd_per_m_input_tokens=usd_in,
        joules_per_output_token=power / out_per_gpu if power is not None else None,
        usd_per_m_output_tokens_p10=prices.band(usd_out)[0],
        usd_per_m_output_tokens_p90=prices.band(usd_out)[1],
        decode_step_s=t_d,
        prefill_share=prefill_share,
    )


@dataclass(frozen=True)
class Target:
    """A latency target: the cheapest point meeting every one given."""

    tpot_s: float | None = None
    ttft_s: float | None = None
    min_tokens_per_s_per_user: float | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.tpot_s, self.ttft_s, self.min_tokens_per_s_per_user))

    def met(self, p: FrontierPoint) -> bool:
        return (
            (self.tpot_s is None or p.tpot_s <= self.tpot_s)
            and (self.ttft_s is None or p.ttft_s <= self.ttft_s)
            and (self.min_tokens_per_s_per_user is None or p.tokens_per_s_per_user >= self.min_tokens_per_s_per_user)
        )


def cheapest(points: Iterable[FrontierPoint], target: Target) -> FrontierPoint | None:
    """The point with the most output tokens/s per GPU (the cheapest output token) that meets the target."""
    ok = [p for p in points if target.met(p)]
    return max(ok, key=lambda p: p.output_tokens_per_s_per_gpu) if ok else None


def sweep(
    a: ModelArgs,
    hw: HardwareSpec,
    d: Deployment,
    layouts: Sequence[ServingLayout],
    workload: Workload,
    engine: EngineSettings,
    e: Efficiencies,
    prices: Prices = Prices(),
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
) -> tuple[list[FrontierPoint], list[str]]:
    """Every layout that fits at every concurrency; notes say which layouts do not fit at all.
    Concurrencies past what a layout's KV cache holds add only queueing and are left out."""
    points, notes = [], []
    for layout in layouts:
        for c in concurrencies:
            scaled = c * max(1, layout.n_decode_gpus // layout.decode.gpus)
            try:
                w = point_work(a, hw, d, layout, workload, engine, scaled)
            except UsageError as exc:
                notes.append(f"{layout.label}: {str(exc).split(':', 1)[-1].strip()}")
                break
            if w.decode_batch_per_gpu * layout.n_decode_gpus < scaled:
                break
            points.append(time_point(w, e, prices))
    return points, notes


def search_layouts(a: ModelArgs, hw: HardwareSpec, gpus_per_node: int = 8) -> list[ServingLayout]:
    """Layouts ``--search`` tries on nodes of ``gpus_per_node``: one node as TP, TP with EP, and
    attention-DP with EP; two nodes the same; and disaggregated pools (one prefill node to 1, 2
    or 3 decode nodes)."""
    out = []
    for nodes in (1, 2):
        g = gpus_per_node * nodes
        shapes = [ParallelShape(g)]
        if a.is_moe:
            shapes += [ParallelShape(g, g), ParallelShape(g, g, True)]
        out += [ServingLayout(s) for s in shapes if a.n_heads % s.tp == 0]
    if a.is_moe:
        pre = ParallelShape(gpus_per_node, gpus_per_node)
        for ratio in (1, 2, 3):
            dec = ParallelShape(gpus_per_node, gpus_per_node, True)
            out.append(ServingLayout(dec, decode_gpus=gpus_per_node * ratio, prefill=pre, prefill_gpus=gpus_per_node))
    return out
