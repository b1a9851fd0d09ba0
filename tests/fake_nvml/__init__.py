"""Build the fake ``libnvidia-ml.so.1`` (fake_nvml.c) and write the scenarios that drive it.

A process sees the fake driver when started with ``env(lib_dir, scenario_path)``: pynvml's real
ctypes bindings then load it as they would load NVIDIA's library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SOURCE = Path(__file__).with_name("fake_nvml.c")
REPO = Path(__file__).resolve().parents[2]


def build(dest: Path) -> Path:
    """Compile the fake driver into ``dest/libnvidia-ml.so.1`` (soname libnvidia-ml.so.1)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) to build the fake NVML driver")
    dest.mkdir(parents=True, exist_ok=True)
    lib = dest / "libnvidia-ml.so.1"
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,-soname,libnvidia-ml.so.1",
            "-o",
            str(lib),
            str(SOURCE),
            "-lpthread",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dest


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str | None = None
    power_mw: list[int] = field(default_factory=lambda: [300_000])
    power_step_ms: int = 100
    util: list[int] = field(default_factory=lambda: [100])
    mem_util: list[int] = field(default_factory=lambda: [40])
    sm_clock_mhz: list[int] = field(default_factory=lambda: [1980])
    mem_clock_mhz: list[int] = field(default_factory=lambda: [2619])
    temperature_c: list[int] = field(default_factory=lambda: [55])
    throttle: list[int] = field(default_factory=lambda: [0])
    unsupported: list[str] = field(default_factory=list)
    lost_after_calls: int | None = None
    energy_reset_at_ms: int | None = None
    energy_offset_mj: int = 0
    mig: bool = False
    arch: int = 9
    memory_total: int = 85_899_345_920
    memory_used: int = 10 * 2**30
    power_limit_mw: int = 700_000
    # GPM (Hopper and newer, not on MIG) traces in percent, each value lasting power_step_ms
    sm_activity: list[int] = field(default_factory=lambda: [0])
    tensor_activity: list[int] = field(default_factory=lambda: [0])
    dram_bw: list[int] = field(default_factory=lambda: [0])
    xid: list[tuple[int, int]] = field(default_factory=list)  # (ms since load, XID code)
    ecc: tuple[int, int, int, int] = (0, 0, 0, 0)  # corrected/uncorrected volatile, corrected/uncorrected aggregate
    remapped: tuple[int, int, int, int] = (0, 0, 0, 0)  # correctable, uncorrectable, pending, failure
    processes: list[tuple[int, int]] = field(default_factory=list)  # (pid, used bytes)


@dataclass
class Scenario:
    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    driver_version: str = "550.54.15"
    cuda_driver_version: int = 12040
    init_error: int = 0
    counter_update_ms: int = 100

    def write(self, path: Path) -> Path:
        lines = [
            f"driver_version = {self.driver_version}",
            f"cuda_driver_version = {self.cuda_driver_version}",
            f"init_error = {self.init_error}",
            f"counter_update_ms = {self.counter_update_ms}",
        ]
        for i, g in enumerate(self.gpus):
            lines.append(f"[gpu {i}]")
            values = {
                "name": g.name,
                "uuid": g.uuid or f"GPU-fa4e0000-0000-0000-0000-{i:012d}",
                "power_mw": _csv(g.power_mw),
                "power_step_ms": g.power_step_ms,
                "util": _csv(g.util),
                "mem_util": _csv(g.mem_util),
                "sm_clock_mhz": _csv(g.sm_clock_mhz),
                "mem_clock_mhz": _csv(g.mem_clock_mhz),
                "temperature_c": _csv(g.temperature_c),
                "throttle": _csv(g.throttle),
                "mig": int(g.mig),
                "arch": g.arch,
                "memory_total": g.memory_total,
                "memory_used": g.memory_used,
                "power_limit_mw": g.power_limit_mw,
                "energy_offset_mj": g.energy_offset_mj,
            }
            values.update(
                sm_activity=_csv(g.sm_activity),
                tensor_activity=_csv(g.tensor_activity),
                dram_bw=_csv(g.dram_bw),
                ecc_corrected_volatile=g.ecc[0],
                ecc_uncorrected_volatile=g.ecc[1],
                ecc_corrected_aggregate=g.ecc[2],
                ecc_uncorrected_aggregate=g.ecc[3],
                remapped_correctable=g.remapped[0],
                remapped_uncorrectable=g.remapped[1],
                remap_pending=g.remapped[2],
                remap_failure=g.remapped[3],
            )
            if g.xid:
                values["xid"] = ",".join(f"{at}:{code}" for at, code in g.xid)
            if g.processes:
                values["processes"] = ",".join(f"{pid}:{used}" for pid, used in g.processes)
            if g.unsupported:
                values["unsupported"] = ",".join(g.unsupported)
            if g.lost_after_calls is not None:
                values["lost_after_calls"] = g.lost_after_calls
            if g.energy_reset_at_ms is not None:
                values["energy_reset_at_ms"] = g.energy_reset_at_ms
            lines += [f"{k} = {v}" for k, v in values.items()]
        path.write_text("\n".join(lines) + "\n")
        return path


def _csv(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


def env(lib_dir: Path, scenario_path: Path | None) -> dict[str, str]:
    out = {"LD_LIBRARY_PATH": str(lib_dir), "PYTHONPATH": str(REPO)}
    if scenario_path is not None:
        out["FAKE_NVML_SCENARIO"] = str(scenario_path)
    return out


def write_fake_smi(dest: Path) -> Path:
    """An executable ``dest/nvidia-smi`` answering from the fake driver (tests/fake_nvml/smi.py)."""
    dest.mkdir(parents=True, exist_ok=True)
    tool = dest / "nvidia-smi"
    tool.write_text(
        f"#!{sys.executable}\nimport sys\nfrom tests.fake_nvml.smi import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    tool.chmod(0o755)
    return dest


def with_fake_smi(fake_env: dict[str, str], dest: Path) -> dict[str, str]:
    """The fake driver's environment with the fake nvidia-smi first on PATH."""
    return {**fake_env, "PATH": f"{write_fake_smi(dest)}{os.pathsep}{os.environ.get('PATH', '')}"}


def run_python(code: str, fake_env: dict[str, str], timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter that sees the fake driver; it must print one JSON object."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **fake_env},
        cwd=REPO,
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])
