"""``pytest -m gpu`` collects on the GPU image: with every package the image lacks unimportable, the
same GPU tests are collected as here, and nothing errors (CI runs this; the image runs the GPU tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.gpu_image import blocked_modules, write_blocker

pytestmark = pytest.mark.slow


def _collect_gpu(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "gpu", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )


def _ids(out: str) -> list[str]:
    return sorted(line for line in out.splitlines() if "::" in line and not line.startswith(("ERROR", "SKIPPED")))


def test_the_gpu_tests_collect_with_only_the_gpu_images_packages(tmp_path: Path):
    blocked = blocked_modules()
    for extra in ("hypothesis", "grpc", "promql_parser", "matplotlib", "google"):
        try:
            __import__(extra)
        except ImportError:
            continue
        assert extra in blocked, extra  # installed here, not on the image: must be blocked
    assert "torch" not in blocked and "yaml" not in blocked and "pytest" not in blocked

    here = _collect_gpu({**os.environ, "PYTHONPATH": str(REPO)})
    assert here.returncode == 0, here.stdout[-3000:] + here.stderr[-2000:]
    expected = _ids(here.stdout)
    assert len(expected) >= 15, here.stdout[-2000:]

    block = write_blocker(tmp_path / "image")
    env = {k: v for k, v in os.environ.items() if k != "CI"}  # the GPU box is not CI: it skips what it lacks
    env.update(PYTHONPATH=f"{block}{os.pathsep}{REPO}", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    check = subprocess.run(
        [sys.executable, "-c", "import hypothesis"], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    if "hypothesis" in blocked:
        assert check.returncode != 0 and "halted" in check.stderr  # the blocker really blocks
    image = _collect_gpu(env)
    assert image.returncode == 0 and "error" not in image.stdout.lower(), image.stdout[-3000:] + image.stderr[-2000:]
    assert _ids(image.stdout) == expected
