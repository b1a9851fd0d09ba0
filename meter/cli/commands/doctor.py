"""``meter doctor``: what this machine can do, and exactly why where it cannot."""

from __future__ import annotations

import argparse
from typing import Any

from meter.cli.common import locator
from meter.cli.output import emit_json, key_values, table


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "doctor",
        parents=[common],
        help="check Python, torch, GPUs, NVML and tools",
        description="Report Python, torch and its CUDA, GPUs and driver through NVML (or why NVML is "
        "unavailable), the hardware config each GPU matches, and external tools.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (docs/cli-json.md)")
    p.set_defaults(handler=run_doctor)


def gpu_report(specs: list) -> dict[str, Any]:
    """The driver's view of every GPU, each matched to its hardware config; never raises for a missing driver."""
    from meter.config.hardware import match_device_name
    from meter.device.gpu import GpuLost, GpuUnavailable, Selection, open_gpus

    try:
        with open_gpus(Selection(all_gpus=True)) as fleet:
            gpus = []
            for gpu in fleet.gpus:
                ident = gpu.identity
                spec = match_device_name(ident.name, specs)
                telemetry = gpu.describe()
                gpus.append(
                    {
                        "index": ident.index,
                        "name": ident.name,
                        "uuid": ident.uuid,
                        "pci_bus_id": ident.pci_bus_id,
                        "memory_total_bytes": ident.memory_total_bytes,
                        "mig_enabled": ident.mig_enabled,
                        "hardware_config": spec.name if spec else None,
                        "architecture": telemetry.architecture,
                        "power_semantics": telemetry.power_semantics,
                        "telemetry_supported": telemetry.supported,
                    }
                )
            system = fleet.system()
            return {
                "available": True,
                "reason": None,
                "library": system.library,
                "driver_version": system.driver_version,
                "nvml_version": system.library_version,
                "cuda_driver_version": system.runtime_version,
                "gpus": gpus,
                "unopened": [{"index": i, "reason": why} for i, why in fleet.unopened],
            }
    except (GpuUnavailable, GpuLost) as exc:
        return {
            "available": False,
            "reason": str(exc),
            "library": None,
            "driver_version": None,
            "nvml_version": None,
            "cuda_driver_version": None,
            "gpus": [],
            "unopened": [],
        }


def ops_report() -> dict[str, Any]:
    """The fused GEMM ops this torch has, and each one run once on the CPU and on every visible GPU."""
    try:
        import torch

        from kernels.ops import detect_ops, probe_ops
    except Exception as exc:  # no (working) torch: torch_info says why
        return {"error": f"torch is not importable: {exc}", "names": None, "probes": {}}
    devices = (
        ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else ["cpu"]
    )
    probes = {d: probe_ops(d).as_dict()["results"] for d in devices}
    return {"error": None, "names": detect_ops().as_dict(), "probes": probes}


def _ops_lines(ops: dict[str, Any]) -> list[tuple[str, str]]:
    if ops["error"]:
        return [("fused ops", ops["error"])]
    names = ops["names"]
    found = ", ".join(f"{k} ({v or 'absent'})" for k, v in names.items() if k != "torch_version")
    lines = [("fused ops", found)]
    for device, results in ops["probes"].items():
        ok = [op for op, r in results.items() if r["ok"]]
        bad = [f"{op}: {r['reason']}" for op, r in results.items() if not r["ok"]]
        lines.append(
            (f"  on {device}", "runs " + (", ".join(ok) or "none") + ("; NOT " + "; ".join(bad) if bad else ""))
        )
    return lines


def run_doctor(args: argparse.Namespace) -> int:
    from meter.config.hardware import list_hardware
    from meter.device.host import python_info, tool_version, torch_info

    loc = locator(args)
    specs = list_hardware(loc)
    report = {
        "python": python_info(),
        "torch": torch_info().as_dict(),
        "nvml": gpu_report(specs),
        "ops": ops_report(),
        "tools": {
            "prometheus": tool_version("prometheus", "--version"),
            "promtool": tool_version("promtool", "--version"),
            "cc": tool_version("cc", "--version"),
        },
        "config_dirs": [str(r) for r in loc.roots],
    }
    if args.json:
        emit_json(report)
        return 0
    t, nv = report["torch"], report["nvml"]
    torch_line = (
        t["error"]
        or f"{t['version']} ({'CUDA ' + t['cuda_build'] if t['cuda_build'] else 'CPU build'}; "
        f"CUDA available: {'yes' if t['cuda_available'] else 'no'})"
    )
    print(
        key_values(
            [
                ("python", f"{report['python']['version']} ({report['python']['executable']})"),
                ("torch", torch_line),
                (
                    "NVML",
                    f"driver {nv['driver_version']}, CUDA {nv['cuda_driver_version']}, {len(nv['gpus'])} GPU(s)"
                    if nv["available"]
                    else f"unavailable: {nv['reason']}",
                ),
                ("prometheus", report["tools"]["prometheus"] or "not installed (apt-get install prometheus)"),
                ("promtool", report["tools"]["promtool"] or "not installed (Debian's prometheus package has it)"),
                ("C compiler", report["tools"]["cc"] or "not installed (the fake-NVML tests need one)"),
                ("config dirs", ", ".join(report["config_dirs"])),
                *_ops_lines(report["ops"]),
            ]
        )
    )
    if nv["gpus"]:
        rows = [
            [
                g["index"],
                g["name"],
                g["uuid"],
                g["hardware_config"] or "NO MATCH: add a hardware config listing this NVML name (meter hardware)",
            ]
            for g in nv["gpus"]
        ]
        print()
        print(table(["gpu", "name", "uuid", "hardware config"], rows))
        rows = []
        for g in nv["gpus"]:
            missing = [k for k, ok in g["telemetry_supported"].items() if not ok]
            rows.append(
                [
                    g["index"],
                    g["architecture"],
                    "yes" if g["mig_enabled"] else "no",
                    g["power_semantics"],
                    "all" if not missing else "all but " + ", ".join(missing),
                ]
            )
        print()
        print(table(["gpu", "arch", "MIG", "power reading", "telemetry fields supported"], rows))
    if not t["cuda_available"]:
        print("\nNo CUDA device: benchmarks run on the CPU and are labelled as CPU figures.")
    return 0
