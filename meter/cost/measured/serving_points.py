"""Measured serving points (:class:`meter.engines.points.ServingPoint`) as observations of the step
model: each at its own layout, GPU count, lengths, precision, MTP and hardware. The caller reads
the file and resolves hardware names to configs; nothing here touches a file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from kernels.args import ModelArgs
from meter.config.deployments import Deployment
from meter.config.hardware import HardwareSpec
from meter.cost import frontier as F
from meter.cost.serving_fit import Observation
from meter.engines.points import ServingPoint
from meter.errors import UsageError

DEFAULT_POINT_DRAFTS = 3  # MTP draft tokens of a point that says only "mtp" (SGLang's and TRT-LLM's R1 recipes)


def layout_of(p: ServingPoint) -> F.ServingLayout:
    decode = F.ParallelShape(p.tp, max(p.ep, 1), p.dp_attention)
    if not p.disagg:
        return F.ServingLayout(decode)
    prefill = F.ParallelShape(p.prefill_tp or p.tp, max(p.prefill_ep or 1, 1), bool(p.prefill_dp_attention))
    return F.ServingLayout(decode, p.decode_gpus, prefill, p.prefill_gpus)


def observations(
    points: Iterable[ServingPoint],
    a: ModelArgs,
    base: Deployment,
    hardware_for: Callable[[str], HardwareSpec | None],
    *,
    source: str,
    framework: str | None = None,
    drafts: int = 0,
    prefill_token_budget: int = 8192,
    only_hardware: str | None = None,
) -> list[Observation]:
    """``only_hardware``: keep the points of that GPU; ``framework``: of that engine. A point marked
    ``mtp`` drafts ``drafts`` tokens, or :data:`DEFAULT_POINT_DRAFTS` when 0. Measured output
    tokens/s per GPU is over every GPU of the system. A point ran, so it is priced at its own
    concurrency even where meter's memory model would not fit it."""
    out = []
    for p in points:
        if framework and p.framework != framework:
            continue
        hw = hardware_for(p.hardware)
        if hw is None:
            raise UsageError(
                f"{source}: hardware {p.hardware!r}: no hardware config of that name (meter hardware lists them)"
            )
        if only_hardware is not None and hw.name != only_hardware:
            continue
        d = base
        if p.precision in ("fp8", "fp4", "bf16"):
            d = dataclasses.replace(base, weights=base.weights.with_linear(p.precision))
        engine = F.EngineSettings(
            mtp_draft_tokens=(drafts or DEFAULT_POINT_DRAFTS) if p.speculative else 0,
            prefill_token_budget=prefill_token_budget,
        )
        layout = layout_of(p)
        try:
            work = F.point_work(a, hw, d, layout, F.Workload(p.isl, p.osl), engine, p.conc, check_memory=False)
        except UsageError as exc:
            raise UsageError(f"{source}: the point {p.framework} {p.layout} at concurrency {p.conc}: {exc}") from None
        setup = f"{p.framework} {p.precision} {p.layout} {p.isl}/{p.osl}" + (" mtp" if p.speculative else "")
        out.append(Observation(setup, work, p.output_tok_s_gpu_system, p.tok_s_user, p.framework))
    if not out:
        raise UsageError(f"{source}: no point for this hardware and framework")
    return out
