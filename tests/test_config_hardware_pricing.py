"""Hardware and price configs: sources on every figure, exact NVML matching, validated prices."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meter.config.hardware import list_hardware, load_hardware, match_device_name, parse_hardware
from meter.config.paths import ConfigLocator, builtin_config_dir
from meter.config.pricing import load_prices
from meter.errors import ConfigError

REQUIRED = ["h800-sxm", "h100-sxm", "h100-pcie", "h200-sxm", "a100-sxm-80gb", "b200", "cpu"]


def test_required_hardware_configs_exist():
    assert set(REQUIRED) <= {s.name for s in list_hardware()}


@pytest.mark.parametrize("name", [n for n in REQUIRED if n != "cpu"])
def test_every_gpu_figure_has_a_dated_source(name: str):
    spec = load_hardware(name)
    assert spec.peak_flops("bf16") is not None
    figures = [f"peak_tflops.{d}" for d in spec.peak_tflops]
    figures += [
        f
        for f in ("memory_gb", "memory_bandwidth_gb_s", "nvlink_bandwidth_gb_s", "tdp_w")
        if getattr(spec, f) is not None
    ]
    assert figures
    for figure in figures:
        source = spec.source_for(figure)
        assert source is not None and source.date.year >= 2020 and source.source


def test_h800_and_h100_differ_where_they_really_differ():
    h800, h100 = load_hardware("h800-sxm"), load_hardware("h100-sxm")
    assert h800.peak_tflops["bf16"] == h100.peak_tflops["bf16"]  # the same die
    assert h800.nvlink_bandwidth_gb_s == 400 and h100.nvlink_bandwidth_gb_s == 900


@pytest.mark.parametrize(
    ("nvml_name", "expected"),
    [
        ("NVIDIA H800", "h800-sxm"),
        ("NVIDIA H800 80GB HBM3", "h800-sxm"),
        ("nvidia  h800", "h800-sxm"),  # case and spacing do not matter
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200-sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100-sxm-80gb"),
        ("NVIDIA B200", "b200"),
        ("NVIDIA H800 PCIe", None),  # a different board: no silent match to the SXM figures
        ("NVIDIA H100 NVL", None),
        ("NVIDIA H100", None),  # a prefix of two configs' names matches neither
        ("NVIDIA A100-SXM4-40GB", None),
        ("Tesla V100-SXM2-16GB", None),
    ],
)
def test_nvml_names_match_exactly(nvml_name: str, expected: str | None):
    spec = match_device_name(nvml_name, list_hardware())
    assert (spec.name if spec else None) == expected


def test_an_h800_never_gets_h100_figures():
    specs = list_hardware()
    for name in ("NVIDIA H800", "NVIDIA H800 80GB HBM3"):
        assert match_device_name(name, specs).nvlink_bandwidth_gb_s == 400


def _h100_data() -> dict:
    return yaml.safe_load((builtin_config_dir() / "hardware" / "h100-sxm.yaml").read_text())


def test_a_figure_without_a_source_is_refused():
    data = _h100_data()
    data["sources"] = [s for s in data["sources"] if "network_bandwidth_gb_s" not in s["fields"]]
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("h100-sxm.yaml"))
    assert info.value.field == "network_bandwidth_gb_s" and "source" in str(info.value)


def test_a_source_naming_an_unknown_field_is_refused():
    data = _h100_data()
    data["sources"][0]["fields"].append("memroy_gb")
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("h100-sxm.yaml"))
    assert "memroy_gb" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("tdp_w", -700, "greater than 0"),
        ("memory_gb", 0, "greater than 0"),
        ("kind", "tpu", "must be one of"),
    ],
)
def test_bad_hardware_values(field: str, value, fragment: str):
    data = _h100_data()
    data[field] = value
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("h100-sxm.yaml"))
    assert info.value.field == field and fragment in str(info.value)


def test_bad_peak_dtype_and_value():
    data = _h100_data()
    data["peak_tflops"]["int4"] = 1.0
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("h100-sxm.yaml"))
    assert info.value.field == "peak_tflops.int4"
    data = _h100_data()
    data["peak_tflops"]["bf16"] = -1
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("h100-sxm.yaml"))
    assert info.value.field == "peak_tflops" and "-1" in str(info.value)


def test_two_configs_claiming_one_nvml_name_are_refused(config_dir: Path):
    data = _h100_data()
    data["name"] = "my-h100"
    (config_dir / "hardware" / "my-h100.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        list_hardware(ConfigLocator.from_env([config_dir]))
    assert "NVIDIA H100 80GB HBM3" in str(info.value)


def test_price_table_has_the_required_prices():
    table = load_prices()
    h800 = table.prices_for("h800-sxm")
    assert any(p.usd_per_gpu_hour == 2.0 and "DeepSeek" in p.provider for p in h800)
    for gpu in ("h100-sxm", "h200-sxm", "a100-sxm-80gb"):
        assert table.prices_for(gpu), gpu
    for price in table.gpu_prices:
        assert price.source and price.date.year >= 2020 and price.confidence in ("high", "medium", "low")
    assert table.default_electricity().usd_per_kwh > 0 and table.default_pue().pue >= 1.0


def test_a_price_for_an_unknown_gpu_is_refused(config_dir: Path):
    data = yaml.safe_load((builtin_config_dir() / "pricing" / "default.yaml").read_text())
    data["gpu_prices"][1]["gpu"] = "h100"
    (config_dir / "pricing" / "default.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_prices("default", ConfigLocator.from_env([config_dir]))
    assert info.value.field == "gpu_prices[1].gpu" and "'h100'" in str(info.value)


def test_a_bad_tier_is_refused(config_dir: Path):
    data = yaml.safe_load((builtin_config_dir() / "pricing" / "default.yaml").read_text())
    data["gpu_prices"][0]["tier"] = "monthly"
    (config_dir / "pricing" / "default.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_prices("default", ConfigLocator.from_env([config_dir]))
    assert info.value.field == "gpu_prices[0].tier"
