"""The configs are loaded at the edge (meter.cost.configs); the pipelines then read no file."""

from __future__ import annotations

import builtins
import io
import pathlib

import pytest

from meter.config.quantity import Quantity
from meter.config.scenarios import load_scenario
from meter.cost.configs import load_and_estimate_serve, load_and_estimate_train, serving_setting, training_setting
from meter.cost.serving_pipeline import LayoutOverrides, estimate_serve
from meter.cost.training_pipeline import estimate_train


@pytest.fixture
def no_file_reads(monkeypatch):
    """Every way the config loaders open a file raises from here on."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a file was read: {args[:1]}")

    for owner, name in ((builtins, "open"), (io, "open"), (pathlib.Path, "open"), (pathlib.Path, "read_text")):
        monkeypatch.setattr(owner, name, refuse)


def test_a_serving_estimate_on_another_gpu_and_layout_reads_no_file(request):
    scenario = load_scenario("deepseek-v3-day6")
    layout, given = LayoutOverrides(tp=8), {"efficiency": Quantity.point(0.5)}
    expected = load_and_estimate_serve(scenario, overrides=given, hardware="h200-sxm", layout=layout, samples=0)
    setting = serving_setting(scenario, hardware="h200-sxm", layout=layout, overrides=given)
    assert setting.price is not None and setting.published_hardware is not None  # h200: the table's price
    request.getfixturevalue("no_file_reads")
    got = estimate_serve(scenario, setting, overrides=given, layout=layout, samples=0)
    assert {k: v.point for k, v in got.outputs.items()} == {k: v.point for k, v in expected.outputs.items()}
    assert got.method == expected.method and got.notes == expected.notes


def test_a_training_estimate_that_builds_on_another_reads_no_file(request):
    scenario = load_scenario("deepseek-r1")
    expected = load_and_estimate_train(scenario, hardware="h100-sxm", samples=0)
    setting = training_setting(scenario, hardware="h100-sxm")
    assert setting.base is not None and setting.base[0].name == scenario.builds_on
    request.getfixturevalue("no_file_reads")
    got = estimate_train(scenario, setting, samples=0)
    assert {k: v.point for k, v in got.outputs.items()} == {k: v.point for k, v in expected.outputs.items()}
    assert got.base is not None and got.comparisons == expected.comparisons


def test_the_guard_sees_a_config_read(request):
    request.getfixturevalue("no_file_reads")
    with pytest.raises(AssertionError, match="a file was read"):
        load_scenario("deepseek-v3")
