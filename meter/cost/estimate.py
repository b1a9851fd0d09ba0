"""From a scenario (plus command-line overrides and, optionally, a measured run) to a cost estimate.

Every input ends up in ``CostEstimate.inputs`` with where it came from: the scenario (with its
source, date and confidence), the command line, the price table, a measured run, or the analytic
model. Outputs carry their central value and, when any input is a range, P10/P50/P90.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from meter.analytic import flops as F
from meter.analytic import memory as M
from meter.config.hardware import HardwareSpec, load_hardware
from meter.config.models import ModelConfig, load_model
from meter.config.paths import ConfigLocator
from meter.config.pricing import load_prices
from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario, domain_error, load_scenario
from meter.cost.ep_comm import EpShape, MeasuredLinks
from meter.cost.from_run import MeasuredRun, PhaseRate
from meter.cost.montecarlo import Summary, evaluate
from meter.cost.serve import serve_cost
from meter.cost.train import StagePlan, TrainContext, train_cost
from meter.errors import UsageError

DEFAULT_SAMPLES = 20_000


@dataclass(frozen=True)
class Input:
    name: str
    quantity: Quantity
    unit: str
    meaning: str
    origin: str  # scenario, command line, price table, measured run, analytic
    source: str | None = None
    date: dt.date | None = None
    confidence: str | None = None


@dataclass
class CostEstimate:
    scenario: Scenario
    method: str  # mfu, run (direct), run (transfer), throughput
    inputs: dict[str, Input]
    outputs: dict[str, Summary]
    samples: int
    seed: int
    hardware: HardwareSpec
    model: ModelConfig
    run: MeasuredRun | None = None
    notes: list[str] = field(default_factory=list)
    reproductions: list[dict[str, Any]] = field(default_factory=list)
    base: CostEstimate | None = None

    @property
    def cpu_derived(self) -> bool:
        return self.run is not None and self.run.cpu

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "kind": self.scenario.kind,
            "model": self.model.name,
            "hardware": self.hardware.name,
            "method": self.method,
            "samples": self.samples,
            "seed": self.seed,
            "cpu_derived": self.cpu_derived,
            "run": self.run.path if self.run else None,
            "outputs": {k: v.as_dict() for k, v in self.outputs.items()},
            "inputs": {
                k: {
                    "value": v.quantity.as_dict(),
                    "description": v.quantity.describe(),
                    "unit": v.unit,
                    "meaning": v.meaning,
                    "origin": v.origin,
                    "source": v.source,
                    "date": v.date.isoformat() if v.date else None,
                    "confidence": v.confidence,
                }
                for k, v in self.inputs.items()
            },
            "reproductions": self.reproductions,
            "notes": self.notes,
            "leaves_out": self.scenario.leaves_out,
            "base": self.base.as_dict() if self.base else None,
        }


# --- inputs ------------------------------------------------------------------------------------


def scenario_inputs(s: Scenario) -> dict[str, Input]:
    out = {}
    for name, a in s.assumptions.items():
        unit, meaning = s.inputs[name]
        out[name] = Input(name, a.value, unit, meaning, "scenario", a.source, a.date, a.confidence)
    return out


RECENT_DAYS = 548  # prices within 18 months of the table's version count as current


def price_input(hardware: str, tier: str | None, locator: ConfigLocator | None) -> Input | None:
    """The price table's rental price for a GPU: one price, or the range over providers.

    Only prices dated within 18 months of the table's version are used when there are any: an
    H100 hour cost $12 in 2023 and under $2 in 2025, and a stale price must not set today's range.
    """
    table = load_prices(locator=locator)
    prices = table.prices_for(hardware, tier)
    if not prices:
        return None
    recent = [p for p in prices if (table.version - p.date).days <= RECENT_DAYS]
    prices = recent or prices
    values = sorted(p.usd_per_gpu_hour for p in prices)
    q = Quantity.point(values[0]) if len(values) == 1 else Quantity("loguniform", low=values[0], high=values[-1])
    sources = "; ".join(f"{p.provider} {p.tier} ${p.usd_per_gpu_hour:.2f} ({p.date})" for p in prices)
    confidence = min((p.confidence for p in prices), key=["low", "medium", "high"].index)
    return Input(
        "usd_per_gpu_hour",
        q,
        "USD",
        "rental price per GPU-hour",
        "price table",
        f"price table '{table.name}' v{table.version}: {sources}",
        max(p.date for p in prices),
        confidence,
    )


def _override(
    inputs: dict[str, Input], overrides: Mapping[str, Quantity], known: Mapping[str, tuple[str, str]]
) -> None:
    for name, q in overrides.items():
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            raise UsageError(
                f"'{name}' is not an input of this cost model" + (f"; did you mean '{close[0]}'?" if close else "")
            )
        why = domain_error(name, q)
        if why:
            raise UsageError(f"input {name} = {q.describe()} (command line): {why}")
        unit, meaning = known[name]
        inputs[name] = Input(name, q, unit, meaning, "command line")


# --- training ----------------------------------------------------------------------------------


def estimate_train(
    scenario: Scenario,
    *,
    overrides: Mapping[str, Quantity] = {},
    run: MeasuredRun | None = None,
    hardware: str | None = None,
    tier: str | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    locator: ConfigLocator | None = None,
    comm: MeasuredLinks | None = None,
) -> CostEstimate:
    locator = locator or ConfigLocator.from_env()
    model = load_model(scenario.model, locator)
    hw = load_hardware(hardware or scenario.hardware, locator)
    a = model.args
    inputs = scenario_inputs(scenario)
    notes: list[str] = []
    if hw.name != scenario.hardware:
        inputs.pop("usd_per_gpu_hour", None)
        if "avg_power_w" in inputs:
            inputs.pop("avg_power_w")
            notes.append(
                f"the scenario's average power was for {scenario.hardware}; pass --assume avg_power_w=... for {hw.name}"
            )
    if "usd_per_gpu_hour" not in inputs or tier:
        priced = price_input(hw.name, tier, locator)
        if priced:
            inputs["usd_per_gpu_hour"] = priced
        else:
            notes.append(f"no {tier or ''} rental price for {hw.name} in the price table; dollars need --price")
    peak = hw.peak_flops("bf16")
    if peak is None:
        raise UsageError(f"hardware '{hw.name}' has no dense bf16 peak; training cost needs a GPU config")
    plans, method = [], "mfu"
    pretraining = next((st.name for st in scenario.stages if st.tokens is not None), None)
    for st in scenario.stages:
        seq = st.seq_len or scenario.seq_len
        if st.tokens is not None:
            inputs[f"stage.{st.name}.tokens"] = Input(
                f"stage.{st.name}.tokens", st.tokens, "tokens", f"tokens of {st.name}", "scenario", st.source
            )
            flops = F.train_flops_per_token(a, seq)
            measured = None
            if run is not None:
                measured, method = _train_time_from_run(run, model, hw, flops, seq, notes)
                _analytic_overheads(inputs, a, flops, seq)
            plans.append(StagePlan(st.name, "tokens", flops_per_token=flops.total, measured_s_per_token=measured))
        elif st.gpu_hours is not None:
            inputs[f"stage.{st.name}.gpu_hours"] = Input(
                f"stage.{st.name}.gpu_hours",
                st.gpu_hours,
                "GPU-hours",
                f"GPU-hours of {st.name}",
                "scenario",
                st.source,
            )
            plans.append(StagePlan(st.name, "gpu_hours"))
        else:
            inputs[f"stage.{st.name}.hours"] = Input(
                f"stage.{st.name}.hours",
                st.hours,
                "hours",
                f"wall-clock hours of {st.name} on {st.gpus} GPUs",
                "scenario",
                st.source,
            )
            plans.append(StagePlan(st.name, "gpus_hours", gpus=st.gpus))
    if run is not None and method == "run (direct)":
        rate = run.pick("train", seq=scenario.seq_len)
        if rate and rate.avg_power_w:
            if "avg_power_w" in inputs:
                notes.append(f"measured average power ({rate.avg_power_w:.0f} W) replaces the scenario's assumption")
            inputs["avg_power_w"] = Input(
                "avg_power_w",
                Quantity.point(rate.avg_power_w),
                "W",
                "average power per GPU while training",
                "measured run",
                run.path,
            )
    if run is None and "mfu" in overrides:
        inputs.pop("compute_mfu", None)  # --mfu on the command line asks for the end-to-end view
    composed = run is not None or "compute_mfu" in inputs or "compute_mfu" in overrides
    if run is not None:
        ignored = [k for k in ("mfu", "compute_mfu") if k in inputs]
        if ignored:
            notes.append(f"the run's measured rate replaces the {' and '.join(ignored)} assumption")
            for k in ignored:
                inputs.pop(k)
    elif composed:
        method = "compute mfu"
        if inputs.pop("mfu", None) is not None:
            notes.append("compute_mfu and the modelled overheads replace the end-to-end mfu assumption")
        token_stage = next((st for st in scenario.stages if st.tokens is not None), None)
        if token_stage is not None:
            seq = token_stage.seq_len or scenario.seq_len
            _analytic_overheads(inputs, a, F.train_flops_per_token(a, seq), seq, head=False)
    else:
        for k in COMPOSED_ONLY:
            inputs.pop(k, None)
        notes.append("end-to-end MFU: it already includes pipeline bubbles, communication, recomputation and MTP")
    _override(inputs, overrides, scenario.inputs)  # the command line has the last word
    ep = None
    if composed and "ep_degree" in inputs:
        ep = _ep_inputs(inputs, a, hw, comm, notes, overridden=set(overrides))
    elif composed:
        unused = [k for k in EP_ONLY if inputs.pop(k, None) is not None]
        if unused or comm is not None:
            notes.append(
                "no ep_degree, so no expert-parallel communication model: "
                + ", ".join(unused + (["the measured communication"] if comm else []))
                + " left unused"
            )
    if not composed:
        unused = [k for k in COMPOSED_ONLY if inputs.pop(k, None) is not None]
        if unused:
            notes.append(
                f"{', '.join(unused)} left unused: an end-to-end mfu already includes them "
                "(use --assume compute_mfu=... to model them)"
            )
    if ep is not None and "exposed_communication" in inputs:
        inputs.pop("exposed_communication")
        notes.append("the expert-parallel model (ep_degree) replaces the exposed_communication assumption")
    if not composed and "mfu" not in inputs and any(p.sized_by == "tokens" for p in plans):
        raise UsageError(
            "a stage is sized in tokens: give --mfu, --assume compute_mfu=..., or --from-run RUN.json "
            "with a measured run"
        )
    ctx = TrainContext(
        stages=plans, peak_flops=peak, cluster_gpus=scenario.cluster_gpus, pretraining=pretraining, ep=ep
    )
    quantities = {k: v.quantity for k, v in inputs.items()}
    outputs = evaluate(lambda x: train_cost(x, ctx), quantities, samples=samples, seed=seed)
    estimate = CostEstimate(scenario, method, inputs, outputs, samples, seed, hw, model, run, notes)
    if scenario.builds_on:
        estimate.base = estimate_train(
            load_scenario(scenario.builds_on, locator), samples=samples, seed=seed, locator=locator
        )
        if "total_usd" in outputs and "total_usd" in estimate.base.outputs:
            b, o = estimate.base.outputs["total_usd"], outputs["total_usd"]
            outputs["cumulative_usd"] = Summary(
                o.point + b.point, o.p10 + b.p10, o.p50 + b.p50, o.p90 + b.p90, o.mean + b.mean
            )
    implied = implied_mfu(scenario, a, peak)
    if implied is not None:
        outputs["implied_mfu"] = Summary(implied, implied, implied, implied, implied)
    estimate.reproductions = reproductions(scenario, outputs)
    return estimate


def implied_mfu(scenario: Scenario, a, peak: float) -> float | None:
    """The MFU the reported pre-training GPU-hours imply: tokens x FLOPs per token / (hours x peak)."""
    reported = next((r for r in scenario.reported.values() if r.output == "pretraining_gpu_hours"), None)
    stage = next((st for st in scenario.stages if st.tokens is not None), None)
    if reported is None or stage is None:
        return None
    flops = F.train_flops_per_token(a, stage.seq_len or scenario.seq_len).total
    return stage.tokens.central * flops / (reported.value * 3600.0 * peak)


def _train_time_from_run(
    run: MeasuredRun, model: ModelConfig, hw: HardwareSpec, flops: F.FlopsPerToken, seq: int, notes: list[str]
) -> tuple[float, str]:
    """GPU-seconds per token of the model's layers at ``seq``, from the run (direct or by efficiency)."""
    rate = run.pick("train", seq=seq)
    if rate is None:
        raise UsageError(f"{run.path}: no training projection in the run; it needs train cases")
    layers = flops.total - flops.output_head
    if not run.cpu and run.hardware == hw.name and rate.model == model.name:
        if rate.seq != seq:
            notes.append(f"training measured at sequence {rate.seq}, scaled to {seq} by the analytic FLOPs")
        return rate.time_per_token_s * layers / rate.flops_per_token, "run (direct)"
    what = "CPU" if run.cpu else run.device_name
    notes.append(
        f"efficiency transfer: {rate.efficiency:.1%} of the {rate.efficiency_basis}, measured on {what} "
        f"({rate.model}), applied to {hw.name}'s dense bf16 peak for {model.name}"
        + ("; a CPU figure, not a GPU measurement" if run.cpu else "")
    )
    return layers / (rate.efficiency * hw.peak_flops("bf16")), "run (transfer)"


