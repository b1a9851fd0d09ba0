"""The edge of the cost model: the configs an estimate reads, loaded by name, and the estimate run on them.

The pipelines (:mod:`meter.cost.training_pipeline`, :mod:`meter.cost.serving_pipeline`) and the
formulas take typed objects and read no file; the CLI, the report, ``meter run`` and the exporter
load a scenario's model, hardware, deployment and price here and pass them in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meter.config.deployments import Deployment, deployments_for, load_deployment
from meter.config.hardware import load_hardware
from meter.config.models import list_models, load_model
from meter.config.paths import ConfigLocator
from meter.config.pricing import load_prices
from meter.config.quantity import Quantity
from meter.config.scenarios import Scenario, load_scenario
from meter.cost.ep_comm import MeasuredLinks
from meter.cost.inputs import Input, price_given
from meter.cost.measured.bench import BenchPrice
from meter.cost.measured.run import MeasuredRun
from meter.cost.montecarlo import Coupling
from meter.cost.result import DEFAULT_SAMPLES, CostEstimate
from meter.cost.serving_pipeline import LayoutOverrides, ServingSetting, estimate_serve
from meter.cost.training_pipeline import TrainingSetting, estimate_train
from meter.errors import UsageError

SINGLE_GPU = "single-gpu"
NO_LAYOUT = LayoutOverrides()


def price_input(hardware: str, tier: str | None, locator: ConfigLocator | None) -> Input | None:
    """The price table's rental price for a GPU: one price, or the log-uniform range over its providers.

    The table's own lookup (:meth:`meter.config.pricing.PriceTable.rental_quote`, shared with the
    exporter) keeps only prices dated within 18 months of the table's version when there are any.
    """
    quote = load_prices(locator=locator).rental_quote(hardware, tier)
    if quote is None:
        return None
    low, high = quote.low, quote.high
    q = Quantity.point(low) if low == high else Quantity("loguniform", low=low, high=high)
    return Input(
        "usd_per_gpu_hour",
        q,
        "USD",
        "rental price per GPU-hour",
        "price table",
        quote.describe(),
        quote.latest,
        quote.confidence,
    )


def training_setting(
    scenario: Scenario,
    *,
    hardware: str | None = None,
    tier: str | None = None,
    overrides: Mapping[str, Quantity] = {},
    locator: ConfigLocator | None = None,
) -> TrainingSetting:
    """The model, GPU and price a training scenario is costed with, and the scenario it builds on."""
    locator = locator or ConfigLocator.from_env()
    model = load_model(scenario.model, locator)
    hw = load_hardware(hardware or scenario.hardware, locator)
    price = None if price_given(scenario, hw.name, tier, overrides) else price_input(hw.name, tier, locator)
    base = None
    if scenario.builds_on:
        base_scenario = load_scenario(scenario.builds_on, locator)
        base = (base_scenario, training_setting(base_scenario, locator=locator))
    return TrainingSetting(model, hw, price, tuple(list_models(locator)), base, tier)


def serving_setting(
    scenario: Scenario,
    *,
    hardware: str | None = None,
    tier: str | None = None,
    layout: LayoutOverrides = NO_LAYOUT,
    overrides: Mapping[str, Quantity] = {},
    locator: ConfigLocator | None = None,
) -> ServingSetting:
    """The model, GPU, deployment (and the GPU its published throughput is for) and price of a serving scenario."""
    locator = locator or ConfigLocator.from_env()
    model = load_model(scenario.model, locator)
    hw = load_hardware(hardware or scenario.hardware, locator)
    named = (layout.deployment or scenario.deployment) is not None
    deployment = choose_deployment(scenario, layout, locator, required=True)
    published_hw = None
    if deployment is not None and deployment.hardware not in (None, hw.name):
        published_hw = load_hardware(deployment.hardware, locator)
    price = None if price_given(scenario, hw.name, tier, overrides) else price_input(hw.name, tier, locator)
    return ServingSetting(model, hw, deployment, named, published_hw, price, tier)


def choose_deployment(
    scenario: Scenario, layout: LayoutOverrides, locator: ConfigLocator, *, required: bool
) -> Deployment | None:
    """``--deployment``, else the scenario's, else (when a bound is needed) the one written for the
    model or the single-GPU layout."""
    name = layout.deployment or scenario.deployment
    if name is None and required:
        written = deployments_for(scenario.model, locator)
        name = written[0] if written else SINGLE_GPU
    if name is None:
        return None
    d = load_deployment(name, locator)
    if d.model is not None and d.model != scenario.model:
        raise UsageError(f"deployment '{d.name}' serves {d.model}, not {scenario.model}")
    return d


def load_and_estimate_train(
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
    couplings: Iterable[Coupling] = (),
) -> CostEstimate:
    """:func:`~meter.cost.training_pipeline.estimate_train` on the configs the scenario names."""
    setting = training_setting(scenario, hardware=hardware, tier=tier, overrides=overrides, locator=locator)
    return estimate_train(
        scenario, setting, overrides=overrides, run=run, samples=samples, seed=seed, comm=comm, couplings=couplings
    )


def load_and_estimate_serve(
    scenario: Scenario,
    *,
    overrides: Mapping[str, Quantity] = {},
    run: MeasuredRun | None = None,
    hardware: str | None = None,
    tier: str | None = None,
    batch: int | None = None,
    context: int | None = None,
    layout: LayoutOverrides = NO_LAYOUT,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    locator: ConfigLocator | None = None,
    couplings: Iterable[Coupling] = (),
) -> CostEstimate:
    """:func:`~meter.cost.serving_pipeline.estimate_serve` on the configs the scenario names."""
    setting = serving_setting(
        scenario, hardware=hardware, tier=tier, layout=layout, overrides=overrides, locator=locator
    )
    return estimate_serve(
        scenario,
        setting,
        overrides=overrides,
        run=run,
        batch=batch,
        context=context,
        layout=layout,
        samples=samples,
        seed=seed,
        couplings=couplings,
    )


def bench_price(*, price: float | None, hardware: str | None, tier: str | None, locator) -> BenchPrice:
    """``--price``, or the price table's for ``--hardware`` (its central value over providers)."""
    if price is not None:
        return BenchPrice(price, "--price", hardware)
    if hardware is None:
        raise UsageError("give --price USD (per GPU-hour) or --hardware NAME of the GPUs the server ran on")
    spec = load_hardware(hardware, locator)
    found = price_input(spec.name, tier, locator)
    if found is None:
        raise UsageError(
            f"no {tier + ' ' if tier else ''}rental price for {spec.name} in the price table; give --price"
        )
    q = found.quantity
    spread = "" if q.is_point else f"central of {q.describe()} USD/GPU-hour; "
    return BenchPrice(q.central, f"{spread}{found.source}", spec.name)
