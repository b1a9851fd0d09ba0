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


def _subscripts_by_run_keys(path: Path, keys: set[str] = RUN_DOCUMENT_KEYS) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if node.slice.value in keys:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} [{node.slice.value!r}]")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            if node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .get({node.args[0].value!r})")
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and node.left.value in keys:
            if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.left.value!r} in")
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


# The arithmetic of the cost model and the pipelines around it take typed objects: no module here
# loads a config or a file (meter.cost.configs does, at the edge, for the CLI, the report and the API).
COST_ARITHMETIC = [
    "training_formula",
    "serving_formula",
    "serving_step",
    "frontier",
    "serving_fit",
    "layout",
    "ep_comm",
    "montecarlo",
    "inputs",
    "methods",
    "result",
    "training_pipeline",
    "serving_pipeline",
    "views",
    "measured/job",
    "measured/bench",
    "measured/spread",
    "measured/serving_points",
]
LOADERS = ("load_", "list_", "deployments_for", "price_input")


def _loads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module in ("meter.config.paths", "meter.results.load", "meter.cost.configs"):
                found.append(f"{path.name}:{node.lineno} from {node.module}")
            found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith(LOADERS)]
        if isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name == "meter.config.paths"]
    return found


@pytest.mark.parametrize("module", COST_ARITHMETIC)
def test_the_cost_arithmetic_reads_no_file(module):
    assert _loads(REPO / "meter" / "cost" / f"{module}.py") == []


def test_the_load_check_sees_a_loader():
    assert len(_loads(REPO / "meter" / "cost" / "configs.py")) >= 4


def _cost_output_keys() -> set[str]:
    """Every output a cost estimate has: the typed views' fields are its vocabulary."""
    import dataclasses

    from meter.cost.views import ServingCost, TrainingCost

    return {f.name for cls in (TrainingCost, ServingCost) for f in dataclasses.fields(cls)}


def test_no_module_outside_cost_indexes_cost_outputs_by_string_key():
    keys = _cost_output_keys()
    offenders = []
    for path in sorted((REPO / "meter").rglob("*.py")):
        if path.relative_to(REPO / "meter").parts[0] != "cost":
            offenders += _subscripts_by_run_keys(path, keys)
    assert offenders == [], "read cost outputs through TrainingCost/ServingCost (meter.cost.views): " + "; ".join(
        offenders
    )


def test_the_cost_output_check_sees_a_dict_read():
    probe = REPO / "meter" / "_layering_probe.py"
    probe.write_text('def f(e):\n    return e.outputs["total_usd"], e.outputs.get("gpus_needed"), "mfu" in e.outputs\n')
    try:
        assert len(_subscripts_by_run_keys(probe, _cost_output_keys())) == 3
    finally:
        probe.unlink()
