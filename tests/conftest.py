"""Shared fixtures. Tests run on the CPU; GPU tests carry the `gpu` marker and skip without CUDA.

On a GPU machine the unmarked tests still measure on the CPU: :func:`run_meter` pins the
benchmarking commands to ``--device cpu`` unless a test names a device, and the torchrun tests
ask for gloo ranks on the CPU. ``pytest -m gpu`` is the GPU suite.

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


def require_module(name: str, how_to_install: str):
    """The module, or skip (developer machine, the GPU image) / fail (CI) at the module level.

    For test modules that need a package of the test extra the GPU image lacks (hypothesis, grpc,
    promql-parser): ``pytest -m gpu`` there still collects, and CI can never skip them."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        pass
    message = f"the Python package {name} is missing; {how_to_install}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI is set: a missing component fails, it does not skip)", pytrace=False)
    pytest.skip(message, allow_module_level=True)


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


def skip_without_cpu_fp8() -> None:
    """Skip a test that runs rowwise fp8 on the CPU where this torch's CPU build cannot (its probe
    fails: torch 2.11 has ``F.scaled_mm`` and no CPU kernel for it). A property of the torch build,
    not a missing component: it skips under CI too."""
    import torch

    from kernels.fp8 import fp8_support

    why = fp8_support(torch.device("cpu"), "rowwise")
    if why:
        pytest.skip(why)


MEASURING_COMMANDS = ("bench", "run", "acceptance")


def run_meter(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``python -m meter ARGS`` in a subprocess, as a user would run the command.

    A measuring command runs on the CPU unless the test names a ``--device``: on a GPU machine an
    unmarked test must not run full-size cases on the GPU.
    """
    if args and args[0] in MEASURING_COMMANDS and "--device" not in args and "--distributed" not in args:
        args = (*args, "--device", "cpu")
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "meter", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=full_env,
        timeout=timeout,
    )


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Ceilings and memory peaks measured by tests go to a directory of the test session, not ~/.cache.

    It holds trusted ceilings of this machine (:func:`tests.runs.seed_ceilings`), so that a test whose
    subject is not the ceilings, and every ``meter`` it starts, spends no time measuring them; a test
    about the ceilings points ``METER_CACHE_DIR`` at a directory of its own."""
    from tests.runs import seed_ceilings

    previous = os.environ.get("METER_CACHE_DIR")
    os.environ["METER_CACHE_DIR"] = str(tmp_path_factory.mktemp("meter-cache"))
    seed_ceilings(Path(os.environ["METER_CACHE_DIR"]))
    yield
    if previous is None:
        os.environ.pop("METER_CACHE_DIR", None)
    else:
        os.environ["METER_CACHE_DIR"] = previous


@pytest.fixture
def seeded_ceilings(tmp_path: Path) -> dict[str, str]:
    """The environment of a ``meter run``/``bench``/``acceptance`` subprocess whose subject is not the
    ceilings: a cache directory holding trusted ceilings of this machine, so that no time goes to
    measuring them (and nothing depends on how fast or how busy the machine is)."""
    from tests.runs import seed_ceilings

    seed_ceilings(tmp_path / "meter-cache")
    return {"METER_CACHE_DIR": str(tmp_path / "meter-cache")}


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