def _analytic_overheads(inputs: dict[str, Input], a, flops: F.FlopsPerToken, seq: int, *, head: bool = True) -> None:
    """What the compute figure leaves out, from the analytic model, unless the scenario says: the
    output head (a one-layer benchmark does not run it; analytic FLOPs already count it) and MTP."""
    layers = flops.total - flops.output_head
    defaults = {
        "mtp_overhead": (
            F.mtp_train_flops_per_token(a, seq) / flops.total,
            "MTP FLOPs over the main model's (analytic)",
        ),
    }
    if head:
        defaults["head_embedding_overhead"] = (
            flops.output_head / layers,
            "output head FLOPs over the layers' (analytic)",
        )
    for name, (value, why) in defaults.items():
        if name not in inputs:
            inputs[name] = Input(name, Quantity.point(value), "ratio", why, "analytic", "meter.analytic")


COMPOSED_ONLY = (
    "pipeline_bubble",
    "exposed_communication",
    "recompute_factor",
    "mtp_overhead",
    "head_embedding_overhead",
    "ep_degree",
    "gpus_per_node",
    "max_nodes_per_token",
    "dispatch_bytes_per_value",
    "nvlink_bytes_per_s",
    "network_bytes_per_s",
    "nvlink_efficiency",
    "network_efficiency",
    "comm_overlap",
)
EP_ONLY = COMPOSED_ONLY[5:]


