"""The workload table: the cases ``meter acceptance`` measures, and each row against its target.

On a GPU these are DeepSeek-V3's shapes: the MoE expert GEMMs at 512 and 2048 rows per expert
(one GPU's slice of a 32-way expert-parallel group, as DeepSeek's prefill runs), in bf16 and fp8;
MLA absorbed (and, where Triton is there, fused) decode at batch 128 over contexts 4K-16K; MLA
and the MoE layer (the EP64 slice DeepSeek trains with) trained at sequence 4096. A dry run
measures the same table on the tiny model at small shapes: the plumbing, labelled as CPU figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from meter.acceptance.targets import check
from meter.results.acceptance import Check
from meter.results.cases import BenchCase
from meter.results.document import Ceilings
from meter.results.records import CaseResult


@dataclass(frozen=True)
class Table:
    model: str
    moe_gemm: list[BenchCase]  # bf16 expert GEMMs at >= 512 rows per expert
    fp8_gemm: list[BenchCase]
    decode: list[BenchCase]
    mla_train: BenchCase
    moe_train: BenchCase

    @property
    def cases(self) -> list[BenchCase]:
        return [*self.moe_gemm, *self.fp8_gemm, *self.decode, self.mla_train, self.moe_train]


def table(dry_run: bool) -> Table:
    if dry_run:
        model, ep, tpes, batch, contexts, seq, train_ep = "deepseek-v3-tiny", 4, (512,), 8, (256, 1024), 256, 4
    else:
        model, ep, tpes, batch, contexts, seq, train_ep = (
            "deepseek-v3",
            32,
            (512, 2048),
            128,
            (4096, 8192, 16384),
            4096,
            64,
        )
    moe = [BenchCase(model, "moe", "prefill", tokens_per_expert=t, ep=ep, dtype="bf16") for t in tpes]
    fp8 = [
        BenchCase(model, "moe", "prefill", tokens_per_expert=tpes[-1], ep=ep, dtype="bf16", fp8=r)
        for r in ("blockwise", "rowwise")
    ]
    forms = ("absorbed",) if dry_run else ("absorbed", "fused")
    decode = [
        BenchCase(model, "mla", "decode", batch=batch, context=c, dtype="bf16", form=f) for f in forms for c in contexts
    ]
    return Table(
        model=model,
        moe_gemm=moe,
        fp8_gemm=fp8,
        decode=decode,
        mla_train=BenchCase(model, "mla", "train", batch=1, seq=seq, dtype="bf16"),
        moe_train=BenchCase(model, "moe", "train", batch=1, seq=seq, ep=train_ep, dtype="bf16"),
    )


def table_checks(
    t: Table, results: dict[str, CaseResult], ceilings: Ceilings | None, peak_bf16: float | None, *, cpu: bool
) -> list[Check]:
    rows: list[Check] = []
    for c in t.moe_gemm:
        part, r = _part(results, c, "bf16")
        rows.append(
            check(
                "workloads",
                f"MoE grouped GEMM, {c.tokens_per_expert} rows/expert (EP{c.ep} slice)",
                "moe_gemm",
                part.ceiling_fraction if part else None,
                "of dense GEMM",
                cpu=cpu,
                detail=_detail(r, f"{part.achieved_tflops:.4g} TFLOP/s" if part else None),
            )
        )
    for c in t.fp8_gemm:
        part, r = _part(results, c, "fp8")
        rows.append(
            check(
                "workloads",
                f"fp8 {c.fp8} expert GEMMs, {c.tokens_per_expert} rows/expert",
                "fp8_gemm",
                part.ceiling_fraction if part else None,
                "of fp8 ceiling",
                cpu=cpu,
                detail=_detail(
                    r,
                    f"{part.achieved_tflops:.4g} TFLOP/s on pre-quantised inputs; whole layer "
                    f"{r.metrics.achieved_tflops:.4g} TFLOP/s"
                    if part
                    else None,
                ),
            )
        )
    for c in t.decode:
        r = results.get(c.id)
        value = None
        if r is not None and r.ok and ceilings is not None:
            minimum = (r.details.bytes_minimum if r.details else None) or r.metrics.bytes_per_call
            value = minimum / r.timing.median_s / ceilings.copy_bytes_per_s
        rows.append(
            check(
                "workloads",
                f"MLA {c.form} decode, b{c.batch} ctx {c.context}",
                "mla_decode",
                value,
                "of copy bandwidth",
                cpu=cpu,
                detail=_detail(
                    r, f"{r.timing.median_s * 1e3:.3g} ms/step (minimum bytes over time)" if value else None
                ),
            )
        )
    mla = results.get(t.mla_train.id)
    rows.append(
        check(
            "workloads",
            f"MLA training, s{t.mla_train.seq}",
            "mla_train",
            mla.metrics.mfu if mla and mla.ok else None,
            "of bf16 peak",
            cpu=cpu,
            detail=_detail(mla, f"{mla.metrics.achieved_tflops:.4g} TFLOP/s" if mla and mla.ok else None),
        )
    )
    rows.append(_layer_mfu(t, results, peak_bf16, cpu=cpu))
    return rows


def _layer_mfu(t: Table, results: dict[str, CaseResult], peak_bf16: float | None, *, cpu: bool) -> Check:
    """One V3 decoder layer's training step (MLA + MoE on the same tokens): summed FLOPs over summed time."""
    mla, moe = results.get(t.mla_train.id), results.get(t.moe_train.id)
    value, detail = None, None
    if mla and moe and mla.ok and moe.ok:
        flops = mla.metrics.flops_per_call + moe.metrics.flops_per_call
        seconds = mla.timing.median_s + moe.timing.median_s
        value = flops / seconds / peak_bf16 if peak_bf16 else None
        detail = (
            f"{flops / seconds / 1e12:.4g} TFLOP/s over {seconds * 1e3:.3g} ms (MLA + MoE EP{t.moe_train.ep} slice)"
        )
    else:
        detail = _detail(mla if not (mla and mla.ok) else moe, None)
    return check(
        "workloads",
        f"MoE + MLA layer training MFU, s{t.mla_train.seq}",
        "layer_mfu",
        value,
        "MFU",
        cpu=cpu,
        detail=detail,
    )


def _part(results: dict[str, CaseResult], c: BenchCase, precision: str):
    r = results.get(c.id)
    if r is None or not r.ok:
        return None, r
    return next((p for p in r.parts if p.precision == precision), None), r


def _detail(r: CaseResult | None, ok_text: str | None) -> str:
    if r is None:
        return "not measured (its step did not finish)"
    if not r.ok:
        return f"{r.status}: {r.reason}"
    return ok_text or "measured; no reference figure to compare with"
