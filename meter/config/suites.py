"""Benchmark suites: ``configs/suites/NAME.yaml``, a model and a list of case grids.

Each grid maps axes to a value or a list of values; every combination is a case. Axes:
``layers`` (attn, mla, gqa, dsa, moe, ffn), ``phase`` (train, prefill, decode), ``batch``, ``seq``,
``context``, ``tokens_per_expert``, ``dtype`` (bf16, fp16, fp32), ``fp8`` (rowwise, blockwise),
``ep``, ``routing`` (learned, uniform, skew), ``skew``, ``form`` (absorbed, naive, fused), ``compile``
(true: torch.compile the eager decode forms).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from meter import domains as D
from meter.config.paths import ConfigLocator
from meter.config.schema import INTERNAL, build_dataclass, check_name_matches_file, read_yaml
from meter.domains import Phase
from meter.errors import ConfigError

LayerName = Literal["attn", "mla", "gqa", "dsa", "moe", "ffn"]


@dataclass(frozen=True, kw_only=True)
class Grid:
    layers: list[LayerName] | None = None
    phase: list[Phase] | None = None
    batch: list[int] | None = field(default=None, metadata=D.BATCH.metadata())
    seq: list[int] | None = field(default=None, metadata=D.SEQ.metadata())
    context: list[int] | None = field(default=None, metadata=D.CONTEXT.metadata())
    tokens_per_expert: list[int] | None = field(default=None, metadata=D.TOKENS_PER_EXPERT.metadata())
    dtype: list[Literal["bf16", "fp16", "fp32"]] | None = None
    fp8: list[Literal["rowwise", "blockwise"] | None] | None = None
    ep: list[int] | None = field(default=None, metadata=D.EP.metadata())
    routing: list[Literal["learned", "uniform", "skew"]] | None = None
    skew: list[float] | None = field(default=None, metadata=D.SKEW.metadata())
    form: list[Literal["absorbed", "naive", "fused"]] | None = None
    compile: list[bool] | None = None

    def axes(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True, kw_only=True)
class Suite:
    name: str
    description: str
    model: str
    device: Literal["cpu", "gpu", "any"] = "any"
    grids: list[Grid]
    path: Path | None = field(default=None, metadata=INTERNAL, compare=False)


def load_suite(name_or_path: str, locator: ConfigLocator | None = None) -> Suite:
    locator = locator or ConfigLocator.from_env()
    path = locator.find("suites", name_or_path)
    data = read_yaml(path)
    if isinstance(data, Mapping) and isinstance(data.get("grids"), list):
        # A grid axis may be written as one value or a list; the dataclass takes lists.
        data = {
            **data,
            "grids": [
                {k: (v if isinstance(v, list) else [v]) for k, v in g.items()} if isinstance(g, Mapping) else g
                for g in data["grids"]
            ],
        }
    suite = build_dataclass(Suite, data, path=path)
    check_name_matches_file(suite.name, path)
    if not suite.grids:
        raise ConfigError(path, "grids", "a suite needs at least one grid")
    for i, grid in enumerate(suite.grids):
        ep = grid.ep or []
        if any(e > 1 for e in ep) and grid.layers and "moe" not in grid.layers:
            raise ConfigError(path, f"grids[{i}].ep", "only MoE layers have expert parallelism", ep)
    return dataclasses.replace(suite, path=path)


def list_suites(locator: ConfigLocator | None = None) -> dict[str, Path]:
    return (locator or ConfigLocator.from_env()).names("suites")
