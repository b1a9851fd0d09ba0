"""The HTML report, opened in headless Chromium; and `meter compare` against hand-computed ratios."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from meter.report.compare import compare
from tests.conftest import REPO, require_component, run_meter
from tests.cost.test_from_run_and_cli import synthetic_run

FIXTURES = Path(__file__).with_name("fixtures")
RECORDED = FIXTURES / "tiny-cpu-gpu-telemetry.json"
NODE_DIR = REPO / "tests" / "node"
SECTIONS = ["summary", "roofline", "timeline", "training-cost", "serving-cost", "tables", "metadata", "assumptions"]


def open_in_chromium(page: Path, tmp: Path) -> dict:
    """Load a page in Debian's Chromium with the network cut off; console and page errors recorded."""
    chromium = shutil.which("chromium")
    node = shutil.which("node")
    require_component(
        "chromium, node and playwright-core",
        bool(chromium and node) and (NODE_DIR / "node_modules" / "playwright-core").is_dir(),
        "apt-get install chromium nodejs npm, then: npm ci --prefix tests/node",
    )
    shot, result = tmp / f"{page.stem}.png", tmp / f"{page.stem}.json"
    run = subprocess.run(
        [node, str(NODE_DIR / "check-page.mjs"), str(page), str(shot), str(result)],
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=180,
        env={"CHROMIUM": chromium, "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(result.read_text())
    out["screenshot"] = shot
    return out


def test_the_checker_catches_console_errors_and_network_requests(tmp_path: Path):
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>t</title><script>console.error('boom');</script>"
        "<link rel=stylesheet href='https://example.invalid/x.css'></head><body><section id=s>x</section>"
        "</body></html>"
    )
    checked = open_in_chromium(page, tmp_path)
    assert any("boom" in e for e in checked["console_errors"])  # beside the blocked stylesheet's own error
    assert checked["external_requests"] == ["https://example.invalid/x.css"]


@pytest.mark.slow
def test_report_of_recorded_runs_opens_offline_with_every_section(tmp_path: Path):
    gpu_run = synthetic_run(tmp_path / "synthetic-h800.json")
    report, pngs = tmp_path / "report.html", tmp_path / "png"
    r = run_meter("report", str(RECORDED), str(gpu_run), "-o", str(report), "--png-dir", str(pngs), "--samples", "2000")
    assert r.returncode == 0, r.stderr
    checked = open_in_chromium(report, tmp_path)
    assert checked["console_errors"] == [] and checked["page_errors"] == []
    assert checked["external_requests"] == []  # self-contained: nothing fetched
    sections = checked["sections"]
    assert list(sections) == SECTIONS
    assert sections["roofline"]["svgs"] == 2  # one roofline per run
    assert sections["timeline"]["svgs"] == 1  # the recorded run sampled telemetry
    assert sections["training-cost"]["svgs"] == 2 and sections["serving-cost"]["svgs"] == 2
    for name in ("tables", "metadata", "assumptions"):
        assert sections[name]["tables"] >= 2 and sections[name]["text"] > 500, name
    assert checked["screenshot"].stat().st_size > 50_000
    html = report.read_text()
    assert "CPU-derived" in html and "CPU (" in html and "NVIDIA H800" in html
    assert "sw_power_cap" in html  # the recorded telemetry saw throttling
    assert "arXiv 2412.19437" in html  # assumptions carry their sources
    assert len(list(pngs.glob("*.png"))) == 7 and all(p.stat().st_size > 10_000 for p in pngs.glob("*.png"))
    assert oct(report.stat().st_mode & 0o777) != "0o600"


@pytest.mark.slow
def test_report_of_a_measured_job_opens_offline_with_its_section(tmp_path: Path):
    from meter.jsonable import to_jsonable
    from meter.results.atomic import write_json_atomic
    from tests.runs import job_doc

    job = tmp_path / "job.json"
    write_json_atomic(job, to_jsonable(job_doc(hardware="h800-sxm", gpus=8, duration_s=3600)))
    report = tmp_path / "job-report.html"
    r = run_meter("report", str(job), "-o", str(report), "--samples", "2000")
    assert r.returncode == 0, r.stderr
    checked = open_in_chromium(report, tmp_path)
    assert checked["console_errors"] == [] and checked["page_errors"] == [] and checked["external_requests"] == []
    sections = checked["sections"]
    assert list(sections) == ["summary", "job", *SECTIONS[1:]]
    assert sections["job"]["tables"] == 2 and "At the MFU your job achieved" in report.read_text()
    assert sections["training-cost"]["svgs"] == 1  # the scenario at the job's MFU


def test_report_refuses_bad_input(tmp_path: Path):
    r = run_meter("report", str(tmp_path / "missing.json"))
    assert r.returncode == 2 and "missing.json: no such file" in r.stderr and "Traceback" not in r.stderr
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    r = run_meter("report", str(other))
    assert r.returncode == 2 and "not a gpu-cost-meter run file" in r.stderr


def test_report_without_matplotlib_says_how_to_install_it(tmp_path: Path):
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None\n")
    r = run_meter("report", str(RECORDED), "-o", str(tmp_path / "r.html"), env={"PYTHONPATH": f"{blocker}:{REPO}"})
    assert r.returncode == 2 and "gpu-cost-meter[report]" in r.stderr and "Traceback" not in r.stderr


def _doc(cases: dict[str, tuple[float, float, float]], model: str = "m"):
    """A run whose cases have (median s, IQR s, J/token); 100 tokens, 1 TFLOP and 10 GB per call."""
    from meter.results import BenchCase, CaseMetrics, CaseResult, RunDocument, TelemetryWindow, Timing
    from meter.results.document import DeviceInfo
    from meter.results.metadata import utc_now
    from tests.runs import cpu_metadata

    out = []
    for case_id, (median, iqr, jpt) in cases.items():
        timing = Timing(
            n=20,
            median_s=median,
            mean_s=median,
            stdev_s=iqr,
            min_s=median * 0.9,
            max_s=median * 1.1,
            p10_s=median * 0.95,
            p90_s=median * 1.05,
            iqr_s=iqr,
            spread=iqr / median,
        )
        metrics = CaseMetrics(
            time_per_call_s=median,
            time_per_token_s=median / 100,
            tokens_per_s=100 / median,
            flops_per_call=1e12,
            bytes_per_call=1e10,
            achieved_tflops=1.0 / median,
            achieved_gb_s=10.0 / median,
            mfu=0.001 / median,
        )
        window = TelemetryWindow(name=case_id, duration_s=1.0, joules_per_token=jpt)
        spec = BenchCase(model, "ffn", "prefill", seq=100)
        out.append(CaseResult(id=case_id, case=spec, timing=timing, metrics=metrics, telemetry=window))
    device = DeviceInfo(kind="cuda", torch_device="cuda:0", name="G")
    return RunDocument(
        run_id="r", status="complete", started_at=utc_now(), metadata=cpu_metadata(device=device), cases=out
    )


def _write(path: Path, doc) -> None:
    from meter.jsonable import to_jsonable

    path.write_text(json.dumps(to_jsonable(doc)))


A = _doc({"faster": (0.010, 0.0005, 2.0), "same": (0.010, 0.0005, 2.0), "gone": (0.005, 0.0001, 1.0)})
B = _doc({"faster": (0.008, 0.0004, 1.5), "same": (0.0102, 0.0005, 2.0), "new": (0.004, 0.0001, 1.0)})


def test_compare_ratios_by_hand():
    rows = {(r.case, r.metric): r for r in compare(A, B)}
    fast = rows[("faster", "tokens_per_s")]
    assert fast.a == pytest.approx(10_000) and fast.b == pytest.approx(12_500) and fast.ratio == pytest.approx(1.25)
    assert fast.verdict == "better" and not fast.noise
    assert rows[("faster", "time_per_call_s")].ratio == pytest.approx(0.8)
    assert rows[("faster", "time_per_call_s")].verdict == "better"  # lower time is better
    assert rows[("faster", "joules_per_token")].ratio == pytest.approx(0.75)
    same = rows[("same", "tokens_per_s")]
    assert same.ratio == pytest.approx(0.010 / 0.0102) and same.noise and same.verdict == "noise"  # 2% < 5% IQR
    assert (
        rows[("gone", "tokens_per_s")].verdict == "only in A" and rows[("new", "tokens_per_s")].verdict == "only in B"
    )
    slower = compare(B, A)
    assert {(r.case, r.metric): r for r in slower}[("faster", "tokens_per_s")].verdict == "worse"


def test_noise_is_only_what_lies_inside_both_runs_spread():
    # A noisy run (IQR 80% of its median) against a steady one: 20% apart is inside A's spread but not
    # B's, so it is a change; 230x is never noise, however wide the spreads.
    noisy = _doc({"x": (0.010, 0.008, 2.0), "y": (0.010, 0.030, 2.0)})
    steady = _doc({"x": (0.008, 0.0002, 2.0), "y": (0.010 / 230, 0.030, 2.0)})
    rows = {(r.case, r.metric): r for r in compare(noisy, steady)}
    assert rows[("x", "tokens_per_s")].verdict == "better" and not rows[("x", "tokens_per_s")].noise
    huge = rows[("y", "time_per_call_s")]
    assert huge.ratio == pytest.approx(1 / 230) and huge.verdict == "better" and not huge.noise
    both = _doc({"x": (0.0099, 0.0008, 2.0)})
    wide = _doc({"x": (0.010, 0.0008, 2.0)})
    assert all(r.noise for r in compare(both, wide))  # 1% apart, inside both 8% spreads


def test_compare_cli(tmp_path: Path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _write(a, A)
    _write(b, B)
    r = run_meter("compare", str(a), str(b), "--metric", "tokens_per_s")
    assert r.returncode == 0, r.stderr
    assert "1.250x" in r.stdout and "better" in r.stdout and "noise" in r.stdout and "only in A" in r.stdout
    doc = json.loads(run_meter("compare", str(a), str(b), "--json").stdout)
    assert any(
        c["case"] == "faster" and c["metric"] == "mfu" and c["ratio"] == pytest.approx(1.25) for c in doc["comparisons"]
    )
    _write(b, dataclasses.replace(B, cases=[]))
    _write(a, dataclasses.replace(A, cases=[]))
    r = run_meter("compare", str(a), str(b))
    assert r.returncode == 2 and "no measured case in common" in r.stderr
    _write(b, _doc({"faster": (0.008, 0.0004, 1.5)}, model="other"))
    _write(a, A)
    r = run_meter("compare", str(a), str(b))
    assert r.returncode == 2 and "different models (m against other)" in r.stderr and r.stderr.count("\n") == 1


def _serving_points(tmp_path: Path) -> Path:
    from tests.cost.test_serving_frontier_cli import HEADER, ROWS

    path = tmp_path / "points.tsv"
    path.write_text(HEADER + "\n" + "\n".join(ROWS[:3]) + "\n")
    return path


def test_report_draws_the_serving_frontier_against_measured_points(tmp_path: Path):
    report, pngs = tmp_path / "report.html", tmp_path / "png"
    r = run_meter("report", str(RECORDED), "-o", str(report), "--png-dir", str(pngs), "--samples", "0",
                  "--serving-points", str(_serving_points(tmp_path)))  # fmt: skip
    assert r.returncode == 0, r.stderr
    html = report.read_text()
    section = html[html.index('<section id="serving-frontier">') :]
    section = section[: section.index("</section>")]
    assert section.count("<svg") == 1 and "deepseek-v3 on h200-sxm, 1,024/1,024 tokens" in section
    assert "3 measured points; median error of the prediction" in section and "0 above the bound" in section
    assert (pngs / "serving-frontier-0.png").stat().st_size > 10_000
    if shutil.which("chromium") and (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        checked = open_in_chromium(report, tmp_path)
        assert checked["console_errors"] == [] and checked["page_errors"] == [] and checked["external_requests"] == []
        assert checked["sections"]["serving-frontier"]["svgs"] == 1


def test_report_without_points_has_no_frontier_section(tmp_path: Path):
    report = tmp_path / "report.html"
    r = run_meter("report", str(RECORDED), "-o", str(report), "--samples", "0")
    assert r.returncode == 0, r.stderr
    assert '<section id="serving-frontier">' not in report.read_text()


def test_the_frontier_plot_rings_the_point_chosen_for_the_target():
    from types import SimpleNamespace

    from meter.report.plots import serving_frontier

    def point(concurrency: float, user: float, gpu: float) -> SimpleNamespace:
        return SimpleNamespace(
            layout="TP8",
            concurrency=concurrency,
            tokens_per_s_per_user=user,
            output_tokens_per_s_per_gpu=gpu,
            tokens_per_s_per_user_bound=2 * user,
            output_tokens_per_s_per_gpu_bound=2 * gpu,
        )

    points = [point(4, 90.0, 40.0), point(64, 30.0, 240.0)]
    target = SimpleNamespace(tpot_s=0.02, min_tokens_per_s_per_user=None)
    fig = serving_frontier(points, (), target, "t", chosen=points[0])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "chosen: TP8 at concurrency 4" in labels and "target: 50 tok/s/user" in labels
    ring = [c for c in fig.axes[0].collections if c.get_label().startswith("chosen")][0]
    assert ring.get_offsets().tolist() == [[90.0, 40.0]]
    assert not any(
        label.startswith("chosen")
        for label in serving_frontier(points, (), target, "t").axes[0].get_legend_handles_labels()[1]
    )
