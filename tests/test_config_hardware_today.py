"""Hardware of today (B300, GB200, GB300, MI300X, MI325X, MI355X): every config loads, every figure is sourced,
peaks are positive and ordered, scale-up domains are right, and the price table names only known GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meter.config.hardware import PEAK_DTYPES, list_hardware, load_hardware, match_device_name, parse_hardware
from meter.config.paths import builtin_config_dir
from meter.config.pricing import load_prices
from meter.errors import ConfigError

TODAY = ["b300", "gb200", "gb300", "mi300x", "mi325x", "mi355x"]
NUMERIC = ("memory_gb", "memory_bandwidth_gb_s", "nvlink_bandwidth_gb_s", "scale_up_domain_gpus",
           "network_bandwidth_gb_s", "tdp_w")  # fmt: skip
GPUS = [s.name for s in list_hardware() if s.kind == "gpu"]


def test_every_hardware_config_loads_and_the_new_ones_are_there():
    names = {s.name for s in list_hardware()}
    assert set(TODAY) <= names
    for name in names:
        assert load_hardware(name).name == name


@pytest.mark.parametrize("name", GPUS)
def test_every_gpu_figure_is_positive_and_has_a_dated_source(name: str):
    spec = load_hardware(name)
    figures = {f"peak_tflops.{d}": v for d, v in spec.peak_tflops.items()}
    figures |= {f: getattr(spec, f) for f in NUMERIC if getattr(spec, f) is not None}
    assert "peak_tflops.bf16" in figures
    for figure, value in figures.items():
        assert value > 0, figure
        source = spec.source_for(figure)
        assert source is not None and source.source and source.date.year >= 2020, figure


@pytest.mark.parametrize("name", GPUS)
def test_narrower_dtypes_never_peak_lower(name: str):
    peaks = load_hardware(name).peak_tflops
    order = [peaks[d] for d in ("tf32", "bf16", "fp8", "fp4") if d in peaks]
    assert order == sorted(order)
    assert peaks.get("fp16", peaks["bf16"]) == peaks["bf16"]


@pytest.mark.parametrize("name", TODAY)
def test_todays_parts_carry_memory_links_power_and_domain(name: str):
    spec = load_hardware(name)
    for figure in ("memory_gb", "memory_bandwidth_gb_s", "nvlink_bandwidth_gb_s", "network_bandwidth_gb_s", "tdp_w"):
        assert getattr(spec, figure) is not None, figure
    assert spec.scale_up_domain_gpus == (72 if name.startswith("gb") else 8)
    assert spec.memory_bytes >= 186 * 2**30 and spec.memory_bandwidth_gb_s >= 5000


def test_fp4_where_the_tensor_cores_have_it_and_nowhere_else():
    with_fp4 = {s.name for s in list_hardware() if "fp4" in s.peak_tflops}
    assert with_fp4 == {"b200", "b300", "gb200", "gb300", "mi355x"}
    # Blackwell Ultra's dense fp4 is 1.5x Blackwell's at the same fp8 class (NVIDIA: 15 vs 10 PF per NVL72 GPU)
    assert load_hardware("gb300").peak_tflops["fp4"] == 1.5 * load_hardware("gb200").peak_tflops["fp4"]
    # The MI325X is the MI300X die with more memory: same peaks, 256 vs 192 GB
    mi300x, mi325x = load_hardware("mi300x"), load_hardware("mi325x")
    assert mi300x.peak_tflops == mi325x.peak_tflops and (mi300x.memory_gb, mi325x.memory_gb) == (192, 256)


def test_amd_parts_load_without_nvml_names_and_match_no_nvidia_device():
    specs = list_hardware()
    for name in ("mi300x", "mi325x", "mi355x"):
        assert load_hardware(name).device_names == []
    assert match_device_name("AMD Instinct MI300X", specs) is None
    assert match_device_name("NVIDIA GB200", specs).name == "gb200"
    assert match_device_name("NVIDIA B200", specs).name == "b200"  # GB200 and B200 stay apart


def _data(name: str) -> dict:
    return yaml.safe_load((builtin_config_dir() / "hardware" / f"{name}.yaml").read_text())


def test_fp4_below_fp8_is_refused():
    data = _data("gb300")
    data["peak_tflops"]["fp4"] = 4000.0
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("gb300.yaml"))
    assert info.value.field == "peak_tflops.fp4" and "below peak_tflops.fp8 (5000)" in str(info.value)


def test_scale_up_domain_must_be_positive_and_sourced():
    data = _data("mi355x")
    data["scale_up_domain_gpus"] = 0
    with pytest.raises(ConfigError) as info:
        parse_hardware(data, Path("mi355x.yaml"))
    assert info.value.field == "scale_up_domain_gpus"
    data = _data("mi355x")
    for src in data["sources"]:
        src["fields"] = [f for f in src["fields"] if f != "scale_up_domain_gpus"]
    with pytest.raises(ConfigError, match="scale_up_domain_gpus.*no entry in 'sources'"):
        parse_hardware(data, Path("mi355x.yaml"))


def test_price_table_prices_todays_gpus_with_dates():
    table = load_prices()
    for gpu in ("b200", "gb200", "mi300x", "mi325x"):
        quote = table.rental_quote(gpu)
        assert quote is not None and quote.low > 0, gpu
    assert all(p.date.year >= 2023 and p.source for p in table.gpu_prices)
    assert {p.gpu for p in table.gpu_prices} <= {s.name for s in list_hardware()}
    assert "fp4" in PEAK_DTYPES
