"""Random inputs inside each input's domain never divide by zero (hypothesis): training and serving."""

from __future__ import annotations

import math

from tests.conftest import require_module

require_module("hypothesis", "pip install -e '.[test]' (random inputs for the cost model)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from meter.config.deployments import load_deployment  # noqa: E402
from meter.config.hardware import load_hardware  # noqa: E402
from meter.config.models import load_model  # noqa: E402
from meter.config.quantity import Quantity  # noqa: E402
from meter.config.scenarios import INPUT_DOMAINS, SERVE_INPUTS, STAGE_DOMAIN, TRAIN_INPUTS  # noqa: E402
from meter.cost.ep_comm import EpShape  # noqa: E402
from meter.cost.layout import deployment_bound  # noqa: E402
from meter.cost.montecarlo import evaluate  # noqa: E402
from meter.cost.serve import ServeContext, serve_cost  # noqa: E402
from meter.cost.train import StagePlan, TrainContext, train_cost  # noqa: E402
from meter.domains import Domain  # noqa: E402


def _values(d: Domain) -> st.SearchStrategy[float]:
    """Values of a domain, its edges (where allowed) and values right next to them included."""
    low = d.low if d.low is not None else -1e12
    high = d.high if d.high is not None else 1e12
    edges = [v for v in (low, high) if d.problem(v) is None]
    near = [v for v in (math.nextafter(low, math.inf), math.nextafter(high, -math.inf), 1e-300) if d.problem(v) is None]
    inside = st.floats(low, high, exclude_min=not d.low_inclusive, exclude_max=not d.high_inclusive, allow_nan=False)
    return st.one_of(st.sampled_from(edges + near), inside) if edges + near else inside


def _inputs(names) -> st.SearchStrategy[dict[str, float]]:
    return st.fixed_dictionaries({n: _values(INPUT_DOMAINS[n]) for n in names})


V3 = load_model("deepseek-v3").args
EP = EpShape(hidden=V3.dim, top_k=8, n_moe_layers=59)
BOUND = deployment_bound(V3, "deepseek-v3", load_hardware("h800-sxm"), load_deployment("deepseek-v3-day6"))


def _evaluated(model, x: dict[str, float]) -> None:
    """The model through the Monte Carlo's central evaluation: no exception, only finite outputs kept."""
    out = evaluate(model, {k: Quantity.point(v) for k, v in x.items()}, samples=0)
    assert all(math.isfinite(s.point) for s in out.values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    x=_inputs(TRAIN_INPUTS),
    tokens=_values(STAGE_DOMAIN),
    hours=_values(STAGE_DOMAIN),
    rate=st.sampled_from(["mfu", "achieved_tflops", "compute_mfu", "measured_efficiency"]),
    ep=st.booleans(),
)
def test_no_training_input_inside_its_domain_divides_by_zero(x, tokens, hours, rate, ep):
    ctx = TrainContext(
        stages=[
            StagePlan("pre", "tokens", flops_per_token=2.5e11, measured_work_s=1e-3),
            StagePlan("rl", "gpus_hours", gpus=512),
        ],
        peak_flops=989.4e12,
        rate=rate,
        cluster_gpus=2048,
        pretraining="pre",
        ep=EP if ep and rate != "mfu" else None,
    )
    _evaluated(lambda v: train_cost(v, ctx), {**x, "stage.pre.tokens": tokens, "stage.rl.hours": hours})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=_inputs(SERVE_INPUTS), rate=st.sampled_from(["throughput", "efficiency", "regimes", "bound"]))
def test_no_serving_input_inside_its_domain_divides_by_zero(x, rate):
    _evaluated(lambda v: serve_cost(v, ServeContext(rate=rate, bound=BOUND)), x)
