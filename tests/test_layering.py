"""Structural rules the import-linter cannot see: run documents are read only through meter/results/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# Keys that only a run document has: indexing anything by them outside meter/results/ reads a run as a dict.
RUN_DOCUMENT_KEYS = {
    "cases",
    "projections",
    "telemetry_timeline",
    "schema_version",
    "communication",
    "stragglers",
    "time_per_call_s",
    "time_per_token_s",
    "median_s",
}


def _subscripts_by_run_keys(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if node.slice.value in RUN_DOCUMENT_KEYS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} [{node.slice.value!r}]")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in RUN_DOCUMENT_KEYS:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .get({node.args[0].value!r})")
    return found


def test_no_module_outside_results_indexes_a_run_document_by_string_key():
    offenders = []
    for path in sorted((REPO / "meter").rglob("*.py")):
        if "results" not in path.relative_to(REPO / "meter").parts:
            offenders += _subscripts_by_run_keys(path)
    assert offenders == [], "read run files through meter.results (typed): " + "; ".join(offenders)


def test_the_check_sees_a_dict_read(tmp_path: Path):
    probe = REPO / "meter" / "_layering_probe.py"
    probe.write_text('def f(doc):\n    return doc["cases"], doc.get("projections")\n')
    try:
        assert len(_subscripts_by_run_keys(probe)) == 2
    finally:
        probe.unlink()


@pytest.mark.parametrize("package", ["kernels"])
def test_kernels_is_a_leaf(package):
    for path in (REPO / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            assert not any(n == "meter" or n.startswith("meter.") for n in names), path


def _cost_cycles() -> list[str]:
    """Each pair of meter.cost modules that import each other, directly or through other modules."""
    import grimp

    graph = grimp.build_graph("meter", "kernels")
    cost = sorted(m for m in graph.modules if m == "meter.cost" or m.startswith("meter.cost."))
    found = []
    for importer in cost:
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if imported.startswith("meter.cost.") and imported != importer:
                back = graph.find_shortest_chain(importer=imported, imported=importer)
                if back is not None:
                    found.append(" -> ".join((importer, *back)))
    return found


def test_no_import_cycle_inside_cost():
    cycles = _cost_cycles()
    assert cycles == [], "import cycles inside meter/cost/: " + "; ".join(cycles)


def test_the_cycle_check_sees_a_cycle():
    a, b = REPO / "meter" / "cost" / "_probe_a.py", REPO / "meter" / "cost" / "_probe_b.py"
    a.write_text("def f():\n    from meter.cost import _probe_b\n\n    return _probe_b\n")
    b.write_text("import meter.cost._probe_a\n")
    try:
        assert any("_probe_a" in c and "_probe_b" in c for c in _cost_cycles())
    finally:
        a.unlink()
        b.unlink()
