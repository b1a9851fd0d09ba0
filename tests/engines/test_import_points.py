"""meter import inferencex / vllm / sglang: measured serving curves from other tools' files into a points TSV."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from meter.cli.main import main
from meter.engines.bench_points import BenchSetup, bench_points, vllm_sweep_runs
from meter.engines.inferencex import InferenceXFileError, load_inferencex
from meter.engines.points import read_points
from meter.engines.serving import BenchFileError
from meter.errors import UsageError
from tests.engines.formats import inferencex_result, sglang_bench_serving, vllm_bench_serve, write_json, write_jsonl


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


# The benchmark behind inferencex_result(): 120 s, 512,000 input and 128,000 output tokens, median TPOT 25 ms.
OUT_TOK_S, TOTAL_TOK_S = 128_000 / 120, 640_000 / 120


def test_inferencex_single_node_result(tmp_path: Path):
    (p,) = load_inferencex(write_json(tmp_path / "agg_dsr1_sglang.json", inferencex_result()), date="2026-05-17")
    assert (p.hardware, p.framework, p.precision, p.model) == ("h200", "sglang", "fp8", "deepseek-ai/DeepSeek-R1-0528")
    assert (p.disagg, p.tp, p.ep, p.dp_attention, p.spec_method) == (False, 8, 1, False, "none")
    assert (p.isl, p.osl, p.conc, p.date, p.source_id) == (1024, 1024, 64, "2026-05-17", "agg_dsr1_sglang")
    assert p.median_tpot_ms == pytest.approx(25.0) and p.tok_s_user == pytest.approx(40.0)
    assert p.output_tok_s_gpu == pytest.approx(OUT_TOK_S / 8) and p.total_tok_s_gpu == pytest.approx(TOTAL_TOK_S / 8)
    assert "image=lmsysorg/sglang:v0.5.12-cu130" in p.notes and p.gpus == 8


def test_inferencex_multinode_result_keeps_per_decode_gpu_output(tmp_path: Path):
    (p,) = load_inferencex(write_json(tmp_path / "agg.json", inferencex_result(multinode=True)))
    assert (p.disagg, p.tp, p.ep, p.dp_attention) == (True, 8, 8, True)
    assert (p.prefill_tp, p.prefill_ep, p.prefill_dp_attention, p.num_prefill_gpu, p.num_decode_gpu) == (
        8, 8, True, 8, 16,
    )  # fmt: skip
    assert p.gpus == 24 and p.layout == "disagg 1xP(TP8 EP8 DPA) 2xD(TP8 EP8 DPA)"
    # InferenceX: output over the 16 decode GPUs, total over all 24; the system totals come back exactly.
    assert p.output_tok_s == pytest.approx(OUT_TOK_S) and p.total_tok_s == pytest.approx(TOTAL_TOK_S)
    assert p.output_tok_s_gpu_system == pytest.approx(OUT_TOK_S / 24) and p.date is None


def test_inferencex_list_of_points_older_mtp_key_and_environment_strings(tmp_path: Path):
    old = inferencex_result(conc=8, isl="8192", osl="1024")
    del old["spec_decoding"], old["is_multinode"], old["pp"], old["dcp_size"], old["pcp_size"]
    old["mtp"] = "on"
    path = write_json(tmp_path / "collected.json", [inferencex_result(), old])  # type: ignore[arg-type]
    first, second = load_inferencex(path, source_id="IX-test")
    assert (second.conc, second.isl, second.osl, second.spec_method) == (8, 8192, 1024, "mtp")
    assert first.source_id == second.source_id == "IX-test" and "collected.json [1]" in second.notes


BAD_IX = [
    ("missing conc", {"conc": None}, "field 'conc': missing"),
    ("tp a word", {"tp": "eight"}, "field 'tp': expected a whole number"),
    ("dp_attention yes", {"dp_attention": "yes"}, "field 'dp_attention': expected true or false"),
    ("negative throughput", {"output_tput_per_gpu": -1.0}, "field 'output_tput_per_gpu': expected a finite"),
    ("pipeline parallel", {"pp": 2}, "field 'pp': is not 1"),
    ("disagg on one node", {"disagg": True}, "field 'disagg': true on a single-node result"),
    ("interactivity", {"median_intvty": 10.0}, "field 'median_intvty': disagrees with 1 / median_tpot"),
    ("output above total", {"output_tput_per_gpu": 1e6}, "field 'output_tput_per_gpu': more output than total"),
    ("ep above tp", {"ep": 16}, "field 'ep': above tp"),
]


@pytest.mark.parametrize("change,fragment", [b[1:] for b in BAD_IX], ids=[b[0] for b in BAD_IX])
def test_bad_inferencex_result_is_refused(tmp_path: Path, change, fragment):
    path = write_json(tmp_path / "agg.json", inferencex_result(**change))
    with pytest.raises(InferenceXFileError) as info:
        load_inferencex(path)
    assert str(info.value).startswith(f"{path}: ") and fragment in str(info.value), str(info.value)


def test_bad_multinode_result_names_the_decode_field(tmp_path: Path):
    path = write_json(tmp_path / "agg.json", inferencex_result(multinode=True, num_decode_gpu=12))
    with pytest.raises(InferenceXFileError, match="field 'num_decode_gpu': not a multiple of the decode"):
        load_inferencex(path)
    path = write_json(tmp_path / "agg.json", inferencex_result(multinode=True, prefill_hw="h100", decode_hw="h200"))
    with pytest.raises(InferenceXFileError, match="field 'prefill_hw': differs from decode_hw"):
        load_inferencex(path)
    path = write_json(tmp_path / "agg.json", inferencex_result(multinode=True, decode_dp_attention=None))
    with pytest.raises(InferenceXFileError, match="field 'decode_dp_attention': missing"):
        load_inferencex(path)


def _sweep(root: Path) -> Path:
    """A vllm bench sweep serve output: per combination run=<n>.json, summary.json, warmup.json, a failure."""
    for conc in (4, 16, 64):
        comb = root / f"SERVE--BENCH-max_concurrency={conc}"
        comb.mkdir(parents=True)
        runs = []
        for n in (0, 1):
            # the combination's parameters and run_number merged into the bench serve result
            run = vllm_bench_serve(max_concurrency=conc, duration=120.0 + 60 * (conc == 64) + n) | {
                "run_number": n, "tensor_parallel_size": 8, "random_input_len": 1024, "random_output_len": 256,
            }  # fmt: skip
            for key in ("request_throughput", "output_throughput", "total_token_throughput"):
                run.pop(key)  # recomputed below from the new duration
            d = run["duration"]
            run |= {
                "request_throughput": 500 / d,
                "output_throughput": 128_000 / d,
                "total_token_throughput": 640_000 / d,
            }
            write_json(comb / f"run={n}.json", run)
            runs.append(run)
        write_json(comb / "summary.json", runs)  # type: ignore[arg-type]
        write_json(comb / "warmup.json", vllm_bench_serve(max_concurrency=conc, run_number=-1))
    (root / "SERVE--BENCH-max_concurrency=64" / "run=2.failure.json").write_text('{"run_number": 2, "error": "x"}')
    return root


def test_vllm_sweep_directory_gives_one_point_per_run(tmp_path: Path):
    root = _sweep(tmp_path / "sweep")
    runs = vllm_sweep_runs(root)
    assert [r.name for r in runs] == ["run=0.json", "run=1.json"] * 3
    setup = BenchSetup(hardware="h200-sxm", precision="fp8")
    points = [p for r in runs for p in bench_points(r, setup)]
    assert sorted({p.conc for p in points}) == [4, 16, 64] and len(points) == 6
    p = next(p for p in points if p.conc == 64 and "run=1" in p.notes)
    assert (p.tp, p.isl, p.osl, p.framework, p.model, p.date) == (8, 1024, 256, "vllm", "deepseek-ai/DeepSeek-V3", "2026-12-01")  # fmt: skip
    assert p.output_tok_s_gpu == pytest.approx(128_000 / 181 / 8)
    assert p.median_tpot_ms == pytest.approx(42.0 * 0.95) and p.tok_s_user == pytest.approx(1000 / 39.9)


def test_sglang_jsonl_at_several_concurrencies(tmp_path: Path):
    lines = [sglang_bench_serving(max_concurrency=c) for c in (1, 8, 64)]
    lines.append(sglang_bench_serving(max_concurrency=4, dataset_name="sharegpt"))  # random_*_len not the lengths
    path = write_jsonl(tmp_path / "bench.jsonl", lines)
    setup = BenchSetup(hardware="h200-sxm", precision="fp8", model="deepseek-v3", tp=8, ep=8, dp_attention=True)
    points = bench_points(path, setup, "sglang")
    assert [p.conc for p in points] == [1, 8, 64, 4]
    assert (points[0].isl, points[0].osl, points[0].layout, points[0].framework) == (2000, 400, "TP8 EP8 DPA", "sglang")
    assert (points[3].isl, points[3].osl) == (2000, 400)  # means: 2,000,000 / 1,000 and 400,000 / 1,000
    assert points[0].output_tok_s_gpu == pytest.approx(400_000 / 300 / 8) and points[0].median_tpot_ms == 148.0


def test_cli_writes_the_points_file_and_reads_back(tmp_path: Path):
    path = write_jsonl(tmp_path / "b.jsonl", [sglang_bench_serving(max_concurrency=c) for c in (4, 16)])
    out = tmp_path / "points.tsv"
    code, stdout, stderr = cli(
        "import", "sglang", str(path), "--hardware", "h200-sxm", "--tp", "8", "--precision", "fp8",
        "--model", "deepseek-v3", "--date", "2026-12-04", "-o", str(out), "--json",
    )  # fmt: skip
    assert code == 0, stderr
    doc = json.loads(stdout)
    assert doc["points_file"] == str(out) and [p["conc"] for p in doc["points"]] == [4, 16]
    back = read_points(out)
    assert [p.conc for p in back] == [4, 16] and back[0].date == "2026-12-04" and back[0].hardware == "h200-sxm"
    code, stdout, _ = cli("import", "inferencex", str(_ix_dir(tmp_path)), "-o", str(tmp_path / "ix.tsv"))
    assert code == 0 and "2 serving points" in stdout
    assert {p.disagg for p in read_points(tmp_path / "ix.tsv")} == {False, True}
    # --append keeps what the file held: InferenceX's points and the user's own sweep in one file
    code, _, stderr = cli("import", "inferencex", str(tmp_path / "results_bmk"), "-o", str(out), "--append")
    assert code == 0 and "(2 kept, 2 added)" in stderr
    assert [p.framework for p in read_points(out)] == ["sglang", "sglang", "sglang", "dynamo-sglang"]


def _ix_dir(tmp: Path) -> Path:
    d = tmp / "results_bmk"
    d.mkdir()
    write_json(d / "agg_a.json", inferencex_result())
    write_json(d / "agg_b.json", inferencex_result(multinode=True))
    return d


def test_contradictions_and_missing_setup_are_refused(tmp_path: Path):
    run = write_json(tmp_path / "run=0.json", vllm_bench_serve(tensor_parallel_size=8))
    with pytest.raises(UsageError, match="'tensor_parallel_size' is 8 but --tp says 4"):
        bench_points(run, BenchSetup(hardware="h200", precision="fp8", tp=4))
    with pytest.raises(UsageError, match="--gpus 16 with --tp 8"):
        bench_points(run, BenchSetup(hardware="h200", precision="fp8", gpus=16))
    with pytest.raises(UsageError, match="'model_id' is 'deepseek-ai/DeepSeek-V3' but --model says 'x'"):
        bench_points(run, BenchSetup(hardware="h200", precision="fp8", model="x"))
    meta = write_json(tmp_path / "meta.json", vllm_bench_serve())  # --metadata tp=8 wrote "tp": "8"
    (p,) = bench_points(meta, BenchSetup(hardware="h200", precision="fp8"))
    assert p.tp == 8 and p.gpus == 8
    both = write_json(tmp_path / "both.json", vllm_bench_serve(tensor_parallel_size=4))
    with pytest.raises(UsageError, match="field 'tp' is 8 but tensor_parallel_size says 4"):
        bench_points(both, BenchSetup(hardware="h200", precision="fp8"))
    sg = write_jsonl(tmp_path / "s.jsonl", [sglang_bench_serving()])
    with pytest.raises(UsageError, match="does not say the tensor parallel size; give --tp"):
        bench_points(sg, BenchSetup(hardware="h200", precision="fp8", model="m"))
    with pytest.raises(UsageError, match="does not say the model; give --model"):
        bench_points(sg, BenchSetup(hardware="h200", precision="fp8", tp=8))
    unlimited = write_jsonl(tmp_path / "u.jsonl", [sglang_bench_serving(max_concurrency=None)])
    with pytest.raises(
        BenchFileError, match="u.jsonl: field 'max_concurrency': missing: the benchmark ran without --max-concurrency"
    ):
        bench_points(unlimited, BenchSetup(hardware="h200", precision="fp8", tp=8, model="m"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchFileError, match="empty: holds no run=<n>.json files"):
        vllm_sweep_runs(tmp_path / "empty")
