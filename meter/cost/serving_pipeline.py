"""A serving cost estimate: a deployment that could exist, its bound, and the efficiency that scales it.

1. the setting (:class:`ServingSetting`, loaded at the edge by :mod:`meter.cost.configs`; nothing
   here reads a file): model, hardware, and the deployment (the scenario's, ``--deployment``, the
   one written for the model, or the single-GPU layout) with the command line's layout overrides;
2. its bound (:mod:`meter.cost.layout`), refused with the shortfall when it does not fit;
3. the method (:mod:`meter.cost.methods`): a run's measured efficiency, a given one, the
   scenario's own throughput, or the bound alone;
4. the inputs that method reads, the Monte Carlo over :func:`meter.cost.serving_formula.serve_cost`, and
   the efficiency the deployment's published throughput implies against its bound.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kernels.args import ModelArgs
from meter.config.deployments import Deployment, layout_problem
from meter.config.hardware import HardwareSpec
from meter.config.models import ModelConfig
from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario
from meter.cost import methods as M
from meter.cost.inputs import Input, InputPool, couplings_for, set_price
from meter.cost.layout import DeploymentBound, deployment_bound
from meter.cost.measured.run import REGIMES, MeasuredRun
from meter.cost.montecarlo import Coupling, Summary, evaluate
from meter.cost.result import DEFAULT_SAMPLES, CostEstimate, Efficiency, reproductions
from meter.cost.serving_formula import ServeContext, serve_cost
from meter.errors import UsageError

_FLAGS = {"tp": "--tp", "ep": "--ep", "batch_per_gpu": "--batch-per-gpu", "context": "--context"}
_CONTEXT_FLAGS = {"prefill": "--prefill-context", "decode": "--decode-context"}


@dataclass(frozen=True)
class LayoutOverrides:
    """The command line's changes to a deployment: ``--deployment``, ``--tp``, ``--ep``,
    ``--weights``, ``--kv-cache``, ``--batch-per-gpu``, ``--context`` (both pools),
    ``--prefill-context`` and ``--decode-context`` (one each)."""

    deployment: str | None = None
    tp: int | None = None
    ep: int | None = None
    weights: str | None = None
    batch_per_gpu: float | None = None
    context: int | None = None
    prefill_context: int | None = None
    decode_context: int | None = None
    kv_cache: str | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in dataclasses.asdict(self).values())

    def changes(self, deployment: str | None) -> bool:
        """Whether these change the layout of ``deployment`` (naming that same deployment does not)."""
        rest = dataclasses.replace(self, deployment=None)
        return rest.any or self.deployment not in (None, deployment)

    def apply(self, d: Deployment, a: ModelArgs) -> Deployment:
        """``d`` with these changes, each pool checked against the model (a bad one names its flag).

        ``--tp`` makes each pool one replica of that many GPUs (``tp x max(1, ep / tp)`` with
        ``--ep``; experts split over the TP group without it): a TP8 node, not DeepSeek's 144-GPU
        decode pool with TP8 groups in it; its decode batch fills the memory unless given. ``--ep`` alone grows a pool's DP to ``ep / tp`` when
        it is larger; ``--batch-per-gpu`` (a fraction is fine: concurrency 4 on a TP8 node is 0.5)
        is the decode pool's; ``--context`` sets both pools (the prompt length in prefill), and
        ``--prefill-context`` / ``--decode-context`` one each.
        """
        pools = {}
        for phase in ("prefill", "decode"):
            p = d.pool(phase)
            changes: dict = {}
            if self.tp is not None:
                ep = self.ep or 1
                changes.update(
                    tp=self.tp,
                    dp=max(1, ep // self.tp),
                    ep=ep,
                    redundant_experts=0 if self.ep is None else p.redundant_experts,
                    routed_experts_per_gpu=None,
                    shared_experts_per_gpu=None,
                    comm_overlap=0.0,  # the deployment's overlap (DeepSeek's two micro-batches) is its own
                )
                if phase == "decode":  # the deployment's batch was for its own layout: fill this one's memory
                    changes["batch_per_gpu"] = None
            elif self.ep is not None:
                changes["ep"] = self.ep
                if self.ep > p.gpus and self.ep % p.tp == 0:
                    changes["dp"] = self.ep // p.tp
                changes.update(routed_experts_per_gpu=None)
            if self.batch_per_gpu is not None and phase == "decode":
                changes["batch_per_gpu"] = self.batch_per_gpu
            context = self.prefill_context if phase == "prefill" else self.decode_context
            if context is not None or self.context is not None:
                changes["context"] = context if context is not None else self.context
            pools[phase] = dataclasses.replace(p, **changes)
            problem = layout_problem(pools[phase], a)
            if problem:
                name, why = problem
                given = name in _FLAGS and getattr(self, name) is not None
                where = _FLAGS[name] if given else f"deployment '{d.name}' {phase}.{name}"
                if name == "redundant_experts" and self.tp is not None:
                    where = "--tp"
                raise UsageError(f"{where} {getattr(pools[phase], name)}: {why}")
        weights = d.weights.with_linear(self.weights) if self.weights else d.weights
        kv = self.kv_cache or d.kv_cache
        return dataclasses.replace(d, prefill=pools["prefill"], decode=pools["decode"], weights=weights, kv_cache=kv)


@dataclass(frozen=True)
class ServingSetting:
    """The configs a serving estimate reads, loaded at the edge (:mod:`meter.cost.configs`)."""

    model: ModelConfig
    hardware: HardwareSpec
    deployment: Deployment | None  # the named one (--deployment, the scenario's), else the default
    deployment_named: bool  # False: the one written for the model or the single-GPU layout, used if a bound is needed
    published_hardware: HardwareSpec | None  # the GPU the deployment's published throughput is for
    price: Input | None  # the price table's rental price, when the command line or scenario gives none
    tier: str | None = None


def estimate_serve(
    scenario: Scenario,
    setting: ServingSetting,
    *,
    overrides: Mapping[str, Quantity] = {},
    run: MeasuredRun | None = None,
    batch: int | None = None,
    context: int | None = None,
    layout: LayoutOverrides = LayoutOverrides(),
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    couplings: Iterable[Coupling] = (),
) -> CostEstimate:
    """``batch`` and ``context`` ask for the run's decode measurement at that shape (it must have
    it) and serve the deployment's decode pool at it."""
    model, hw = setting.model, setting.hardware
    shape = run_shape(run, batch, context)
    if shape is not None:
        layout = dataclasses.replace(
            layout,
            batch_per_gpu=layout.batch_per_gpu or shape[0],
            decode_context=layout.decode_context or layout.context or shape[1],
        )
    # the scenario's own throughput describes its GPU and layout, not another
    own = hw.name == scenario.hardware and not layout.changes(scenario.deployment)
    wants_bound = run is not None or not own or "efficiency" in overrides or not _has_throughput(scenario, overrides)
    deployment = setting.deployment if setting.deployment_named or wants_bound else None
    bound = None
    if deployment is not None:
        bound = deployment_bound(model.args, model.name, hw, layout.apply(deployment, model.args))
    method = choose_method(scenario, overrides, run, bound, hw, own=own)

    pool = InputPool.from_scenario(scenario)
    if not own:
        _not_own(pool, scenario, hw)
    set_price(pool, scenario, hw.name, setting.price, tier=setting.tier, overrides=overrides)
    efficiency = Efficiency(kind=None)
    if run is not None:
        efficiency = _measured_inputs(pool, run, method)
    pool.override(overrides)
    rate = _rate(method, pool)
    if rate == "efficiency":
        efficiency = Efficiency(kind="given")
    pool.keep(method.reads(), method.why)

    ctx = ServeContext(rate=rate, bound=bound)
    pairs = couplings_for(scenario, couplings, pool)
    outputs = evaluate(lambda x: serve_cost(x, ctx), pool.quantities(), samples=samples, seed=seed, couplings=pairs)
    estimate = CostEstimate(
        scenario, method.name, pool.inputs, outputs, samples, seed, hw, model, run, pool.notes, bound=bound
    )
    estimate.efficiency = _implied(estimate, deployment, efficiency, setting.published_hardware)
    if run is not None and bound is not None:
        _transfer_note(estimate)
    estimate.reproductions = reproductions(scenario, outputs)
    return estimate


