"""The fused MLA decode kernel compiled ahead of time for sm_90 (H100/H200) with the installed
Triton and its ptxas, no GPU needed: a cubin, no register spills at the shapes ``meter acceptance``
runs, and shared memory within what an sm_90 block may use (227 KiB). The script that compiles is
tests/kernels/aot_sm90.py (a process of its own: this session runs Triton in its interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, require_component, require_module

pytestmark = pytest.mark.slow

# The GPU image's Triton (the version meter acceptance compiles with there). Measured with it: 241
# registers, 0 spills, 144 KiB at the acceptance shape. Triton 3.9 (what a fresh CPU machine gets)
# allots 255 registers and spills 168 bytes there: said, as an expected failure, until the kernel
# or its plan is tuned on a GPU.
IMAGE_TRITON = (3, 6)


def test_the_fused_decode_compiles_for_sm90_without_spills_at_the_acceptance_shapes(tmp_path: Path):
    require_module("triton", "pip install -e '.[triton]'")
    from tests.kernels.aot_sm90 import SM90_SHARED_BYTES, ptxas

    require_component("ptxas", ptxas() is not None, "Triton's wheel ships one (triton/backends/nvidia/bin)")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(REPO)) if p)  # this session's Triton
    env.update(PYTHONPATH=path, TRITON_CACHE_DIR=str(tmp_path / "triton-cache"))
    r = subprocess.run(
        [sys.executable, "-m", "tests.kernels.aot_sm90"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=540,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    shapes = {row["shape"] for row in rows}
    assert {s for s in shapes if s.startswith("acceptance")} and {s for s in shapes if s.startswith("default plan")}
    for row in rows:
        assert row["cubin_bytes"] > 0, row
        assert 0 <= row["shared_bytes"] <= SM90_SHARED_BYTES, row
        assert 0 < row["registers"] <= 255, row
    spilled = [row for row in rows if row["shape"].startswith("acceptance") and row["spill_bytes"]]
    import triton

    version = tuple(int(x) for x in triton.__version__.split(".")[:2])
    if spilled and version != IMAGE_TRITON:
        pytest.xfail(f"Triton {triton.__version__} spills at the acceptance shape: {spilled[0]}")
    assert not spilled, spilled
