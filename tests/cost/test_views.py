"""The typed views of a cost estimate's outputs: one field per output the cost model names."""

from __future__ import annotations

import dataclasses

from meter.config.scenarios import SERVE_OUTPUTS, TRAIN_OUTPUTS
from meter.cost.montecarlo import Summary
from meter.cost.views import ServingCost, TrainingCost


def _names(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_every_output_the_scenarios_may_report_is_a_field():
    assert set(TRAIN_OUTPUTS) <= _names(TrainingCost)
    assert set(SERVE_OUTPUTS) <= _names(ServingCost)


def test_a_view_takes_each_output_and_the_stages_by_name():
    total, hours = Summary.constant(5.0), Summary(3.0, 2.0, 3.0, 4.0, 3.0)
    t = TrainingCost.of({"total_usd": total, "stage_gpu_hours.pre-training": hours, "not_an_output": total})
    assert t.total_usd == total
    assert t.stage_gpu_hours == {"pre-training": hours}
    assert t.mfu is None


def test_a_serving_view_names_each_phases_implied_efficiency():
    d, p = Summary.constant(0.4), Summary.constant(0.6)
    s = ServingCost.of({"implied_decode_efficiency": d, "implied_prefill_efficiency": p})
    assert (s.implied_efficiency("decode"), s.implied_efficiency("prefill")) == (d, p)
