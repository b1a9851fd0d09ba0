"""Valid run documents for tests: a real CPU run file (the report fixture) and minimal typed pieces."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from meter.results.document import GitInfo, HostInfo, MethodInfo, RunMetadata, SoftwareInfo
from meter.results.records import TimingSettings

FIXTURES = Path(__file__).parent / "report" / "fixtures"
TINY_RUN = FIXTURES / "tiny-cpu-gpu-telemetry.json"  # a version-1 run of the tiny model (cases, projections, timeline)


def tiny_run_dict() -> dict[str, Any]:
    """The fixture run as plain JSON values, migrated to the current version (a fresh copy each call)."""
    from meter.jsonable import to_jsonable
    from meter.results.load import load_run

    return copy.deepcopy(to_jsonable(load_run(TINY_RUN)))


def write_run(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def cpu_metadata(**overrides: Any) -> RunMetadata:
    """The least a run file's metadata holds: a CPU device, software, git, host and method."""
    from meter.results.document import DeviceInfo

    fields = dict(
        device=DeviceInfo(kind="cpu", torch_device="cpu", name="test CPU", hardware_config="cpu"),
        software=SoftwareInfo(meter="test", torch="test"),
        git=GitInfo(),
        host=HostInfo(hostname="test"),
        method=MethodInfo(
            timer="wall-clock",
            statistic="median",
            settings=TimingSettings(),
            inputs="random",
            cuda_graphs=False,
            flops="analytic",
            cpu_run=True,
        ),
    )
    fields.update(overrides)
    return RunMetadata(**fields)


def make_ceilings(copy_bytes_per_s: float = 3.0e12, gemm: dict[str, float] | None = None):
    from meter.results.document import Ceilings, CeilingsMethod

    return Ceilings(
        device_key="test",
        copy_bytes_per_s=copy_bytes_per_s,
        gemm_flops_per_s=gemm or {"bf16": 800e12},
        measured_at="2026-11-22T00:00:00+00:00",
        method=CeilingsMethod(copy="test", gemm="test", timer="test", settings=TimingSettings()),
    )


def seed_ceilings(cache_dir: Path, *, copy_bytes_per_s: float = 1e12, gemm_flops_per_s: float = 1e14) -> Path:
    """Write trusted CPU ceilings (this machine, measured idle) into ``cache_dir``, for the tests whose
    subject is not the ceilings: a command then spends no time measuring them. The rates are far above
    what a CPU reaches, so that no case goes past them (which would drop them from the cache)."""
    from meter.bench import ceilings as C
    from meter.config.hardware import list_hardware
    from meter.device.select import select_device
    from meter.jsonable import to_jsonable
    from meter.results.atomic import write_json_atomic
    from meter.results.document import CeilingsLoad

    cpu = select_device("cpu", list_hardware())
    ceilings = dataclasses.replace(
        make_ceilings(copy_bytes_per_s, {d: gemm_flops_per_s for d in ("fp32", "bf16", "fp16", "fp8")}),
        device_key=C.device_key(cpu),
        machine=C.current_machine(cpu),
        load=CeilingsLoad(cpu_count=os.cpu_count() or 1, loadavg_1m=0.0, others_busy_cpus=0.0, loaded=False),
    )
    path = cache_dir / "ceilings" / f"{C.device_key(cpu)}.json"
    write_json_atomic(path, to_jsonable(ceilings))
    return path


def ok_case(
    case,
    *,
    per_call_s: float,
    tokens: int,
    flops: float,
    bytes_per_call: float = 1e6,
    spread: float = 0.02,
    telemetry=None,
    hardware=None,
):
    """A measured case with consistent timing and metrics (mfu against ``hardware``'s peak; None without one)."""
    from meter.bench.metrics import case_metrics
    from meter.results.records import CaseResult, Timing

    timing = Timing(
        n=10,
        median_s=per_call_s,
        mean_s=per_call_s,
        stdev_s=per_call_s * spread,
        min_s=per_call_s * (1 - spread),
        max_s=per_call_s * (1 + 2 * spread),
        p10_s=per_call_s * (1 - spread),
        p90_s=per_call_s * (1 + spread),
        iqr_s=per_call_s * spread,
        spread=spread,
    )
    metrics = case_metrics(
        median_s=per_call_s,
        flops_per_call=flops,
        bytes_per_call=bytes_per_call,
        tokens_per_call=tokens,
        dtype=case.dtype,
        fp8=bool(case.fp8),
        hardware=hardware,
        ceilings=None,
    )
    return CaseResult(id=case.id, case=case, timing=timing, metrics=metrics, telemetry=telemetry)


DEVICE_NAMES = {"h800-sxm": "NVIDIA H800", "h100-sxm": "NVIDIA H100 80GB HBM3", "h200-sxm": "NVIDIA H200"}


