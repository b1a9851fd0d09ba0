"""The `meter` command: listings, `flops --json` keys, `doctor`, and one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meter.cli.main import main
from meter.config.paths import builtin_config_dir
from tests.conftest import run_meter


def run_json(capsys, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_flops_json_has_the_documented_keys(capsys):
    r = run_json(capsys, "flops", "deepseek-v3")
    for key in (
        "total_params",
        "active_params",
        "train_flops_per_token",
        "prefill_flops_per_token",
        "decode_flops_per_token",
        "kv_cache_bytes_per_token",
        "decode_bytes_per_token",
    ):
        assert isinstance(r[key], (int, float)), key
    assert r["kv_cache_bytes_per_token"] == 70272
    assert r["train_flops_per_token"] == pytest.approx(250e9, rel=0.03)
    assert r["inputs"] == {"seq_len": 4096, "context_len": 4096, "batch": 1, "dtype": "bf16"}


def test_flops_options_change_the_numbers(capsys):
    base = run_json(capsys, "flops", "deepseek-v3")
    longer = run_json(capsys, "flops", "deepseek-v3", "--seq", "8K", "--context", "16384", "--dtype", "fp8")
    assert longer["train_flops_per_token"] > base["train_flops_per_token"]
    assert longer["decode_flops_per_token"] > base["decode_flops_per_token"]
    assert longer["kv_cache_bytes_per_token"] == base["kv_cache_bytes_per_token"] / 2


def test_flops_accepts_a_path(capsys, tmp_path: Path):
    data = yaml.safe_load((builtin_config_dir() / "models" / "deepseek-v3-tiny.yaml").read_text())
    data["name"] = "copy"
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(data))
    assert run_json(capsys, "flops", str(path))["model"] == "copy"


def test_listings(capsys):
    models = run_json(capsys, "models")["models"]
    assert {m["name"] for m in models} >= {"deepseek-v3", "llama-3.1-405b"}
    hardware = run_json(capsys, "hardware")["hardware"]
    assert next(h for h in hardware if h["name"] == "h800-sxm")["nvlink_bandwidth_gb_s"] == 400
    prices = run_json(capsys, "prices", "--gpu", "h800-sxm")
    assert [p["usd_per_gpu_hour"] for p in prices["gpu_prices"]] == [2.0]
    for argv in (["models"], ["hardware"], ["prices"], ["flops", "deepseek-v3-tiny"]):
        assert main(argv) == 0
        assert capsys.readouterr().out.strip()


def test_doctor_reports_why_nvml_is_unavailable(capsys):
    r = run_json(capsys, "doctor")
    assert r["python"]["version"] and "torch" in r and "tools" in r
    if not r["nvml"]["available"]:
        assert r["nvml"]["reason"]  # exactly why, never a bare failure
    assert main(["doctor"]) == 0
    assert "NVML" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["flops", "deepseek-v4"], "did you mean 'deepseek-v3'"),
        (["flops", "deepseek-v3", "--seq", "0"], "--seq"),
        (["flops", "deepseek-v3", "--dtype", "int3"], "--dtype"),
        (["flops", "/no/such/file.yaml"], "no such config file"),
        (["flops", "deepseek-v3", "--config-dir", "/no/such/dir"], "/no/such/dir"),
        (["nonsense"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2_no_traceback(argv, fragment):
    result = run_meter(*argv)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_config_file_names_file_field_and_value(tmp_path: Path):
    data = yaml.safe_load((builtin_config_dir() / "models" / "deepseek-v3.yaml").read_text())
    data["name"] = "broken"
    data["n_limited_groups"] = 12
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "broken.yaml").write_text(yaml.safe_dump(data))
    result = run_meter("flops", "broken", "--config-dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert "broken.yaml" in line and "n_limited_groups" in line and "12" in line


def test_a_foreign_kernels_package_is_named_with_the_fix(tmp_path: Path):
    foreign = tmp_path / "kernels"
    foreign.mkdir()
    (foreign / "__init__.py").write_text("raise ImportError('this is some other kernels package')\n")
    # Run from tmp_path so that its `kernels` comes first on sys.path, as an installed one would.
    result = run_meter(
        "models", cwd=tmp_path, env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]) + ":" + str(tmp_path)}
    )
    assert result.returncode == 2, result.stderr
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert str(foreign) in line and "pip uninstall kernels" in line


def test_every_source_folder_is_a_package_the_wheel_ships():
    """A folder without __init__.py is left out of a non-editable install (the Docker images)."""
    from setuptools import find_packages

    from tests.conftest import REPO

    shipped = set(find_packages(str(REPO), include=["meter*", "kernels*"]))
    folders = {str(p.parent.relative_to(REPO)).replace("/", ".") for p in REPO.glob("meter/**/*.py")}
    folders |= {str(p.parent.relative_to(REPO)).replace("/", ".") for p in REPO.glob("kernels/**/*.py")}
    assert folders <= shipped, folders - shipped
