"""A training cost estimate, as a straight pipeline: choose the method, gather its inputs, run the model.

1. the setting (:class:`TrainingSetting`, loaded at the edge by :mod:`meter.cost.configs`; nothing
   here reads a file): model, hardware, the peak the MFU is against (``mfu_dtype``);
2. the method (:mod:`meter.cost.methods`), from what was given: a run, an MFU or achieved FLOP/s
   on the command line, a compute-only MFU, or the scenario's end-to-end MFU;
3. the candidate inputs: the scenario's, the price, the run's measured efficiency and power, the
   analytic overheads, the EP links; the command line has the last word; the method keeps the
   ones it reads and a note says which it left out;
4. the Monte Carlo over :func:`meter.cost.training_formula.train_cost`, then the figures set beside it
   (reported ones, the MFU they imply, published training compute).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kernels.args import ModelArgs
from meter.analytic import flops as F
from meter.config.hardware import HardwareSpec
from meter.config.models import ModelConfig
from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario, Stage
from meter.cost import methods as M
from meter.cost.ep_comm import EpShape, MeasuredLinks
from meter.cost.inputs import Input, InputPool, couplings_for, set_price
from meter.cost.measured.run import MeasuredRun, PhaseRate
from meter.cost.montecarlo import Coupling, Summary, evaluate
from meter.cost.result import DEFAULT_SAMPLES, Comparison, CostEstimate, reproductions
from meter.cost.training_formula import StagePlan, TrainContext, train_cost
from meter.errors import UsageError


@dataclass(frozen=True)
class TrainingSetting:
    """The configs a training estimate reads, loaded at the edge (:mod:`meter.cost.configs`)."""

    model: ModelConfig
    hardware: HardwareSpec
    price: Input | None  # the price table's rental price, when the command line or scenario gives none
    models: tuple[ModelConfig, ...] = ()  # every model config: the published training-compute totals
    base: tuple[Scenario, TrainingSetting] | None = None  # the scenario this one builds on, with its setting
    tier: str | None = None


def estimate_train(
    scenario: Scenario,
    setting: TrainingSetting,
    *,
    overrides: Mapping[str, Quantity] = {},
    run: MeasuredRun | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    comm: MeasuredLinks | None = None,
    couplings: Iterable[Coupling] = (),
) -> CostEstimate:
    model, hw = setting.model, setting.hardware
    peak = mfu_peak(hw, scenario.mfu_dtype)
    measured = _train_rate(run, scenario, model, hw) if run is not None else None
    method = choose_method(scenario, overrides, measured)

    pool = InputPool.from_scenario(scenario)
    _other_hardware(pool, scenario, hw)
    set_price(pool, scenario, hw.name, setting.price, tier=setting.tier, overrides=overrides)
    plans = _stages(pool, scenario, model.args, peak, measured)
    if measured is not None:
        _measured_inputs(pool, run, measured, scenario, model.name, hw)
    if method.composed:
        _analytic_overheads(pool, scenario, model.args, head=measured is not None)
    pool.override(overrides)
    rate = _rate(pool, method, overrides, plans)
    ep = _ep_model(pool, model.args, hw, comm, set(overrides)) if method.composed else None
    pool.keep(method.reads(ep=ep is not None), method.why)

    ctx = TrainContext(
        stages=plans,
        peak_flops=peak,
        rate=rate,
        cluster_gpus=scenario.cluster_gpus,
        pretraining=next((st.name for st in scenario.stages if st.tokens is not None), None),
        ep=ep,
    )
    pairs = couplings_for(scenario, couplings, pool)
    outputs = evaluate(lambda x: train_cost(x, ctx), pool.quantities(), samples=samples, seed=seed, couplings=pairs)
    estimate = CostEstimate(scenario, method.name, pool.inputs, outputs, samples, seed, hw, model, run, pool.notes)
    _beside(estimate, peak, setting)
    return estimate


def mfu_peak(hw: HardwareSpec, dtype: str) -> float:
    peak = hw.peak_flops(dtype)
    if peak is None:
        what = (
            "training cost needs a GPU config"
            if hw.kind == "cpu"
            else f"give --mfu-dtype one of {', '.join(hw.peak_tflops)}"
        )
        raise UsageError(f"hardware '{hw.name}' has no dense {dtype} peak for the MFU; {what}")
    return peak


def choose_method(
    scenario: Scenario, overrides: Mapping[str, Quantity], measured: tuple[bool, PhaseRate] | None
) -> M.Method:
    """The costing method, from what was given (a run first, then the command line, then the scenario)."""
    if measured is not None:
        return M.RUN_DIRECT if measured[0] else M.RUN_TRANSFER
    if set(overrides) & set(M.END_TO_END.rate):
        return M.END_TO_END
    if "compute_mfu" in overrides or "compute_mfu" in scenario.assumptions:
        return M.COMPUTE_MFU
    return M.END_TO_END


def _token_seq(scenario: Scenario, st: Stage) -> int:
    return st.seq_len or scenario.seq_len


def _train_rate(run: MeasuredRun, scenario: Scenario, model: ModelConfig, hw: HardwareSpec) -> tuple[bool, PhaseRate]:
    """(direct?, the run's training projection): direct when it measured this model on this GPU."""
    stage = next((st for st in scenario.stages if st.tokens is not None), None)
    rate = run.pick("train", seq=_token_seq(scenario, stage) if stage else scenario.seq_len)
    if rate is None:
        raise UsageError(f"{run.path}: no training projection in the run; it needs train cases")
    return (not run.cpu and run.hardware == hw.name and rate.model == model.name), rate


def _other_hardware(pool: InputPool, scenario: Scenario, hw: HardwareSpec) -> None:
    if hw.name != scenario.hardware and pool.drop(["avg_power_w"]):
        pool.notes.append(
            f"the scenario's average power was for {scenario.hardware}; pass --assume avg_power_w=... for {hw.name}"
        )


def _stages(
    pool: InputPool,
    scenario: Scenario,
    a: ModelArgs,
    peak: float,
    measured: tuple[bool, PhaseRate] | None,
) -> list[StagePlan]:
    """One plan per stage, and each stage's size as an input."""
    plans = []
    for st in scenario.stages:
        key = f"stage.{st.name}"
        if st.tokens is not None:
            flops = F.train_flops_per_token(a, _token_seq(scenario, st))
            work = None
            if measured is not None:  # the layers' seconds at 100% of the basis the efficiency is against
                direct, rate = measured
                work = (flops.total - flops.output_head) / (rate.basis_flops_per_s if direct else peak)
            pool.inputs[f"{key}.tokens"] = _stage_input(
                f"{key}.tokens", st.tokens, "tokens", f"tokens of {st.name}", st
            )
            plans.append(StagePlan(st.name, "tokens", flops_per_token=flops.total, measured_work_s=work))
        elif st.gpu_hours is not None:
            pool.inputs[f"{key}.gpu_hours"] = _stage_input(
                f"{key}.gpu_hours", st.gpu_hours, "GPU-hours", f"GPU-hours of {st.name}", st
            )
            plans.append(StagePlan(st.name, "gpu_hours"))
        else:
            pool.inputs[f"{key}.hours"] = _stage_input(
                f"{key}.hours", st.hours, "hours", f"wall-clock hours of {st.name} on {st.gpus} GPUs", st
            )
            plans.append(StagePlan(st.name, "gpus_hours", gpus=st.gpus))
    return plans


def _stage_input(name: str, q: Quantity, unit: str, meaning: str, st: Stage) -> Input:
    return Input(name, q, unit, meaning, "scenario", st.source)


def _measured_inputs(
    pool: InputPool,
    run: MeasuredRun,
    measured: tuple[bool, PhaseRate],
    scenario: Scenario,
    model: str,
    hw: HardwareSpec,
) -> None:
    """The run's efficiency as an input (a distribution from its layers' timing), and, measured on
    this GPU, its average power."""
    direct, rate = measured
    pool.add("measured_efficiency", run.projection_efficiency(rate), "measured run", run.path)
    if not direct:
        what = "CPU" if run.cpu else run.device_name
        pool.notes.append(
            f"efficiency transfer: {rate.efficiency:.1%} of the {rate.efficiency_basis}, measured on {what} "
            f"({rate.model}), applied to {hw.name}'s dense {scenario.mfu_dtype} peak for {model}"
            + ("; a CPU figure, not a GPU measurement" if run.cpu else "")
        )
        return
    stage = next((st for st in scenario.stages if st.tokens is not None), None)
    if stage is not None and rate.seq != _token_seq(scenario, stage):
        pool.notes.append(
            f"training measured at sequence {rate.seq}, scaled to {_token_seq(scenario, stage)} by the analytic FLOPs"
        )
    if rate.avg_power_w:
        if "avg_power_w" in pool:
            pool.notes.append(f"measured average power ({rate.avg_power_w:.0f} W) replaces the scenario's assumption")
        pool.add("avg_power_w", Quantity.point(rate.avg_power_w), "measured run", run.path)


def _analytic_overheads(pool: InputPool, scenario: Scenario, a: ModelArgs, *, head: bool) -> None:
    """What the compute figure leaves out, from the analytic model, unless the scenario says: MTP,
    and (for a run's layers, which do not run it) the output head."""
    stage = next((st for st in scenario.stages if st.tokens is not None), None)
    if stage is None:
        return
    seq = _token_seq(scenario, stage)
    flops = F.train_flops_per_token(a, seq)
    defaults = {
        "mtp_overhead": (
            F.mtp_train_flops_per_token(a, seq) / flops.total,
            "MTP FLOPs over the main model's (analytic)",
        )
    }
    if head:
        layers = flops.total - flops.output_head
        defaults["head_embedding_overhead"] = (
            flops.output_head / layers,
            "output head FLOPs over the layers' (analytic)",
        )
    for name, (value, why) in defaults.items():
        if name not in pool:
            pool.add(name, Quantity.point(value), "analytic", "meter.analytic", meaning=why)


def _rate(pool: InputPool, method: M.Method, overrides: Mapping[str, Quantity], plans: list[StagePlan]) -> str:
    """The input that sets the rate; for an end-to-end method, the command line's mfu or achieved
    FLOP/s over the scenario's, and never both from the command line."""
    present = [r for r in method.rate if r in pool]
    given = [r for r in present if r in overrides]
    if len(given) > 1:
        raise UsageError("--mfu and --achieved-tflops give the same rate two ways; give one")
    chosen = (given or present or [method.rate[0]])[0]
    pool.drop([r for r in present if r != chosen])
    if chosen not in pool and any(p.sized_by == "tokens" for p in plans):
        raise UsageError(
            "a stage is sized in tokens: give --mfu, --achieved-tflops, --assume compute_mfu=..., or --from-run "
            "RUN.json with a measured run"
        )
    if method is M.END_TO_END:
        pool.notes.append("end-to-end MFU: it already includes pipeline bubbles, communication, recomputation and MTP")
    return chosen


def _ep_model(
    pool: InputPool, a: ModelArgs, hw: HardwareSpec, comm: MeasuredLinks | None, overridden: set[str]
) -> EpShape | None:
    """The EP model's shape, with its link bandwidths as inputs (measured on this hardware, or the
    datasheet's); None, with a note on what is left unused, without ep_degree or for a dense model."""
    ep_only = sorted(M.EP_INPUTS - {"ep_degree"})
    if "ep_degree" not in pool:
        unused = pool.drop(ep_only)
        if unused or comm is not None:
            pool.notes.append(
                "no ep_degree, so no expert-parallel communication model: "
                + ", ".join(unused + (["the measured communication"] if comm else []))
                + " left unused"
            )
        return None
    if not a.is_moe:
        dropped = pool.drop(["ep_degree", *ep_only])
        pool.notes.append(f"{', '.join(dropped)} left out: a dense model has no expert parallelism")
        return None
    _link_inputs(pool, hw)
    if comm is not None:
        _measured_links(pool, hw, comm, overridden)
    if pool.drop(["exposed_communication"]):
        pool.notes.append("the expert-parallel model (ep_degree) replaces the exposed_communication assumption")
    # DeepSeek's MTP modules are MoE blocks: each adds one MoE layer to a training token's path
    return EpShape(hidden=a.dim, top_k=a.n_activated_experts, n_moe_layers=a.n_moe_layers + a.n_mtp_layers)


def _link_inputs(pool: InputPool, hw: HardwareSpec) -> None:
    links = {
        "nvlink_bytes_per_s": (hw.nvlink_bandwidth_gb_s, 0.5, "NVLink", "nvlink_bandwidth_gb_s"),
        "network_bytes_per_s": (hw.network_bandwidth_gb_s, 1.0, "scale-out network", "network_bandwidth_gb_s"),
    }
    for name, (gb_s, share, what, field_name) in links.items():
        if gb_s is None or name in pool:
            continue
        src = hw.source_for(field_name)
        half = " (half the bidirectional figure)" if share != 1.0 else ""
        pool.add(
            name,
            Quantity.point(gb_s * 1e9 * share),
            "hardware config",
            f"{hw.name}: {src.source}" if src else hw.name,
            meaning=f"{what} per GPU and direction{half}",
            date=src.date if src else None,
        )


def _measured_links(pool: InputPool, hw: HardwareSpec, comm: MeasuredLinks, overridden: set[str]) -> None:
    if comm.cpu or comm.hardware != hw.name:
        if comm.cpu:
            on = "the CPU (gloo)"
        elif comm.hardware:
            on = comm.hardware
        else:
            on = (
                f"'{comm.device}', which no hardware config matches"
                if comm.device
                else "GPUs no hardware config matches"
            )
        pool.notes.append(
            f"the measured communication ({comm.source}) was on {on}, not {hw.name}: the datasheet links are used"
        )
        return
    for name, value, eff, configured_gb_s, link in (
        ("nvlink_bytes_per_s", comm.nvlink_bytes_per_s, "nvlink_efficiency", _half(hw.nvlink_bandwidth_gb_s), "NVLink"),
        ("network_bytes_per_s", comm.network_bytes_per_s, "network_efficiency", hw.network_bandwidth_gb_s, "network"),
    ):
        if value is None or name in overridden:
            continue
        # the link carries only an inter-node all-to-all's off-node bytes; the rest go over NVLink
        share = comm.network_off_node_share if name == "network_bytes_per_s" else 1.0
        if configured_gb_s is not None and value * share > configured_gb_s * 1e9:
            # e.g. an NVLS (in-switch) all-reduce's busbw: faster than the link carries, not the link's speed
            over = f"{value / 1e9:.4g} GB/s" + (f" ({value * share / 1e9:.4g} GB/s off-node)" if share < 1 else "")
            pool.notes.append(
                f"the measured {link} figure, {over}, is above the {configured_gb_s:.4g} GB/s per GPU and direction "
                f"of {hw.name}'s config: not adopted (in-switch reduction, or a wrong config; {comm.source})"
            )
            continue
        pool.add(
            name,
            Quantity.point(value),
            "measured run",
            comm.source,
            meaning="effective all-to-all bandwidth per GPU and direction"
            if (comm.nvlink_from if name == "nvlink_bytes_per_s" else comm.network_from) != "all_reduce"
            else "ring all-reduce bus bandwidth per GPU, standing in for all-to-all (an upper bound)",
        )
        if eff not in overridden and pool.drop([eff]):
            pool.notes.append(f"the measured {name} already includes {eff}; the assumption is dropped")


def _half(bidirectional_gb_s: float | None) -> float | None:
    """NVLink is quoted bidirectional; the EP model's link is one direction (as _link_inputs sets it)."""
    return bidirectional_gb_s * 0.5 if bidirectional_gb_s is not None else None


# --- what is set beside the estimate -----------------------------------------------------------


def _beside(estimate: CostEstimate, peak: float, setting: TrainingSetting) -> None:
    """The run it builds on, the MFU the reported hours imply, reported figures, published compute."""
    scenario, outputs = estimate.scenario, estimate.outputs
    if setting.base is not None:
        base_scenario, base_setting = setting.base
        base = estimate_train(base_scenario, base_setting, samples=estimate.samples, seed=estimate.seed)
        estimate.base = base
        if "total_usd" in outputs and "total_usd" in base.outputs:
            b, o = base.outputs["total_usd"], outputs["total_usd"]
            outputs["cumulative_usd"] = Summary(
                o.point + b.point, o.p10 + b.p10, o.p50 + b.p50, o.p90 + b.p90, o.mean + b.mean
            )
    implied = implied_mfu(scenario, estimate.model.args, peak)
    if implied is not None:
        outputs["implied_mfu"] = Summary.constant(implied)
    estimate.reproductions = reproductions(scenario, outputs)
    estimate.comparisons = training_compute_comparisons(setting.models)


def implied_mfu(scenario: Scenario, a: ModelArgs, peak: float) -> float | None:
    """The MFU the reported pre-training GPU-hours imply: tokens x FLOPs per token / (hours x peak)."""
    reported = next((r for r in scenario.reported.values() if r.output == "pretraining_gpu_hours"), None)
    stage = next((st for st in scenario.stages if st.tokens is not None), None)
    if reported is None or stage is None:
        return None
    flops = F.train_flops_per_token(a, _token_seq(scenario, stage)).total
    return stage.tokens.central * flops / (reported.value * 3600.0 * peak)


def training_compute_comparisons(models: Iterable[ModelConfig]) -> list[Comparison]:
    """Every model config with a published training-compute total, beside the analytic count."""
    out = []
    for m in models:
        tc = m.published.training_compute
        if tc is None:
            continue
        analytic = tc.tokens * F.train_flops_per_token(m.args, tc.seq_len).total
        out.append(Comparison(m.name, tc.flops, tc.tokens, tc.seq_len, analytic, tc.source, tc.date))
    return out