def synthetic_v3_run(path: Path, *, hardware: str = "h800-sxm", kind: str = "cuda", spread: float = 0.02) -> Path:
    """A run of DeepSeek-V3's layers written through the typed classes: training at 1 ms per token for the
    layers, prefill at 0.2 ms, decode at batch 128 and context 4096 at 0.5 ms, 600 W throughout."""
    from meter.analytic import flops as F
    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.jsonable import to_jsonable
    from meter.results import BenchCase, Projection, ProjectionLayer, RunDocument, TelemetryWindow
    from meter.results.atomic import write_json_atomic
    from meter.results.document import DeviceInfo
    from meter.results.metadata import hardware_summary, utc_now

    v3 = load_model("deepseek-v3").args
    spec_hw = load_hardware(hardware) if kind == "cuda" else None
    layer_flops = F.train_flops_per_token(v3, 4096)
    train_layers = layer_flops.total - layer_flops.output_head
    cases, projections = [], []
    for phase, t_token, flops_token, batch, seq, ctx in (
        ("train", 1e-3, train_layers, 1, 4096, 0),
        ("prefill", 2e-4, train_layers / 3, 1, 4096, 0),
        ("decode", 5e-4, 1.4e11, 128, 0, 4096),
    ):
        layers = {}
        for layer, count, share in (("mla", 61, 0.3), ("moe", 58, 0.65), ("ffn", 3, 0.05)):
            tokens = batch * (seq or 1)
            per_token = t_token * share / count
            spec = BenchCase("deepseek-v3", layer, phase, batch=batch, seq=seq, context=ctx if layer == "mla" else 0)
            window = TelemetryWindow(
                name=spec.id, duration_s=2.0, avg_power_w=600.0, joules_per_token=600.0 * per_token
            )
            cases.append(
                ok_case(
                    spec,
                    per_call_s=per_token * tokens,
                    tokens=tokens,
                    flops=flops_token * share / count * tokens,
                    bytes_per_call=4e6 * tokens / count,
                    spread=spread,
                    telemetry=window,
                    hardware=spec_hw,
                )
            )
            layers[layer] = ProjectionLayer(
                case_id=spec.id, count=count, time_per_token_s=per_token, flops_per_token=flops_token * share / count
            )
        projections.append(
            Projection(
                model="deepseek-v3",
                phase=phase,
                dtype="bf16",
                batch=batch,
                seq=seq,
                context=ctx,
                layers=layers,
                time_per_token_s=t_token,
                tokens_per_s=1 / t_token,
                flops_per_token=flops_token,
                mfu=flops_token / t_token / 989.4e12,
            )
        )
    if kind == "cuda":
        device = DeviceInfo(kind="cuda", torch_device="cuda:0", name=DEVICE_NAMES[hardware], hardware_config=hardware)
        summary = hardware_summary(load_hardware(hardware))
    else:
        device, summary = DeviceInfo(kind="cpu", torch_device="cpu", name="test CPU", hardware_config="cpu"), None
    doc = RunDocument(
        run_id="synthetic",
        status="complete",
        started_at=utc_now(),
        metadata=cpu_metadata(device=device, hardware=summary, ceilings=make_ceilings(3e10, {"bf16": 1e12})),
        cases=cases,
        projections=projections,
    )
    write_json_atomic(path, to_jsonable(doc))
    return path


def job_doc(*, hardware: str = "h100-sxm", gpus: int = 1, duration_s: float = 100.0, power_w: float = 400.0):
    """A measured job written through the typed classes: ``gpus`` GPUs at ``power_w`` each for
    ``duration_s``, 1,000 tokens per second of deepseek-v3 training at seq 4096, $2 per GPU-hour."""
    from meter.analytic import flops as F
    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.results import JobCost, JobGpu, JobResult, JobWork, RunDocument, TelemetryWindow
    from meter.results.document import DeviceInfo
    from meter.results.metadata import hardware_summary, utc_now

    spec = load_hardware(hardware)
    flops = F.train_flops_per_token(load_model("deepseek-v3").args, 4096).total
    tokens = 1000.0 * duration_s
    achieved = tokens / duration_s * flops / gpus
    windows = {
        f"gpu{i}": TelemetryWindow(
            name="job",
            duration_s=duration_s,
            energy_j=power_w * duration_s,
            energy_method="counter",
            energy_counter_j=power_w * duration_s,
            energy_integrated_j=power_w * duration_s * 1.01,
            energy_disagreement=0.01,
            avg_power_w=power_w,
            n_samples=int(duration_s * 10),
            device=f"gpu{i}",
        )
        for i in range(gpus)
    }
    total = TelemetryWindow(name="job", duration_s=duration_s, energy_j=power_w * duration_s * gpus)
    energy = power_w * duration_s * gpus
    job = JobResult(
        source="measure",
        duration_s=duration_s,
        command=["python", "train.py"],
        exit_status=0,
        gpus=[
            JobGpu(key=k, name=DEVICE_NAMES.get(hardware, hardware), index=i, hardware_config=hardware, telemetry=w)
            for i, (k, w) in enumerate(windows.items())
        ],
        telemetry=total,
        work=JobWork(
            tokens=tokens,
            tokens_source="--tokens",
            tokens_per_s=tokens / duration_s,
            model="deepseek-v3",
            phase="train",
            seq=4096,
            flops_per_token=flops,
            achieved_tflops=achieved / 1e12,
            mfu=achieved / spec.peak_flops("bf16"),
            mfu_basis=f"dense bf16 datasheet peak of {hardware}",
            joules_per_token=energy / tokens,
        ),
        cost=JobCost(
            gpus=gpus,
            gpu_hours=gpus * duration_s / 3600,
            usd_per_gpu_hour=2.0,
            gpu_usd=2.0 * gpus * duration_s / 3600,
        ),
    )
    device = DeviceInfo(
        kind="cuda", torch_device="cuda:0", name=DEVICE_NAMES.get(hardware, hardware), hardware_config=hardware
    )
    metadata = cpu_metadata(device=device, hardware=hardware_summary(spec), method=None)
    return RunDocument(
        run_id="job", kind="job", status="complete", started_at=utc_now(), metadata=metadata, cases=[], job=job
    )


def job_run_dict(**kwargs) -> dict[str, Any]:
    from meter.jsonable import to_jsonable

    return to_jsonable(job_doc(**kwargs))