def _not_own(pool: InputPool, scenario: Scenario, hw: HardwareSpec) -> None:
    """Priced on another GPU or layout, the scenario's measured throughput and power do not apply."""
    pool.drop(["avg_power_w"])
    dropped = pool.drop(["decode_tokens_per_s_per_gpu", "prefill_tokens_per_s_per_gpu", "gpus"])
    if dropped:
        pool.notes.append(
            f"{', '.join(dropped)} left out: the scenario's figures are for its own layout on {scenario.hardware}, "
            f"not this one on {hw.name}; give --efficiency (the published one implies the share of the bound "
            "shown) or --from-run RUN.json"
        )


def _has_throughput(scenario: Scenario, overrides: Mapping[str, Quantity]) -> bool:
    given = set(scenario.assumptions) | set(overrides)
    return {"decode_tokens_per_s_per_gpu", "prefill_tokens_per_s_per_gpu"} <= given


def run_shape(run: MeasuredRun | None, batch: int | None, context: int | None) -> tuple[int, int] | None:
    """The run's decode (batch, context) that ``batch``/``context`` ask for; an error names the ones it has."""
    if batch is None and context is None:
        return None
    if run is None:
        raise UsageError(
            "--batch selects a run's decode measurement: give --from-run RUN.json (or --batch-per-gpu for the deployment)"
        )
    shapes = run.decode_shapes()
    found = [s for s in shapes if (batch is None or s[0] == batch) and (context is None or s[1] == context)]
    if not found:
        asked = ", ".join(f"{k} {v}" for k, v in (("batch", batch), ("context", context)) if v is not None)
        has = "; ".join(f"batch {b}, context {c}" for b, c in shapes) or "no decode measurement"
        raise UsageError(f"{run.path}: no decode measurement at {asked}; the run has {has}")
    return found[0]


