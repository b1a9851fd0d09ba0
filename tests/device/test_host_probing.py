"""What the machine is gets probed in meter/device/; meter/results/ is the contract and probes nothing."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import require_module

grimp = require_module("grimp", "pip install -e '.[test]' (import-linter's import graph)")

RESULTS = Path(__file__).resolve().parents[2] / "meter" / "results"
# What asking the machine takes: processes, sockets, the platform, torch, the GPU library.
PROBES = {"subprocess", "socket", "platform", "torch", "pynvml", "shutil"}


def test_results_never_reaches_the_device_layer():
    graph = grimp.build_graph("meter")
    assert not graph.chain_exists(importer="meter.results", imported="meter.device", as_packages=True)


def test_results_imports_no_probe():
    found = []
    for path in sorted(RESULTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in PROBES]
    assert found == []


def test_host_answers_in_the_contracts_types(monkeypatch):
    from meter.device.host import command_line, git_info, host_info, software_info
    from meter.results.document import GitInfo, HostInfo, SoftwareInfo

    monkeypatch.setenv("METER_GIT_SHA", "0123abc")
    assert git_info() == GitInfo(sha="0123abc", dirty=None, source="METER_GIT_SHA")
    assert isinstance(host_info(), HostInfo) and host_info().cpu
    assert isinstance(software_info(import_torch=False), SoftwareInfo)
    assert isinstance(command_line(), list)
