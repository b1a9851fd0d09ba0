"""The results page of an acceptance run: ``<date>-<gpu>.md``, every check and step in tables."""

from __future__ import annotations

import re

from meter.results.document import RunDocument

CPU_NOTE = (
    "**CPU DRY RUN.** Every figure below was measured on a CPU (telemetry from the fake NVML driver "
    "where one was loaded): it proves the command's plumbing and says nothing about any GPU. Verdicts "
    "against GPU targets are n/a."
)


def page_name(doc: RunDocument) -> str:
    """``2026-11-22-nvidia-h200.md``; a dry run is ``...-cpu-dry-run.md``."""
    date = doc.started_at.date().isoformat()
    if doc.acceptance is not None and doc.acceptance.dry_run:
        return f"{date}-cpu-dry-run.md"
    slug = re.sub(r"[^a-z0-9]+", "-", doc.metadata.device.name.lower()).strip("-") or "gpu"
    return f"{date}-{slug}.md"


def value_text(v: float | None, unit: str | None) -> str:
    if v is None:
        return "n/a"
    if unit in (
        "ratio",
        "of dense GEMM",
        "of fp8 ceiling",
        "of copy bandwidth",
        "of bf16 peak",
        "MFU",
        "of throughput",
    ):
        return f"{v * 100:.1f}%"
    if unit in ("rel. diff", "rel. error"):
        return f"{v:.2e}" if v < 1e-3 else f"{v * 100:.2f}%"
    return f"{v:.4g} {unit}" if unit else f"{v:.4g}"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "/").replace("\n", " ")


def render(doc: RunDocument, run_file: str, command: str) -> str:
    report = doc.acceptance
    assert report is not None
    device = doc.metadata.device
    out = [f"# Acceptance: {device.label}, {doc.started_at.date().isoformat()}", ""]
    if report.dry_run:
        out += [CPU_NOTE, ""]
    env = report.environment
    out += [
        f"- device: {device.label}"
        + (f" (hardware config `{device.hardware_config}`)" if device.hardware_config else ""),
        f"- driver {env.get('driver')}, CUDA {env.get('cuda_driver')}, torch {env.get('torch')} (CUDA build {env.get('torch_cuda')})",
        f"- fused ops: grouped {env.get('grouped_mm')}, scaled {env.get('scaled_mm')}, scaled grouped {env.get('scaled_grouped_mm')}",
        f"- time: {report.elapsed_s:.0f} s of a {report.budget_s:.0f} s budget; run file `{run_file}`",
        f"- command: `{command}`",
        "",
    ]
    failed, incomplete = report.failed, report.incomplete
    summary = "every step ran" if not incomplete else f"{len(incomplete)} step(s) did not finish"
    summary += (
        "; no check failed" if not failed else f"; {len(failed)} check(s) failed: " + ", ".join(c.name for c in failed)
    )
    out += [f"**{summary}.**", ""]
    for section in dict.fromkeys(c.section for c in report.checks):
        out += [
            f"## {section.capitalize()}",
            "",
            "| check | value | target | verdict | how / why |",
            "|---|---|---|---|---|",
        ]
        for c in (c for c in report.checks if c.section == section):
            verdict = c.verdict.upper() if c.verdict == "fail" else c.verdict
            out.append(
                f"| {_cell(c.name)} | {value_text(c.value, c.unit)} | {_cell(c.target)} | {verdict} | {_cell(c.detail)} |"
            )
        out.append("")
    out += ["## Steps", "", "| step | status | seconds | timeout | reason |", "|---|---|---|---|---|"]
    for s in report.steps:
        out.append(f"| {_cell(s.name)} | {s.status} | {s.seconds:.1f} | {s.timeout_s:.0f} | {_cell(s.reason)} |")
    out += [
        "",
        "## Cases",
        "",
        "| case | status | backend | ms/call | TFLOP/s | GB/s | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc.cases:
        if not r.ok:
            out.append(f"| {r.id} | {r.status} | | | | | {_cell(r.reason)} |")
            continue
        parts = "; ".join(f"{p.name}: {p.achieved_tflops:.4g} TFLOP/s" for p in r.parts)
        backend = r.details.backend if r.details else None
        fallback = f" (FALL-BACK: {r.details.fallback_reason})" if r.details and r.details.fallback_reason else ""
        out.append(
            f"| {r.id} | ok | {_cell(backend)}{_cell(fallback)} | {r.timing.median_s * 1e3:.4g} | "
            f"{r.metrics.achieved_tflops:.4g} | {r.metrics.achieved_gb_s:.4g} | {_cell(parts)} |"
        )
    out.append("")
    return "\n".join(out)


def render_plain(doc: RunDocument, run_file: str, command: str, error: str) -> str:
    """The page when :func:`render` failed: the steps and checks as plain lines, and why."""
    report = doc.acceptance
    out = [
        f"# Acceptance: {doc.metadata.device.label}, {doc.started_at.date().isoformat()}",
        "",
        f"The full page could not be rendered ({error}); the figures are all in the run file `{run_file}`.",
        f"Command: `{command}`",
        "",
    ]
    if report is not None:
        out += [
            f"- step {s.name}: {s.status} ({s.seconds:.1f} s){f': {s.reason}' if s.reason else ''}"
            for s in report.steps
        ]
        out += [f"- check {c.section} / {c.name}: {c.verdict} {c.value!r} {c.unit or ''}" for c in report.checks]
    out += [f"- case {r.id}: {r.status}" for r in doc.cases]
    return "\n".join(out) + "\n"
