"""No import circle in meter/ or kernels/: between modules, or between meter's packages.

The layer contract in pyproject.toml (import-linter) forbids lower layers importing higher ones;
it says nothing about modules of one package importing each other, or packages of one layer.
This test does: every import statement counts, those inside functions included (a lazy import
hides a circle, it does not remove it), those under ``if TYPE_CHECKING`` not (they never run).
"""

from __future__ import annotations

import pytest

from tests.conftest import require_module

grimp = require_module("grimp", "pip install -e '.[test]' (import-linter's import graph)")

# Circles that may stand, each the set of modules (or packages) of one circle. Empty: issue 22 removed
# the last ones (meter/cost/'s estimate circle, device <-> results); a new entry needs a reason.
ALLOWED: list[frozenset[str]] = []


def _circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("meter", "kernels", exclude_type_checking_imports=True, cache_dir=None)


def _module_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def _package_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    """Imports between meter's packages (meter.cost, meter.device, ...; its top modules count as their own)."""

    def package(module: str) -> str | None:
        parts = module.split(".")
        return ".".join(parts[:2]) if parts[0] == "meter" and len(parts) > 1 else None

    edges: dict[str, set[str]] = {}
    for module, imported in _module_edges(graph).items():
        source = package(module)
        if source is None:
            continue
        edges.setdefault(source, set())
        for other in imported:
            target = package(other)
            if target is not None and target != source:
                edges[source].add(target)
    return edges


def _all_circles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    return _circles(_module_edges(graph)) + _circles(_package_edges(graph))


def _describe(graph: grimp.ImportGraph, circle: frozenset[str]) -> str:
    first = sorted(circle)[0]
    others = sorted(circle - {first})
    if first in graph.modules:
        way = [graph.find_shortest_chain(first, o) for o in others[:1]]
        back = [graph.find_shortest_chain(others[0], first)] if others else []
        return f"{sorted(circle)}: {' -> '.join(way[0] or ())} and back {' -> '.join(back[0] or ())}"
    return str(sorted(circle))


def test_the_circle_finder_finds_circles_and_only_them():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}}
    assert _circles(edges) == [frozenset({"a", "b", "c"})]


def test_no_import_circle_in_meter_or_kernels(graph):
    unexpected = [c for c in _all_circles(graph) if c not in ALLOWED]
    assert not unexpected, "import circles:\n" + "\n".join(_describe(graph, c) for c in unexpected)
