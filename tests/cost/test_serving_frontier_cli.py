"""``meter cost serve MODEL --isl --osl``: the frontier, the pick at a target, validation against a points file, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_meter

# ../shared/reference beside the checkout (the main checkout and the worktrees sit at different depths)
REFERENCE = next(
    (
        p / "shared" / "reference" / "serving-points-h200.tsv"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "reference" / "serving-points-h200.tsv").is_file()
    ),
    Path("absent"),
)
HEADER = (
    "source_id\tmodel\tprecision\thardware\tframework\tspec_method\tdisagg\ttp\tep\tdp_attention\tprefill_tp\t"
    "prefill_ep\tprefill_dp_attention\tnum_prefill_gpu\tnum_decode_gpu\tisl\tosl\tconc\tmedian_tpot_ms\ttok_s_user\t"
    "output_tok_s_gpu\ttotal_tok_s_gpu\tdate\tkind\tnotes"
)
# three of InferenceX's H200 points (serving-points-h200.tsv), and one made up 100x too fast
ROWS = [
    "IX\tDeepSeek-R1-0528\tfp8\th200\tsglang\tnone\tFalse\t8\t1\tFalse\t\t\t\t\t\t1024\t1024\t4\t9.7299\t102.7757\t49.1739\t98.8286\t2026-05-17\tmeasured\t",
    "IX\tDeepSeek-R1-0528\tfp8\th200\tsglang\tnone\tFalse\t8\t1\tFalse\t\t\t\t\t\t1024\t1024\t8\t11.7089\t85.4048\t82.3715\t164.1346\t2026-05-17\tmeasured\t",
    "IX\tDeepSeek-R1-0528\tfp8\th200\tsglang\tmtp\tFalse\t8\t1\tFalse\t\t\t\t\t\t1024\t1024\t16\t16.4362\t60.8412\t119.7600\t240.7949\t2026-05-20\tmeasured\t",
    "IX\tDeepSeek-R1-0528\tfp8\th200\ttrt\tnone\tFalse\t8\t8\tFalse\t\t\t\t\t\t1024\t1024\t4\t10\t100\t4917.39\t9834.78\t2026-05-17\tmeasured\t",
]
SERVE = ["cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--isl", "1024", "--osl", "1024"]


def _points(tmp_path: Path) -> Path:
    path = tmp_path / "points.tsv"
    path.write_text("# four points\n" + HEADER + "\n" + "\n".join(ROWS) + "\n")
    return path


def test_the_frontier_json_has_its_documented_keys():
    r = run_meter(*SERVE, "--tp", "8", "--concurrency", "1,4,64", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [p["concurrency"] for p in doc["frontier"]] == [1, 4, 64]
    for p in doc["frontier"]:
        for key in ("output_tokens_per_s_per_gpu", "tokens_per_s_per_user", "ttft_s", "tpot_s",
                    "output_tokens_per_s_per_gpu_bound", "usd_per_m_output_tokens", "usd_per_m_input_tokens",
                    "joules_per_output_token", "total_tokens_per_s_per_gpu", "layout"):  # fmt: skip
            assert p[key] is not None, key
        assert p["output_tokens_per_s_per_gpu"] <= p["output_tokens_per_s_per_gpu_bound"]
        assert p["layout"] == "TP8" and p["gpus"] == 8
    assert doc["chosen"] is None and doc["validation"] is None
    ranged = json.loads(run_meter(*SERVE, "--tp", "8", "--concurrency", "64", "--price", "1.0..4.0", "--json").stdout)
    p, usd = ranged["frontier"][0], ranged["usd_per_gpu_hour"]
    assert (
        usd == pytest.approx(2.5) and 1.0 < ranged["usd_per_gpu_hour_p10"] < usd < ranged["usd_per_gpu_hour_p90"] < 4.0
    )
    assert p["usd_per_m_output_tokens_p10"] == pytest.approx(
        p["usd_per_m_output_tokens"] * ranged["usd_per_gpu_hour_p10"] / usd
    )
    assert "kernel records" in doc["efficiencies"]["source"]


def test_search_at_a_tpot_target_chooses_a_layout_and_draws_the_curve(tmp_path):
    png = tmp_path / "f.png"
    r = run_meter(*SERVE, "--tpot-ms", "20", "--search", "--plot", str(png), "--json")
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(r.stdout)
    assert {"TP8", "TP8 EP8 DPA", "disagg 8P TP8 EP8 : 8D TP8 EP8 DPA"} <= {p["layout"] for p in doc["frontier"]}
    chosen = doc["chosen"]
    assert chosen["tpot_s"] <= 0.020 and doc["target"]["tpot_s"] == 0.020
    meeting = [p for p in doc["frontier"] if p["tpot_s"] <= 0.020]
    assert chosen["output_tokens_per_s_per_gpu"] == max(p["output_tokens_per_s_per_gpu"] for p in meeting)


def test_against_prices_each_point_at_its_own_setup_and_flags_the_one_above_the_bound(tmp_path):
    r = run_meter(
        "cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--against", str(_points(tmp_path)), "--json"
    )
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["validation"]
    assert len(v["points"]) == 4
    first = v["points"][0]
    assert (first["gpus"], first["isl"], first["osl"], first["concurrency"], first["layout"]) == (
        8,
        1024,
        1024,
        4,
        "TP8",
    )
    assert first["measured_output_tokens_per_s_per_gpu"] == pytest.approx(49.1739)
    assert first["measured_tokens_per_s_per_user"] == pytest.approx(102.7757)
    for key in (
        "predicted_output_tokens_per_s_per_gpu",
        "output_tokens_per_s_per_gpu_bound",
        "predicted_tokens_per_s_per_user",
    ):
        assert first[key] > 0
    assert [p["setup"] for p in v["points_above_bound"]] == ["trt fp8 TP8 EP8 1024/1024"]
    assert 0 < v["median_abs_error"] < 1
    text = run_meter(
        "cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--against", str(_points(tmp_path))
    ).stdout
    assert "ABOVE BOUND" in text and "1 of 4 measured points above the bound: the model is wrong there" in text


def test_the_text_names_the_cheapest_point_meeting_the_target():
    r = run_meter(*SERVE, "--tp", "8", "--concurrency", "1,8,64", "--min-tok-s-user", "50")
    assert r.returncode == 0, r.stderr
    assert "Frontier: deepseek-v3 on h200-sxm, 1,024/1,024 tokens" in r.stdout
    assert "cheapest meeting the target: TP8 at concurrency" in r.stdout


def test_calibrate_from_fits_and_says_how_well(tmp_path):
    r = run_meter(
        *SERVE,
        "--tp",
        "8",
        "--concurrency",
        "4",
        "--calibrate-from",
        str(_points(tmp_path)),
        "--framework",
        "sglang",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    c = doc["calibration"]
    assert c["points"] == 3 and c["median_abs_error"] < 0.25
    assert doc["efficiencies"]["source"].startswith("fitted to 3 points of")


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference points are not in this checkout")
def test_no_h200_reference_point_lies_above_the_bound():
    r = run_meter("cost", "serve", "deepseek-v3", "--hardware", "h200-sxm", "--against", str(REFERENCE), "--json")
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["validation"]
    assert len(v["points"]) == 246 and v["points_above_bound"] == []
    assert v["median_abs_error"] < 1.0  # uncalibrated: within a factor of 2


def test_a_run_of_meters_own_benchmarks_sets_the_efficiencies_it_measured(tmp_path):
    from meter.cost.measured.run import load_measured
    from tests.runs import synthetic_v3_run

    run = synthetic_v3_run(tmp_path / "h200.json", hardware="h200-sxm")
    measured = load_measured(str(run))
    r = run_meter(*SERVE, "--tp", "8", "--concurrency", "4", "--from-run", str(run), "--json")
    assert r.returncode == 0, r.stderr
    e = json.loads(r.stdout)["efficiencies"]
    assert f"measured by {run}" in e["source"]
    for regime, name in (("memory", "memory"), ("compute", "gemm_compute")):
        q = measured.regime_efficiency(regime)
        expected = 0.80 if name == "memory" else 0.78  # the defaults where the run has no such case
        assert e[name] == pytest.approx(min(1.0, q.central) if q is not None else expected)


def test_a_calibration_on_another_gpu_is_carried_over_and_said_so(tmp_path):
    r = run_meter("cost", "serve", "deepseek-v3", "--hardware", "b200", "--isl", "1024", "--osl", "1024", "--tp", "8",
                  "--concurrency", "4", "--calibrate-from", str(_points(tmp_path)), "--framework", "sglang", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["calibration"]["points"] == 3 and doc["efficiencies"]["source"].endswith("on h200-sxm")
    assert any("ran on b200: the fit on h200-sxm is carried over" in n for n in doc["notes"])


def test_a_measured_point_is_priced_even_where_meters_memory_model_would_not_fit_it(tmp_path):
    path = tmp_path / "h100.tsv"  # R1 fp8 on one H100 node: 84 GB of weights a GPU, past meter's 80 GB
    path.write_text(HEADER + "\n" + ROWS[0].replace("\th200\t", "\th100\t") + "\n")
    r = run_meter("cost", "serve", "deepseek-v3", "--hardware", "h100-sxm", "--against", str(path), "--json")
    assert r.returncode == 0, r.stderr
    (point,) = json.loads(r.stdout)["validation"]["points"]
    assert point["output_tokens_per_s_per_gpu_bound"] > point["measured_output_tokens_per_s_per_gpu"]
