"""The runnable examples in docs/examples: the PyTorch loop on the CPU, the Hugging Face callback without transformers."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

from meter.results import load_run
from tests.conftest import REPO

EXAMPLES = REPO / "docs" / "examples"


def test_the_pytorch_training_loop_runs_on_the_cpu(tmp_path: Path):
    out = tmp_path / "loop.json"
    env = {"PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, str(EXAMPLES / "pytorch_training_loop.py"), "--steps", "6", "--seq", "32", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "run file:" in r.stdout and "tokens/s" in r.stdout
    job = load_run(out).job
    assert job.source == "api" and len(job.windows) == 6 and job.work.tokens == 6 * 8 * 32
    spec = importlib.util.spec_from_file_location("loop", EXAMPLES / "pytorch_training_loop.py")
    loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loop)
    params = sum(t.numel() for t in loop.build(1024, 128, 4).parameters())
    assert job.work.flops_per_token == 6 * params and job.work.model == "4-layer LM"
    w = job.windows[-1]
    assert w.tokens_per_s == pytest.approx(256 / w.duration_s) and w.energy_j is None  # a CPU: no GPU energy


class _TrainerCallback:
    """What transformers.TrainerCallback is: a base class whose event methods do nothing."""


def test_the_hugging_face_callback_meters_each_step(tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(TrainerCallback=_TrainerCallback))
    spec = importlib.util.spec_from_file_location("hf_trainer_callback", EXAMPLES / "hf_trainer_callback.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    body = [line for line in (EXAMPLES / "hf_trainer_callback.py").read_text().splitlines() if line.strip()]
    code = body[body.index(next(line for line in body if line.startswith("from transformers"))) :]
    assert len(code) <= 14  # the imports and ten lines of callback
    path = tmp_path / "hf.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        callback = module.MeterCallback(tokens_per_step=4096, path=str(path), gpus=[], price_usd_per_gpu_hour=2.0)
    state = types.SimpleNamespace(global_step=0)
    for _ in range(3):  # what Trainer does around each optimizer step
        callback.on_step_begin(None, state, None)
        state.global_step += 1
        callback.on_step_end(None, state, None)
    callback.on_train_end(None, state, None)
    doc = load_run(path)
    assert doc.status == "complete" and doc.job.work.tokens == 3 * 4096
    assert [t.count for t in doc.job.window_totals] == [3]