def _ep_inputs(
    inputs: dict[str, Input], a, hw: HardwareSpec, comm: MeasuredLinks | None, notes: list[str], overridden: set[str]
) -> EpShape | None:
    """The EP model's shape, and its link bandwidths as inputs: measured on this hardware, or the datasheet's."""
    if not a.is_moe:
        dropped = [k for k in EP_ONLY if inputs.pop(k, None) is not None]
        if dropped:
            notes.append(f"{', '.join(dropped)} left out: a dense model has no expert parallelism")
        return None
    links = {
        "nvlink_bytes_per_s": (hw.nvlink_bandwidth_gb_s, 0.5, "NVLink", "nvlink_bandwidth_gb_s"),
        "network_bytes_per_s": (hw.network_bandwidth_gb_s, 1.0, "scale-out network", "network_bandwidth_gb_s"),
    }
    for name, (gb_s, share, what, field_name) in links.items():
        if gb_s is None or name in inputs:
            continue
        src = hw.source_for(field_name)
        half = " (half the bidirectional figure)" if share != 1.0 else ""
        inputs[name] = Input(
            name,
            Quantity.point(gb_s * 1e9 * share),
            "bytes/s",
            f"{what} per GPU and direction{half}",
            "hardware config",
            f"{hw.name}: {src.source}" if src else hw.name,
            src.date if src else None,
        )
    if comm is not None:
        if comm.cpu or comm.hardware != hw.name:
            notes.append(
                f"the measured communication ({comm.source}) was on {'the CPU (gloo)' if comm.cpu else comm.hardware}, "
                f"not {hw.name}: the datasheet links are used"
            )
        else:
            for name, value, eff in (
                ("nvlink_bytes_per_s", comm.nvlink_bytes_per_s, "nvlink_efficiency"),
                ("network_bytes_per_s", comm.network_bytes_per_s, "network_efficiency"),
            ):
                if value is None or name in overridden:
                    continue
                inputs[name] = Input(
                    name,
                    Quantity.point(value),
                    "bytes/s",
                    "effective all-to-all bandwidth per GPU and direction",
                    "measured run",
                    comm.source,
                )
                if eff not in overridden and inputs.pop(eff, None) is not None:
                    notes.append(f"the measured {name} already includes {eff}; the assumption is dropped")
    # DeepSeek's MTP modules are MoE blocks: each adds one MoE layer to a training token's path
    return EpShape(hidden=a.dim, top_k=a.n_activated_experts, n_moe_layers=a.n_moe_layers + a.n_mtp_layers)


