"""Whole-model time per token from per-layer measurements: layers x measured per-layer time.

For each measured attention case, the MoE and dense-FFN cases of the same phase, precision and
tokens per call are composed over the model's layer counts. What a one-layer benchmark does not
see (embedding, output head, norms between layers, MTP, communication, pipeline bubbles) is left
out and listed; the cost model adds explicit factors for those.
"""

from __future__ import annotations

from kernels.args import ModelArgs
from meter.bench.cases import attention_layer
from meter.config.hardware import HardwareSpec
from meter.results.cases import BenchCase
from meter.results.records import CaseResult, Projection, ProjectionLayer


def project(model: str, a: ModelArgs, results: list[CaseResult], hardware: HardwareSpec | None) -> list[Projection]:
    """Every projection the results support, one per measured attention shape."""
    mine = [r for r in results if r.case.model == model and r.ok]
    attention = attention_layer(a)  # dsa for DeepSeek-V3.2
    counts = {attention: a.n_layers, "moe": a.n_moe_layers, "ffn": a.n_ffn_dense_layers}
    needed = [kind for kind, n in counts.items() if n > 0]
    out = []
    for attn in (r for r in mine if r.case.layer == attention):
        case = attn.case
        tokens = case.tokens(a)
        parts = {attention: attn}
        for kind in needed:
            if kind == attention:
                continue
            match = _best_match(mine, kind, case, tokens, a)
            if match is not None:
                parts[kind] = match
        if set(parts) != set(needed):
            continue
        layers = {}
        for kind, r in parts.items():
            m = r.metrics
            layers[kind] = ProjectionLayer(
                case_id=r.id,
                count=counts[kind],
                time_per_token_s=m.time_per_token_s,
                flops_per_token=m.flops_per_call / m.tokens_per_call,
            )
        total = sum(v.count * v.time_per_token_s for v in layers.values())
        flops = sum(v.count * v.flops_per_token for v in layers.values())
        peak = hardware.peak_flops("bf16") if hardware else None
        out.append(
            Projection(
                model=model,
                phase=case.phase,
                dtype=case.dtype,
                batch=case.batch,
                seq=case.seq,
                context=case.context,
                layers=layers,
                time_per_token_s=total,
                tokens_per_s=1.0 / total,
                flops_per_token=flops,
                mfu=(flops / total / peak) if peak else None,
            )
        )
    return out


def _best_match(results: list[CaseResult], kind: str, attn: BenchCase, tokens: int, a: ModelArgs) -> CaseResult | None:
    """The case of ``kind`` with the attention case's phase, dtype and tokens; plain settings first."""
    candidates = []
    for r in results:
        c = r.case
        if c.layer == kind and c.phase == attn.phase and c.dtype == attn.dtype and c.tokens(a) == tokens:
            plainness = (c.fp8 is not None, c.ep != 1, c.routing != "learned")
            candidates.append((plainness, r))
    candidates.sort(key=lambda pair: pair[0])
    return candidates[0][1] if candidates else None
