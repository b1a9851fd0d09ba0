"""``meter models``, ``meter hardware``, ``meter prices``: what the configs hold."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from meter.cli.common import OneLineParser, locator
from meter.cli.output import emit_json, table
from meter.units import count

if TYPE_CHECKING:
    from meter.config.hardware import HardwareSpec


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "models",
        parents=[common],
        help="list model configs",
        description="List the model configs: shape, parameters (total / active), source. "
        "`meter models import CONFIG -o FILE` writes a Hugging Face config.json as a model config.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (docs/cli-json.md)")
    p.set_defaults(handler=run_models)
    actions = p.add_subparsers(dest="models_action", metavar="{import}", parser_class=OneLineParser)
    imp = actions.add_parser(
        "import",
        parents=[common],
        help="a Hugging Face config.json as a model config (YAML)",
        description="Read a Hugging Face config.json (or a model directory holding one) and write meter's model "
        "config, with the source recorded (path, architecture, sha256, date, defaulted fields). The written file "
        "loads back to the same model.",
        epilog="Example: meter models import ~/models/Qwen3-30B-A3B -o configs/models/qwen3-30b-a3b.yaml; "
        "meter flops qwen3-30b-a3b",
    )
    imp.add_argument("config", metavar="CONFIG", help="path to a config.json, or a directory holding one")
    imp.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="the model config to write (NAME.yaml; NAME is the model's name)",
    )
    imp.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    imp.add_argument("--json", action="store_true", help="print what was written as JSON (docs/cli-json.md)")
    imp.set_defaults(handler=run_models_import)

    p = sub.add_parser(
        "hardware",
        parents=[common],
        help="list hardware configs",
        description="List the hardware configs: dense peaks, memory, bandwidth, TDP, device names.",
    )
    p.add_argument("--json", action="store_true", help="print JSON (docs/cli-json.md)")
    p.set_defaults(handler=run_hardware)

    p = sub.add_parser(
        "prices",
        parents=[common],
        help="list the price table",
        description="List GPU-hour prices, electricity prices and PUE values, each with date and source.",
    )
    p.add_argument("--table", default="default", metavar="NAME", help="price table name or path (default: default)")
    p.add_argument("--gpu", metavar="HARDWARE", help="only prices for this hardware config")
    p.add_argument("--json", action="store_true", help="print JSON (docs/cli-json.md)")
    p.set_defaults(handler=run_prices)


def run_models(args: argparse.Namespace) -> int:
    from meter.analytic.params import count_params
    from meter.config.models import list_models

    models = list_models(locator(args))
    records = []
    for m in models:
        a, p = m.args, count_params(m.args)
        records.append(
            {
                "name": m.name,
                "description": m.description,
                "attention": a.attention,
                "n_layers": a.n_layers,
                "dim": a.dim,
                "n_heads": a.n_heads,
                "n_routed_experts": a.n_routed_experts,
                "n_shared_experts": a.n_shared_experts,
                "n_activated_experts": a.n_activated_experts,
                "total_params": p.total,
                "active_params": p.active,
                "source": m.source,
                "date": m.date,
                "path": m.path,
            }
        )
    if args.json:
        emit_json({"models": records})
        return 0
    rows = [
        [
            r["name"],
            r["attention"].upper(),
            r["n_layers"],
            r["dim"],
            f"{r['n_shared_experts']}+{r['n_routed_experts']} top-{r['n_activated_experts']}"
            if r["n_routed_experts"]
            else "dense",
            count(r["total_params"]),
            count(r["active_params"]),
        ]
        for r in records
    ]
    print(table(["model", "attn", "layers", "dim", "experts", "total", "active"], rows))
    return 0


def run_models_import(args: argparse.Namespace) -> int:
    from meter.analytic.params import count_params
    from meter.config.hf import resolve_config_json
    from meter.config.models import load_hf_model, model_yaml, parse_model
    from meter.config.schema import read_yaml_text
    from meter.errors import ConfigError, OutputError
    from meter.results.atomic import write_text_atomic

    source = resolve_config_json(Path(args.config).expanduser())
    out = Path(args.output).expanduser()
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(None, "--output", "must name a .yaml file (its stem is the model's name)", str(out))
    if out.exists() and not args.force:
        raise OutputError(f"{out}: exists; pass --force to overwrite it")
    model = load_hf_model(source, name=out.stem)
    text = model_yaml(model)
    # The file must load back to the same model; a difference is a bug in the writer, caught before writing.
    back = parse_model(read_yaml_text(text, out), out)
    if back != model:
        raise AssertionError(f"meter models import: {out} would not load back to the imported model")
    write_text_atomic(out, text)
    p = count_params(model.args)
    rec = model.imported
    if args.json:
        emit_json(
            {
                "path": out,
                "name": model.name,
                "architecture": rec.architecture if rec else None,
                "sha256": rec.sha256 if rec else None,
                "defaulted": list(rec.defaulted) if rec else [],
                "ignored": list(rec.ignored) if rec else [],
                "total_params": p.total,
                "active_params": p.active,
            }
        )
        return 0
    print(f"wrote {out}: {model.name} ({model.description})")
    print(f"  total {count(p.total)}, active {count(p.active)} per token")
    if rec and rec.defaulted:
        print(f"  defaulted (absent from the file): {', '.join(rec.defaulted)}")
    if rec and rec.ignored:
        print(f"  read but not modelled: {len(rec.ignored)} field(s), listed under imported.ignored")
    return 0


def run_hardware(args: argparse.Namespace) -> int:
    from meter.config.hardware import list_hardware

    specs = list_hardware(locator(args))
    if args.json:
        emit_json(
            {
                "hardware": [
                    {
                        "name": s.name,
                        "display_name": s.display_name,
                        "kind": s.kind,
                        "device_names": s.device_names,
                        "nvml_names": s.device_names,  # the key's old name, kept for existing readers
                        "peak_tflops": dict(s.peak_tflops),
                        "memory_gb": s.memory_gb,
                        "memory_bandwidth_gb_s": s.memory_bandwidth_gb_s,
                        "nvlink_bandwidth_gb_s": s.nvlink_bandwidth_gb_s,
                        "scale_up_domain_gpus": s.scale_up_domain_gpus,
                        "network_bandwidth_gb_s": s.network_bandwidth_gb_s,
                        "tdp_w": s.tdp_w,
                        "sources": s.sources,
                        "path": s.path,
                    }
                    for s in specs
                ]
            }
        )
        return 0
    rows = [
        [
            s.name,
            s.peak_tflops.get("bf16"),
            s.peak_tflops.get("fp8"),
            s.peak_tflops.get("fp4"),
            s.memory_gb,
            s.memory_bandwidth_gb_s,
            s.nvlink_bandwidth_gb_s,
            s.scale_up_domain_gpus,
            s.tdp_w,
            _names(s),
        ]
        for s in specs
    ]
    print(
        table(
            ["hardware", "bf16 TFLOP/s", "fp8 TFLOP/s", "fp4 TFLOP/s", "mem GB", "HBM GB/s", "scale-up GB/s"]
            + ["domain GPUs", "TDP W", "device name"],
            rows,
        )
    )
    print(
        "\nDense (non-sparse) peaks. Scale-up: NVLink, or AMD Infinity Fabric (xGMI), bidirectional per GPU, "
        "within a domain of that many GPUs. Sources and dates: meter hardware --json, or configs/hardware/*.yaml."
    )
    return 0


def _names(spec: HardwareSpec) -> str:
    if spec.kind != "gpu":
        return "(peaks measured at run time)"
    return ", ".join(spec.device_names) or "(no device name: --hardware NAME)"


def run_prices(args: argparse.Namespace) -> int:
    from meter.config.pricing import load_prices

    prices = load_prices(args.table, locator(args))
    gpu_prices = [p for p in prices.gpu_prices if args.gpu is None or p.gpu == args.gpu]
    if args.json:
        emit_json(
            {
                "table": prices.name,
                "version": prices.version,
                "gpu_prices": gpu_prices,
                "electricity": prices.electricity,
                "pue": prices.pue,
                "defaults": prices.defaults,
            }
        )
        return 0
    rows = [[p.gpu, p.provider, p.tier, f"${p.usd_per_gpu_hour:.2f}", p.date, p.confidence] for p in gpu_prices]
    print(
        table(
            ["gpu", "provider", "tier", "$/GPU-h", "date", "confidence"],
            rows,
            title=f"GPU-hour prices (table '{prices.name}', version {prices.version})",
        )
    )
    print()
    print(
        table(
            ["electricity", "$/kWh", "date", "confidence"],
            [[e.name, e.usd_per_kwh, e.date, e.confidence] for e in prices.electricity],
        )
    )
    print()
    print(table(["PUE", "value", "date", "confidence"], [[p.name, p.pue, p.date, p.confidence] for p in prices.pue]))
    print(
        f"\nDefaults: electricity {prices.defaults.electricity}, PUE {prices.defaults.pue}. "
        f"Sources: meter prices --json, or {prices.path}."
    )
    return 0