def choose_method(
    scenario: Scenario,
    overrides: Mapping[str, Quantity],
    run: MeasuredRun | None,
    bound: DeploymentBound | None,
    hw: HardwareSpec,
    *,
    own: bool = True,
) -> M.Method:
    """A run's measured efficiency, else a given one, else the scenario's throughput (on its own GPU
    and layout), else the bound alone."""
    given = set(overrides) | set(scenario.assumptions)
    if run is not None:
        return M.BOUND_MEASURED_DIRECT if not run.cpu and run.hardware == hw.name else M.BOUND_MEASURED_TRANSFER
    if "efficiency" in given or {"compute_efficiency", "memory_efficiency"} <= given:
        return M.BOUND_GIVEN
    if _has_throughput(scenario, overrides) and (own or {"decode_tokens_per_s_per_gpu"} <= set(overrides)):
        return M.THROUGHPUT
    if bound is not None:
        return M.BOUND_ONLY
    raise UsageError("serving cost needs a throughput per GPU (a scenario's), --efficiency, or --from-run RUN.json")


def _rate(method: M.Method, pool: InputPool) -> str:
    if method is M.THROUGHPUT:
        return "throughput"
    if method is M.BOUND_ONLY:
        return "bound"
    if method is M.BOUND_GIVEN and "efficiency" in pool:
        pool.drop(["compute_efficiency", "memory_efficiency"])
        return "efficiency"
    return "regimes"


def _measured_inputs(pool: InputPool, run: MeasuredRun, method: M.Method) -> Efficiency:
    """Each regime's efficiency measured by the run (a regime it has no case in takes the other's)."""
    measured = {r: run.regime_efficiency(r) for r in REGIMES}
    if not any(measured.values()):
        raise UsageError(f"{run.path}: no case of the run has a ceiling to measure an efficiency against")
    for regime, other in (("compute", "memory"), ("memory", "compute")):
        if measured[regime] is None:
            measured[regime] = measured[other]
            pool.notes.append(f"no case of the run was {regime}-bound: its {other}-bound efficiency stands in")
        pool.add(f"{regime}_efficiency", measured[regime], "measured run", run.path)
    if method is M.BOUND_MEASURED_DIRECT and run.avg_power_w:
        if "avg_power_w" in pool:
            pool.notes.append(f"measured average power ({run.avg_power_w:.0f} W) replaces the scenario's assumption")
        pool.add("avg_power_w", Quantity.point(run.avg_power_w), "measured run", run.path)
    return Efficiency(kind="measured", basis=run.runs[0].ceilings)


def _transfer_note(e: CostEstimate) -> None:
    """Which efficiency was measured, on what, and how much of each phase's bound it makes."""
    o, x = e.outputs, e.inputs
    word = "efficiency transfer" if e.method == M.BOUND_MEASURED_TRANSFER.name else "efficiency measured on this GPU"
    c, m = x["compute_efficiency"].quantity, x["memory_efficiency"].quantity
    phases = " and ".join(
        f"{o[f'{p}_efficiency'].point:.1%} of the {p} bound" for p in ("decode", "prefill") if f"{p}_efficiency" in o
    )
    note = (
        f"{word}: the cases measured on {e.run.label} reached {c.central:.1%} of its compute ceiling "
        f"({c.what}) and {m.central:.1%} of its memory bandwidth ({m.what}), against {e.efficiency.basis}; "
        f"on {e.bound.deployment.name} on {e.hardware.name} that is {phases}"
        + ("; a CPU figure, not a GPU measurement" if e.run.cpu else "")
    )
    e.notes.insert(0, note)


def _implied(
    e: CostEstimate, deployment: Deployment | None, efficiency: Efficiency, published_hardware: HardwareSpec | None
) -> Efficiency:
    """The efficiency the deployment's published throughput implies against the bound of the
    layout as published, on its own hardware: DeepSeek's H800 figure is read against their H800
    layout, whatever layout or GPU is priced."""
    published = deployment.published if deployment is not None else None
    if published is None:
        return efficiency
    own = e.bound
    if (
        e.bound is None
        or deployment.hardware not in (None, e.hardware.name)
        or e.bound.deployment != dataclasses.replace(deployment, model=e.model.name)
    ):
        own_hw = published_hardware or e.hardware
        own = deployment_bound(e.model.args, e.model.name, own_hw, deployment)
    for phase, value in (
        ("decode", published.decode_tokens_per_s_per_gpu),
        ("prefill", published.prefill_tokens_per_s_per_gpu),
    ):
        if value is not None:
            bound = own.phase(phase).tokens_per_s_per_gpu
            e.outputs[f"implied_{phase}_efficiency"] = Summary.constant(value / bound)
            if value > bound:  # a bound is a ceiling: a figure above it means one of the two is wrong
                e.notes.append(
                    f"the published {phase} throughput ({value:.4g} tokens/s per GPU) is above its bound on "
                    f"{own.hardware} ({bound:.4g}): the bound or the published figure is wrong"
                )
    src = deployment.path.name if deployment.path else deployment.name
    return dataclasses.replace(
        efficiency, implied_by=f"the published throughput in {src}, against its bound on {own.hardware}"
    )
