"""``meter measure -- CMD`` end to end against the fake NVML driver (scripted power traces)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from meter.analytic import flops as F
from meter.config.models import load_model
from meter.config.pricing import load_prices
from meter.results import load_run
from tests.conftest import REPO, run_meter
from tests.fake_nvml import FakeGpu, Scenario

PY = sys.executable


def measure(env: dict, tmp_path: Path, *args: str, child: str, name: str = "job.json"):
    out = tmp_path / name
    result = run_meter("measure", "-o", str(out), *args, "--", PY, "-c", textwrap.dedent(child), env=env)
    return result, out


def test_energy_follows_the_power_trace_and_output_passes_through(fake_nvml, tmp_path: Path):
    # 300 W and 500 W in turn, 100 ms each: 400 W on average; throttled half the time
    env = fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[300_000, 500_000], throttle=[0, 0x4], memory_used=12 * 2**30)]))
    result, out = measure(
        env,
        tmp_path,
        "--json",
        "--sample-hz",
        "50",
        child="""
            import sys, time
            print("to stdout", flush=True)
            print("to stderr", file=sys.stderr, flush=True)
            time.sleep(2.0)
            sys.exit(7)
        """,
    )
    assert result.returncode == 7, result.stderr  # the child's exit status is meter's
    assert result.stdout.startswith("to stdout\n") and "to stderr" in result.stderr
    printed = json.loads(result.stdout.split("to stdout\n", 1)[1])
    doc = load_run(out)
    job = doc.job
    assert doc.kind == "job" and doc.status == "failed" and job.exit_status == 7 and printed["exit_code"] == 7
    assert printed["job"]["duration_s"] == pytest.approx(job.duration_s)
    assert 2.0 <= job.duration_s < 6.0
    gpu = job.gpus[0]
    w = gpu.telemetry
    assert gpu.name == "NVIDIA H100 80GB HBM3" and gpu.hardware_config == "h100-sxm"
    assert w.energy_method == "counter" and w.energy_j == pytest.approx(400 * w.duration_s, rel=0.06)
    assert w.energy_integrated_j == pytest.approx(w.energy_j, rel=0.06) and w.energy_disagreement < 0.06
    assert w.avg_power_w == pytest.approx(400, rel=0.06) and w.peak_power_w == 500.0
    assert w.throttle_reasons == ["sw_power_cap"] and not w.low_confidence
    assert gpu.peak_memory_used_bytes == 12 * 2**30 and gpu.memory_total_bytes == 85_899_345_920
    assert job.energy_j == w.energy_j and job.avg_utilization_ratio == 1.0
    # dollars: the price table's H100 range (no --price), energy x PUE x $/kWh from its defaults
    table = load_prices()
    c = job.cost
    assert c.gpus == 1 and c.gpu_hours == pytest.approx(job.duration_s / 3600)
    assert c.usd_per_gpu_hour > 0 and "price table" in c.price_source
    assert c.gpu_usd == pytest.approx(c.gpu_hours * c.usd_per_gpu_hour)
    assert c.pue == table.default_pue().pue and c.usd_per_kwh == table.default_electricity().usd_per_kwh
    assert c.energy_usd == pytest.approx(w.energy_j / 3.6e6 * c.pue * c.usd_per_kwh)
    assert c.total_usd == pytest.approx(c.gpu_usd + c.energy_usd)
    assert "Measured job" in result.stderr and "sw_power_cap" in result.stderr
    assert doc.telemetry_timeline is not None and "gpu0" in doc.telemetry_timeline.devices


def test_tokens_from_the_log_give_tokens_per_second_mfu_and_joules_per_token(fake_nvml, tmp_path: Path):
    env = fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[600_000])]))
    child = """
        import time
        for step in range(1, 5):
            print(f"step {step} loss 2.1 tokens={step * 8192:,}", flush=True)
            time.sleep(0.3)
    """
    args = ["--tokens-from-log", r"tokens=([\d,]+)", "--model", "deepseek-v3-tiny", "--seq", "256", "--price", "3"]
    result, out = measure(env, tmp_path, *args, child=child)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("tokens=") == 4  # passed through while being read
    job = load_run(out).job
    w = job.work
    assert w.tokens == 32768 and w.tokens_source == "log"  # a running total: the last value
    assert w.tokens_per_s == pytest.approx(32768 / job.duration_s)
    flops = F.train_flops_per_token(load_model("deepseek-v3-tiny").args, 256).total
    assert w.flops_per_token == pytest.approx(flops)
    assert w.achieved_tflops == pytest.approx(32768 / job.duration_s * flops / 1e12)
    assert w.mfu == pytest.approx(32768 / job.duration_s * flops / 989.4e12) and "h100-sxm" in w.mfu_basis
    assert w.joules_per_token == pytest.approx(job.energy_j / 32768)
    # the counter moves in 100 ms steps (the fake's counter_update_ms): each edge of the job may miss one step,
    # however loaded the machine is when the edges are read
    assert abs(job.energy_j - 600 * job.duration_s) <= 600 * 2 * 0.100
    assert job.cost.usd_per_gpu_hour == 3.0 and job.cost.price_source == "given"
    assert job.cost.gpu_usd == pytest.approx(job.duration_s / 3600 * 3.0)

    summed, out2 = measure(env, tmp_path, "--tokens-from-log", r"tokens=([\d,]+)", "--tokens-aggregate", "sum",
                           child=child, name="sum.json")  # fmt: skip
    assert summed.returncode == 0 and load_run(out2).job.work.tokens == 8192 * (1 + 2 + 3 + 4)


def test_only_the_gpus_cuda_visible_devices_selects_are_metered(fake_nvml, tmp_path: Path, monkeypatch):
    gpus = [FakeGpu(uuid=f"GPU-aaaa{i}000-0000-0000-0000-000000000000", power_mw=[100_000 * (i + 1)]) for i in range(4)]
    gpus[3].mig = True
    env = fake_nvml(Scenario(gpus=gpus))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    cases = [("GPU-aaaa2,0", ["gpu2", "gpu0"]), ("MIG-0123abcd", ["gpu3"]), (None, [f"gpu{i}" for i in range(4)])]
    for visible, keys in cases:
        child_env = {**env, "CUDA_VISIBLE_DEVICES": visible} if visible is not None else env
        child = "import os, time; print(os.environ.get('CUDA_VISIBLE_DEVICES')); time.sleep(1.5)"
        result, out = measure(child_env, tmp_path, child=child, name=f"{visible}.json")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == str(visible)  # the environment reaches the child unchanged
        job = load_run(out).job
        assert [g.key for g in job.gpus] == keys
        for g in job.gpus:  # each GPU's own trace: 100 W x (index + 1), within a counter step
            assert g.telemetry.avg_power_w == pytest.approx(100 * (g.index + 1), rel=0.1)


def _start(env: dict, tmp_path: Path, child: str, out: Path) -> subprocess.Popen:
    ready = tmp_path / "ready"
    code = f"import pathlib\n{textwrap.dedent(child)}"
    process = subprocess.Popen(
        [PY, "-m", "meter", "measure", "-o", str(out), "--", PY, "-c", code, str(ready)],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the child never started"
        time.sleep(0.05)
    return process


HANDLER = """
    import signal, sys, time
    def handler(signo, frame):
        print(f"child got {signal.Signals(signo).name}", flush=True)
        sys.exit(5)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    pathlib.Path(sys.argv[1]).write_text("ready")
    time.sleep(60)