# --- serving -----------------------------------------------------------------------------------


def estimate_serve(
    scenario: Scenario,
    *,
    overrides: Mapping[str, Quantity] = {},
    run: MeasuredRun | None = None,
    hardware: str | None = None,
    tier: str | None = None,
    batch: int | None = None,
    context: int | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    locator: ConfigLocator | None = None,
) -> CostEstimate:
    locator = locator or ConfigLocator.from_env()
    model = load_model(scenario.model, locator)
    hw = load_hardware(hardware or scenario.hardware, locator)
    inputs = scenario_inputs(scenario)
    notes: list[str] = []
    if hw.name != scenario.hardware or tier:
        inputs.pop("usd_per_gpu_hour", None)
        inputs.pop("avg_power_w", None)
        priced = price_input(hw.name, tier, locator)
        if priced:
            inputs["usd_per_gpu_hour"] = priced
        else:
            notes.append(f"no rental price for {hw.name} in the price table; dollars need --price")
    method = "throughput"
    j_out = j_in = None
    if run is not None:
        method, j_in, j_out = _serve_rates_from_run(
            run, model, hw, inputs, notes, batch=batch, context=context or scenario.decode_context
        )
        inputs.pop("gpus", None)  # the deployment is sized from the measured throughput
    _override(inputs, overrides, scenario.inputs)
    quantities = {k: v.quantity for k, v in inputs.items()}
    outputs = evaluate(
        lambda x: serve_cost(x, joules_per_output_token=j_out, joules_per_input_token=j_in),
        quantities,
        samples=samples,
        seed=seed,
    )
    estimate = CostEstimate(scenario, method, inputs, outputs, samples, seed, hw, model, run, notes)
    estimate.reproductions = reproductions(scenario, outputs)
    return estimate


