"""Shared fixtures. Tests run on the CPU; GPU tests carry the `gpu` marker and skip without CUDA.

A test that needs a real component (a C compiler, Prometheus, Chromium) calls
:func:`require_component`: without the component it skips on a developer machine but FAILS when
the ``CI`` environment variable is set, so CI can never go green by skipping what it must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _interpret_triton_without_a_gpu() -> None:
    """Without a GPU, Triton kernels run through Triton's interpreter in this test session.

    Triton fixes the mode of its own library functions when it is imported (torch imports it
    early, e.g. with FlopCounterMode), so the variable is set here, before any test module loads.
    """
    if "triton" in sys.modules:
        return
    try:
        import torch

        if torch.cuda.is_available():
            return
    except ImportError:
        pass
    os.environ.setdefault("TRITON_INTERPRET", "1")


_interpret_triton_without_a_gpu()


def require_component(name: str, present: bool, how_to_install: str) -> None:
    """Skip (developer machine) or fail (CI) when a real component the test needs is missing."""
    if present:
        return
    message = f"{name} is missing; {how_to_install}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing component fails, it does not skip)")
    pytest.skip(message)


def require_executable(tool: str, how_to_install: str) -> str:
    path = shutil.which(tool)
    require_component(tool, path is not None, how_to_install)
    return path  # type: ignore[return-value]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def run_meter(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m meter ARGS`` in a subprocess, as a user would run the command."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "meter", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """An empty user config directory with the standard sub-folders."""
    for kind in ("models", "hardware", "pricing", "scenarios", "suites"):
        (tmp_path / "configs" / kind).mkdir(parents=True)
    return tmp_path / "configs"


@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake libnvidia-ml.so.1, compiled once per test session with the system C compiler."""
    require_executable("cc", "install a C compiler (apt-get install gcc libc6-dev)")
    from tests.fake_nvml import build

    return build(tmp_path_factory.mktemp("fake-nvml"))


@pytest.fixture
def fake_nvml(fake_nvml_lib: Path, tmp_path: Path):
    """``fake_nvml(scenario) -> env`` for a subprocess that sees that scenario's GPUs."""
    from tests.fake_nvml import env

    def make(scenario) -> dict[str, str]:
        path = scenario.write(tmp_path / f"scenario-{id(scenario)}.txt")
        return env(fake_nvml_lib, path)

    return make