"""


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_reach_the_job_and_the_run_file_is_still_written(fake_nvml, tmp_path: Path, signo):
    env = fake_nvml(Scenario(gpus=[FakeGpu(power_mw=[350_000])]))
    out = tmp_path / "job.json"
    process = _start(env, tmp_path, HANDLER, out)
    time.sleep(1.5)  # long enough for the energy counter's 100 ms steps to matter little
    os.kill(process.pid, signo)  # to meter alone, as `kill` or a container runtime sends it
    stdout, stderr = process.communicate(timeout=60)
    name = signal.Signals(signo).name
    assert f"child got {name}" in stdout, stderr
    assert stdout.count("child got") == 1  # passed on once
    assert process.returncode == 5 and "Traceback" not in stderr
    doc = load_run(out)
    assert doc.status == "interrupted" and doc.job.interrupted and doc.job.exit_status == 5
    assert doc.job.energy_j == pytest.approx(350 * doc.job.duration_s, rel=0.1)


def test_a_job_killed_by_a_signal_exits_as_a_shell_reports_it(fake_nvml, tmp_path: Path):
    env = fake_nvml(Scenario())
    out = tmp_path / "job.json"
    child = "import os, sys, signal, time; pathlib.Path(sys.argv[1]).write_text('r'); time.sleep(60)"
    process = _start(env, tmp_path, child, out)
    os.kill(process.pid, signal.SIGTERM)  # the child keeps SIGTERM's default action: it dies of it
    process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    job = load_run(out).job
    assert job.exit_status == -signal.SIGTERM and job.signal == "SIGTERM" and job.interrupted


def test_terminal_ctrl_c_is_not_sent_twice():
    from meter.measure.child import SI_KERNEL, should_forward

    assert not should_forward(signal.SIGINT, SI_KERNEL)  # the terminal already sent it to the job
    assert should_forward(signal.SIGINT, 0)  # SI_USER: `kill -INT` to meter alone
    assert should_forward(signal.SIGTERM, SI_KERNEL) and should_forward(signal.SIGTERM, 0)


def test_without_nvml_it_measures_time_and_says_energy_is_absent(tmp_path: Path):
    result, out = measure({"LD_LIBRARY_PATH": str(tmp_path)}, tmp_path, "--gpus", "2", "--hardware", "h800-sxm",
                          child="import time; time.sleep(0.4)")  # fmt: skip
    if load_run(out).job.gpus:
        pytest.skip("this machine has a real NVIDIA driver")
    assert result.returncode == 0, result.stderr
    assert "measuring time only (energy absent, not 0)" in result.stderr
    job = load_run(out).job
    assert job.energy_j is None and job.telemetry is None and "libnvidia-ml.so.1" in job.energy_reason
    assert job.duration_s >= 0.4
    assert job.cost.gpus == 2 and job.cost.usd_per_gpu_hour == 2.0  # the price table's H800 price
    assert job.cost.gpu_usd == pytest.approx(2 * job.duration_s / 3600 * 2.0)
    assert job.cost.energy_usd is None and job.cost.total_usd is None  # not 0


def test_a_command_that_cannot_run_exits_as_a_shell_would(tmp_path: Path):
    result = run_meter("measure", "-o", str(tmp_path / "j.json"), "--", "no-such-command-xyz")
    assert result.returncode == 127 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == "meter: error: cannot run 'no-such-command-xyz': command not found"
    assert load_run(tmp_path / "j.json").status == "failed"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--tokens-from-log", "tokens=\\d+"], "needs a group around the number"),
        (["--tokens-from-log", "tokens=(\\d+"], "not a regular expression"),
        (["--tokens", "-5"], "--tokens"),
        (["--price", "nan"], "--price"),
        (["--pue", "0.5"], "--pue"),
        (["--tokens", "5", "--tokens-from-log", "t=(\\d+)"], "two sources of the same count"),
        (["--model", "no-such-model"], "no-such-model"),
        (["--hardware", "no-such-gpu"], "no-such-gpu"),
        ([], "give the command to measure"),
    ],
)
def test_bad_options_are_refused_before_the_job_runs(tmp_path: Path, args, fragment):
    marker = tmp_path / "ran"
    command = [] if not args and fragment.startswith("give") else ["--", PY, "-c", f"open({str(marker)!r}, 'w')"]
    result = run_meter("measure", "-o", str(tmp_path / "j.json"), *args, *command)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr, result.stderr
    assert not marker.exists()


def test_an_unwritable_run_file_is_refused_before_the_job_runs(tmp_path: Path):
    marker = tmp_path / "ran"
    (tmp_path / "dir.json").mkdir()
    result = run_meter("measure", "-o", str(tmp_path / "dir.json"), "--", PY, "-c", f"open({str(marker)!r}, 'w')")
    assert result.returncode == 2 and "is a directory" in result.stderr and not marker.exists()


COUNTING_C = r"""
#include <signal.h>
#include <stdio.h>
#include <time.h>
static volatile sig_atomic_t seen = 0;
static void on_int(int signo) { (void)signo; seen++; }  /* each delivery, none coalesced by a runtime */
int main(int argc, char **argv) {
    struct sigaction sa = {0};
    sa.sa_handler = on_int;
    sigaction(SIGINT, &sa, NULL);
    FILE *f = fopen(argv[1], "w"); fputs("ready", f); fclose(f);
    struct timespec tick = {0, 1000000}, wait = {1, 0};
    while (!seen) nanosleep(&tick, NULL);
    while (nanosleep(&wait, &wait)) {}  /* a second SIGINT, if meter passed the terminal's on, arrives by now */
    printf("child saw %d SIGINT\n", (int)seen);
    fflush(stdout);
    return 10 + seen;
}
"""


def test_ctrl_c_at_a_terminal_reaches_the_job_once(fake_nvml, tmp_path: Path):
    """A real terminal: meter and the job in its foreground process group; ^C written to the pty."""
    import fcntl
    import pty
    import termios

    from tests.conftest import require_executable

    cc = require_executable("cc", "install a C compiler (apt-get install gcc libc6-dev)")
    source, child = tmp_path / "count.c", tmp_path / "count"
    source.write_text(COUNTING_C)
    subprocess.run([cc, "-O1", "-o", str(child), str(source)], check=True)
    env = fake_nvml(Scenario())
    master, slave = pty.openpty()
    out, ready = tmp_path / "job.json", tmp_path / "ready"
    process = subprocess.Popen(
        [PY, "-m", "meter", "measure", "-o", str(out), "--", str(child), str(ready)],
        env={**os.environ, **env},
        cwd=REPO,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the pty becomes the session's terminal
    )
    os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        os.write(master, b"\x03")  # Ctrl-C: the terminal sends SIGINT to its foreground process group
        process.wait(timeout=60)
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    text = output.decode(errors="replace")
    assert "child saw 1 SIGINT" in text, text
    assert process.returncode == 11
    job = load_run(out).job
    assert job.interrupted and load_run(out).status == "interrupted"