def _serve_rates_from_run(
    run: MeasuredRun,
    model: ModelConfig,
    hw: HardwareSpec,
    inputs: dict[str, Input],
    notes: list[str],
    *,
    batch: int | None,
    context: int | None,
) -> tuple[str, float | None, float | None]:
    a = model.args
    prefill = run.pick("prefill")
    decode = run.pick("decode", batch=batch, context=context)
    if prefill is None or decode is None:
        raise UsageError(f"{run.path}: serving cost needs prefill and decode projections in the run")
    direct = not run.cpu and run.hardware == hw.name and prefill.model == model.name == decode.model
    if direct:
        prefill_tps = 1.0 / prefill.time_per_token_s
        decode_s = decode.time_per_token_s * (1 + _decode_head_overhead(a, decode))
        method = "run (direct)"
        j_in, j_out = prefill.joules_per_token, decode.joules_per_token
    else:
        method = "run (transfer)"
        j_in = j_out = None
        pf = F.prefill_flops_per_token(a, prefill.seq)
        prefill_tps = prefill.efficiency * hw.peak_flops("bf16") / (pf.total - pf.output_head)
        decode_s = _transfer_decode_time(a, hw, decode)
        what = "CPU" if run.cpu else run.device_name
        notes.append(
            f"efficiency transfer: prefill at {prefill.efficiency:.1%} and decode at "
            f"{decode.efficiency:.1%} of the {decode.efficiency_basis}"
            + (f" and {decode.bandwidth_efficiency:.1%} of memory bandwidth" if decode.bandwidth_efficiency else "")
            + f", measured on {what}, applied to {hw.name} for {model.name}"
            + ("; a CPU figure, not a GPU measurement" if run.cpu else "")
        )
    notes.append(f"decode measured at batch {decode.batch}, context {decode.context}")
    inputs["prefill_tokens_per_s_per_gpu"] = Input(
        "prefill_tokens_per_s_per_gpu",
        Quantity.point(prefill_tps),
        "tokens/s",
        "input tokens per GPU per second",
        "measured run",
        run.path,
    )
    inputs["decode_tokens_per_s_per_gpu"] = Input(
        "decode_tokens_per_s_per_gpu",
        Quantity.point(1.0 / decode_s),
        "tokens/s",
        "output tokens per GPU per second",
        "measured run",
        run.path,
    )
    return method, j_in, j_out


