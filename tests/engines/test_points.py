"""Serving points files: InferenceX's published H200 points read cell by cell, written back, refused when broken."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meter.engines.points import (
    COLUMNS,
    PointsFileError,
    ServingPoint,
    hardware_config_name,
    read_points,
    write_points,
)
from meter.errors import OutputError
from tests.conftest import REPO

# ../shared/reference beside the checkout (CI); a worktree under /work/wt/<branch> finds it one level further up.
_CANDIDATES = [REPO.parent / "shared" / "reference", REPO.parent.parent / "shared" / "reference"]
REFERENCE = next(
    (d / "serving-points-h200.tsv" for d in _CANDIDATES if (d / "serving-points-h200.tsv").is_file()), None
)
# Skipped on a developer machine without it; in CI (the CI variable set) its absence fails the tests.
needs_reference = pytest.mark.skipif(
    REFERENCE is None and not os.environ.get("CI"), reason="../shared/reference/serving-points-h200.tsv not here"
)


@needs_reference
def test_inferencex_h200_points_are_read_with_typed_cells():
    points = read_points(REFERENCE)
    assert len(points) == 246
    first = points[0]
    # The first row, as published: SGLang TP8 fp8 1k/1k at concurrency 4 on one H200 node.
    assert (first.source_id, first.model, first.precision, first.hardware) == (
        "IX-API-2026-06-14", "DeepSeek-R1-0528", "fp8", "h200",
    )  # fmt: skip
    assert (first.framework, first.spec_method, first.disagg, first.tp, first.ep, first.dp_attention) == (
        "sglang", "none", False, 8, 1, False,
    )  # fmt: skip
    assert (first.prefill_tp, first.prefill_ep, first.prefill_dp_attention) == (None, None, None)
    assert (first.num_prefill_gpu, first.num_decode_gpu) == (None, None)
    assert (first.isl, first.osl, first.conc) == (1024, 1024, 4)
    assert (first.median_tpot_ms, first.tok_s_user) == (9.7299, 102.7757)
    assert (first.output_tok_s_gpu, first.total_tok_s_gpu, first.date, first.kind) == (
        49.1739, 98.8286, "2026-05-17", "measured",
    )  # fmt: skip
    assert first.notes.startswith("InferenceX prod API capture") and "image=lmsysorg/sglang" in first.notes
    assert first.gpus == 8 and first.prefill_gpus == 0 and first.layout == "TP8"
    assert first.tpot_s == pytest.approx(0.0097299) and first.output_tok_s == pytest.approx(8 * 49.1739)
    assert first.input_tok_s == pytest.approx(8 * (98.8286 - 49.1739))
    assert first.output_tok_s_gpu_system == first.output_tok_s_gpu

    disagg = [p for p in points if p.disagg]
    assert len(disagg) == 40 and all(p.framework.startswith("dynamo-") for p in disagg)
    # dynamo-trt, 8k/1k, conc 9: one TP8 EP8 prefill worker and seven TP8 EP8 decode workers, 64 GPUs in all.
    (p,) = [
        p for p in disagg if (p.isl, p.osl, p.conc, p.num_decode_gpu, p.median_tpot_ms) == (8192, 1024, 9, 56, 10.9793)
    ]
    assert (p.prefill_tp, p.prefill_ep, p.prefill_dp_attention, p.num_prefill_gpu) == (8, 8, False, 8)
    assert p.gpus == 64 and p.prefill_gpus == 8 and p.decode_gpus == 56
    assert p.layout == "disagg 1xP(TP8 EP8) 7xD(TP8 EP8)"
    # InferenceX divides the output by the decode GPUs only: 10.9301 x 56 output tok/s; the total over all 64.
    assert p.output_tok_s == pytest.approx(10.9301 * 56) and p.output_tok_s_gpu_system == pytest.approx(
        10.9301 * 56 / 64
    )
    assert p.input_tok_s / p.output_tok_s == pytest.approx(8192 / 1024, rel=0.01)
    for q in disagg:  # every disaggregated row: inputs / outputs = isl / osl within 2% under that reading
        assert q.input_tok_s / q.output_tok_s == pytest.approx(q.isl / q.osl, rel=0.02)
    assert {p.spec_method for p in points} == {"none", "mtp"}
    assert {(p.isl, p.osl) for p in points} == {(1024, 1024), (1024, 8192), (8192, 1024)}
    # The points of one curve share a setup: far fewer setups than points.
    assert len({p.setup for p in points}) < len(points) / 3


@needs_reference
def test_points_written_and_read_back_are_the_same(tmp_path: Path):
    points = read_points(REFERENCE)
    out = tmp_path / "sub" / "points.tsv"
    write_points(points, out, comment="copied from the reference")
    assert out.read_text().startswith("# copied from the reference\n" + "\t".join(COLUMNS) + "\n")
    assert read_points(out) == points


def _point(**overrides) -> ServingPoint:
    values = dict(
        source_id="test", model="DeepSeek-R1-0528", precision="fp8", hardware="h200", framework="sglang",
        spec_method="none", disagg=False, tp=8, ep=1, dp_attention=False, prefill_tp=None, prefill_ep=None,
        prefill_dp_attention=None, num_prefill_gpu=None, num_decode_gpu=None, isl=1024, osl=1024, conc=4,
        median_tpot_ms=10.0, tok_s_user=100.0, output_tok_s_gpu=50.0, total_tok_s_gpu=100.0, date="2026-12-01",
        kind="measured", notes="",
    )  # fmt: skip
    return ServingPoint(**(values | overrides))  # type: ignore[arg-type]


def test_free_text_with_tabs_stays_on_its_row_and_floats_keep_their_digits(tmp_path: Path):
    p = _point(notes="a\tb\nc", tok_s_user=1000 / 10.0, output_tok_s_gpu=1 / 3 * 100)
    write_points([p], tmp_path / "p.tsv")
    (back,) = read_points(tmp_path / "p.tsv")
    assert back.notes == "a b c" and back.output_tok_s_gpu == pytest.approx(100 / 3, rel=1e-9)


def test_a_contradictory_point_is_not_written(tmp_path: Path):
    with pytest.raises(PointsFileError, match="prefill_tp.*aggregated"):
        write_points([_point(), _point(prefill_tp=8)], tmp_path / "p.tsv")
    assert not (tmp_path / "p.tsv").exists()
    with pytest.raises(OutputError, match="is a directory"):
        write_points([_point()], tmp_path)


def _good_text() -> str:
    from meter.engines.points import format_points

    disagg = _point(
        disagg=True, tp=8, ep=8, dp_attention=True, prefill_tp=8, prefill_ep=8, prefill_dp_attention=False,
        num_prefill_gpu=8, num_decode_gpu=16, framework="dynamo-sglang",
    )  # fmt: skip
    return "# two points\n" + format_points([_point(), disagg])


def _cells(line: int, column: str, value: str):
    """Set one cell of the good file (line numbers count the comment and the header)."""

    def edit(text: str) -> str:
        lines = text.splitlines()
        header = lines[1].split("\t")
        cells = lines[line - 1].split("\t")
        cells[header.index(column)] = value
        lines[line - 1] = "\t".join(cells)
        return "\n".join(lines) + "\n"

    return edit


BROKEN = [
    ("tp not a number", _cells(3, "tp", "eight"), ("line 3, column tp", "whole number", "'eight'")),
    ("tp zero", _cells(3, "tp", "0"), ("line 3, column tp", "at least 1", "'0'")),
    ("fractional conc", _cells(3, "conc", "4.5"), ("column conc", "'4.5'")),
    ("bool spelled yes", _cells(3, "disagg", "yes"), ("column disagg", "True or False", "'yes'")),
    ("NaN throughput", _cells(3, "output_tok_s_gpu", "nan"), ("column output_tok_s_gpu", "finite", "'nan'")),
    ("negative tpot", _cells(3, "median_tpot_ms", "-3"), ("column median_tpot_ms", "above 0", "'-3'")),
    ("text in a float", _cells(4, "total_tok_s_gpu", "fast"), ("line 4, column total_tok_s_gpu", "'fast'")),
    ("empty model", _cells(3, "model", ""), ("column model", "empty")),
    ("bad date", _cells(3, "date", "5/12/2026"), ("column date", "YYYY-MM-DD", "'5/12/2026'")),
    ("two-word framework", _cells(3, "framework", "sg lang"), ("column framework", "one word")),
    ("disagg without prefill", _cells(4, "prefill_tp", ""), ("line 4, column prefill_tp", "disaggregated")),
    ("aggregated with prefill", _cells(3, "num_prefill_gpu", "8"), ("column num_prefill_gpu", "aggregated", "8")),
    ("decode GPUs not workers", _cells(4, "num_decode_gpu", "12"), ("column num_decode_gpu", "multiple", "12")),
    ("ep above tp", _cells(3, "ep", "16"), ("line 3, column ep", "above tp", "16")),
    ("output above total", _cells(3, "output_tok_s_gpu", "500"), ("column output_tok_s_gpu", "than total tokens")),
    ("interactivity vs tpot", _cells(3, "tok_s_user", "50"), ("column tok_s_user", "1000 / median_tpot_ms", "50")),
    ("short row", lambda t: t.rstrip("\n").rsplit("\t", 3)[0] + "\n", ("line 4", "cells where the header has 25")),
    ("unknown column", lambda t: t.replace("notes", "remarks"), ("line 2 (header)", "unknown column", "'remarks'")),
    ("missing column", lambda t: t.replace("\tnotes", "").replace("\t\n", "\n"), ("missing column 'notes'",)),
    ("repeated column", lambda t: t.replace("kind\tnotes", "kind\tkind"), ("column given twice", "'kind'")),
    ("comments only", lambda t: "# nothing\n", ("holds no header line",)),
    ("header only", lambda t: "\n".join(t.splitlines()[:2]) + "\n", ("holds no points",)),
]


@pytest.mark.parametrize("edit,fragments", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_points_file_is_refused_naming_line_column_and_value(tmp_path: Path, edit, fragments):
    good = tmp_path / "good.tsv"
    good.write_text(_good_text())
    assert len(read_points(good)) == 2
    bad = tmp_path / "bad.tsv"
    bad.write_text(edit(_good_text()))
    with pytest.raises(PointsFileError) as info:
        read_points(bad)
    message = str(info.value)
    assert message.startswith(str(bad)) and "\n" not in message and info.value.exit_code == 2
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@needs_reference
def test_a_broken_copy_of_the_reference_names_its_line(tmp_path: Path):
    lines = REFERENCE.read_text().splitlines()
    lines[40] = lines[40].replace("\tmeasured\t", "\tmeasured\tx\t")
    bad = tmp_path / "copy.tsv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(PointsFileError, match=r"copy.tsv: field 'line 41': has 26 cells where the header has 25"):
        read_points(bad)


def test_points_name_their_hardware_config():
    from meter.config.hardware import list_hardware

    names = [s.name for s in list_hardware()]
    cases = {"h200": "h200-sxm", "h200-sxm": "h200-sxm", "h100-pcie": "h100-pcie", "b200-cw-1": "b200",
             "b200-dgxc": "b200", "mi355x-amds": "mi355x", "gb200": "gb200", "GB300": "gb300", "tpu-v5": None}  # fmt: skip
    assert {hw: hardware_config_name(hw, names) for hw in cases} == cases
