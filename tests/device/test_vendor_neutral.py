"""Only the NVIDIA backend package names NVML: a second vendor's backend joins without edits elsewhere.

An AST check over meter/: no module outside ``meter/device/nvidia/`` imports pynvml or carries "nvml"
in an identifier (names, attributes, functions, classes, arguments, keywords, imports) or in a
string that is used as a name (a key, a choice, a module path). Old names kept so that existing
files, scripts and dashboards keep working are listed below, each with where it is documented.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

METER = Path(__file__).resolve().parents[2] / "meter"
BACKEND = METER / "device" / "nvidia"
# Generated gRPC stubs of the kubelet's API: not ours to rename.
GENERATED = METER / "device" / "podresources"

# (module, name) pairs outside the backend that keep "nvml" on purpose.
ALLOWED = {
    # docs/configs.md: the hardware YAML key's old name, read as an alias of device_names
    ("config/hardware.py", "nvml_names"),
    # docs/cli-json.md: meter hardware --json still writes the old key beside device_names
    ("cli/commands/catalog.py", "nvml_names"),
    # docs/telemetry.md: --telemetry nvml, the old name of --telemetry gpu
    ("cli/benchrun.py", "nvml"),
    # docs/cli-json.md: meter doctor --json's section on the GPU library and its version
    ("cli/commands/doctor.py", "nvml"),
    ("cli/commands/doctor.py", "nvml_version"),
    # docs/operations.md: the Prometheus series, kept so dashboards and alerts keep working
    ("exporter/collector.py", "meter_nvml_up"),
    # docs/measure.md (python -m meter.measure.overhead): its JSON keys; issue 22 moves the tool to scripts/
    ("measure/overhead.py", "nvml"),
    ("measure/overhead.py", "nvml_ring_empty"),
    ("measure/overhead.py", "nvml_ring_full"),
}
NAME_LIKE = re.compile(r"[A-Za-z_][\w.]*")


def _names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.alias):
        return [node.name, node.asname or ""]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and NAME_LIKE.fullmatch(node.value):
        return [node.value]  # a key, a choice, a module path; prose ("NVML cannot start") is not a name
    return []


def _is_vendor(name: str, node: ast.AST) -> bool:
    # Identifiers in any case (NvmlSession); strings in the lower case of keys and choices, not labels
    return "nvml" in (name if isinstance(node, ast.Constant) else name.lower())


def vendor_names(root: Path = METER) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.is_relative_to(BACKEND) or path.is_relative_to(GENERATED):
            continue
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for name in _names(node):
                if _is_vendor(name, node) and (rel, name) not in ALLOWED:
                    found.append(f"{rel}:{node.lineno}: {name}")
    return found


def test_nothing_outside_the_nvidia_backend_names_nvml():
    assert vendor_names() == []


def test_the_check_sees_an_import_an_identifier_and_a_name_string(tmp_path: Path):
    (tmp_path / "leak.py").write_text(
        "import pynvml\nfrom meter.device.nvidia.nvml import NvmlSession\n"
        "def match_nvml_name(x): return x\nsource = 'nvml'\nprint('NVML cannot start', 'NVML')\n"
    )
    assert sorted(vendor_names(tmp_path)) == [
        "leak.py:1: pynvml",
        "leak.py:2: NvmlSession",
        "leak.py:2: meter.device.nvidia.nvml",
        "leak.py:3: match_nvml_name",
        "leak.py:4: nvml",
    ]


def test_every_allowed_old_name_is_still_there():
    """An allow-list entry whose name is gone would let the next leak in under its cover."""
    present = set()
    for rel, name in ALLOWED:
        path = METER / rel
        if path.exists() and any(name in _names(n) for n in ast.walk(ast.parse(path.read_text()))):
            present.add((rel, name))
    moved = {(rel, name) for rel, name in ALLOWED if not (METER / rel).exists()}
    assert present | moved == ALLOWED


def test_old_hardware_key_nvml_names_is_read_and_giving_both_is_refused():
    import pytest
    import yaml

    from meter.config.hardware import load_hardware, match_device_name, parse_hardware
    from meter.errors import ConfigError

    data = yaml.safe_load((METER.parent / "configs" / "hardware" / "h100-sxm.yaml").read_text())
    names = data.pop("device_names")
    old = parse_hardware({**data, "nvml_names": names}, None)
    assert old.device_names == names == load_hardware("h100-sxm").device_names
    assert match_device_name(names[0], [old]) is old
    with pytest.raises(ConfigError, match="nvml_names.*old name of device_names"):
        parse_hardware({**data, "nvml_names": names, "device_names": names}, None)


def test_each_backend_owns_its_variables(monkeypatch):
    from meter.device import nvidia
    from meter.device.gpu import Selection, kubelet_resource_prefixes, visible_devices_variables

    assert visible_devices_variables() == [nvidia.VISIBLE_DEVICES_VARIABLE] == ["CUDA_VISIBLE_DEVICES"]
    assert kubelet_resource_prefixes() == nvidia.KUBELET_RESOURCE_PREFIXES == ("nvidia.com/",)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1")
    assert Selection().visible == "GPU-1"


def test_telemetry_source_nvml_is_the_old_name_of_gpu():
    import argparse

    from meter.cli.benchrun import add_telemetry_options

    p = argparse.ArgumentParser()
    add_telemetry_options(p)
    assert p.parse_args(["--telemetry", "nvml"]).telemetry == "gpu" == p.parse_args(["--telemetry", "gpu"]).telemetry