def _decode_head_overhead(a, decode: PhaseRate) -> float:
    """The output head, which a layer benchmark leaves out: FLOPs or bytes, whichever binds."""
    head_flops = 2.0 * a.dim * a.vocab_size
    head_bytes = a.dim * a.vocab_size * 2 / decode.batch
    ratios = [head_flops / decode.flops_per_token]
    if decode.bytes_per_token:
        ratios.append(head_bytes / decode.bytes_per_token)
    return max(ratios)


def _transfer_decode_time(a, hw: HardwareSpec, decode: PhaseRate) -> float:
    """Per-token decode time on ``hw``: the slower of compute and memory at the measured efficiencies."""
    fl = F.decode_flops_per_token(a, decode.context)
    step = M.decode_step_bytes(a, batch=decode.batch, context_len=decode.context)
    compute_s = fl.total / (decode.efficiency * hw.peak_flops("bf16"))
    if decode.bandwidth_efficiency and hw.memory_bandwidth_bytes_per_s:
        memory_s = step.per_token / (decode.bandwidth_efficiency * hw.memory_bandwidth_bytes_per_s)
        return max(compute_s, memory_s)
    return compute_s


# --- reported figures --------------------------------------------------------------------------


def reproductions(scenario: Scenario, outputs: Mapping[str, Summary]) -> list[dict[str, Any]]:
    """Each reported figure against the value computed from the scenario's inputs."""
    rows = []
    for label, rep in scenario.reported.items():
        key = f"{rep.output}.{rep.stage}" if rep.stage else rep.output
        computed = outputs.get(key)
        value = computed.point if computed else None
        diff = (value - rep.value) / rep.value if value is not None and rep.value else None
        rows.append(
            {
                "label": label,
                "output": key,
                "reported": rep.value,
                "computed": value,
                "rel_diff": diff,
                "rel_tol": rep.rel_tol,
                "reproduced": diff is not None and abs(diff) <= rep.rel_tol,
                "source": rep.source,
                "date": rep.date.isoformat(),
                "note": rep.note,
            }
        )
    return rows
