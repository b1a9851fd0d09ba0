"""docs/cost.md's V3 against V3.2 table: every row is what `meter cost serve` computes today.

The table sets meter's bound beside DeepSeek's announced V3.2 price cut; if the serving model
changes, this test names the row to update.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest

from meter.cli.main import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "cost.md"
ROW = re.compile(r"^\| (\d+)K \| (decode|prefill) \| ([\d,]+) \| ([\d,]+) \| \$([\d.]+) \| \$([\d.]+) \| ([\d.]+) \|$")


def doc_rows() -> dict[tuple[int, str], tuple[float, ...]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            k, phase, *numbers = m.groups()
            rows[(int(k) * 1024, phase)] = tuple(float(n.replace(",", "")) for n in numbers)
    return rows


def serve(model: str, context: int) -> dict:
    out = io.StringIO()
    argv = ["cost", "serve", model, "--deployment", "deepseek-ep-h200-fp8kv", "--context", str(context)]
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--samples", "0", "--efficiency", "0.4", "--json"]) == 0
    return {k: v["point"] for k, v in json.loads(out.getvalue())["outputs"].items() if isinstance(v, dict)}


def test_the_table_has_every_context_and_phase():
    assert set(doc_rows()) == {(c, p) for c in (4096, 32768, 131072) for p in ("decode", "prefill")}


@pytest.mark.parametrize("context", [4096, 32768, 131072])
def test_rows_match_meter(context: int):
    v3, v32 = serve("deepseek-v3", context), serve("deepseek-v3.2", context)
    rows = doc_rows()
    for phase, tokens, usd in (
        ("decode", "decode_bound_tokens_per_s_per_gpu", "usd_per_m_output_tokens_at_bound"),
        ("prefill", "prefill_bound_tokens_per_s_per_gpu", "usd_per_m_input_tokens_at_bound"),
    ):
        t3, t32, u3, u32, ratio = rows[(context, phase)]
        got = (v3[tokens], v32[tokens], v3[usd], v32[usd], v32[usd] / v3[usd])
        assert got == pytest.approx((t3, t32, u3, u32, ratio), rel=0.01, abs=0.006), (context, phase)


def test_sparse_attention_wins_only_where_attention_bounds_the_step():
    short, long = serve("deepseek-v3.2", 4096), serve("deepseek-v3.2", 131072)
    dense_long = serve("deepseek-v3", 131072)
    # the longer the context, the larger V3.2's advantage (4K: the all-to-alls bound both)
    assert long["decode_bound_tokens_per_s_per_gpu"] > 4 * dense_long["decode_bound_tokens_per_s_per_gpu"]
    assert short["decode_bound_tokens_per_s_per_gpu"] > long["decode_bound_tokens_per_s_per_gpu"]


def test_the_decode_step_counts_the_indexer_and_the_selected_entries():
    import dataclasses

    from meter.analytic import flops as F
    from meter.config.deployments import load_deployment
    from meter.config.hardware import load_hardware
    from meter.config.models import load_model
    from meter.cost.layout import deployment_bound

    a = load_model("deepseek-v3.2").args
    d = load_deployment("deepseek-ep-h200-fp8kv")
    d = dataclasses.replace(d, decode=dataclasses.replace(d.decode, context=131072, batch_per_gpu=4))
    step = deployment_bound(a, "deepseek-v3.2", load_hardware("h200-sxm"), d).decode
    parts = {c.name: c for c in step.components}
    per_token = F.decode_flops_per_token(a, 131072)
    # the indexer: 61 layers x (2 x 64 x 128 + 2 x 64) FLOPs per earlier token, in fp8; every key read
    assert parts["indexer"].dtype == "fp8"
    assert parts["indexer"].flops == 4 * per_token.indexer == 4 * 61 * 16512 * 131072
    assert parts["indexer"].bytes == 4 * 61 * 131072 * 132
    # the attention core: the top 2,048 entries a layer, 656 B each (FlashMLA's fp8 format)
    assert parts["attention core"].flops == 4 * 61 * 278528 * 2048
    assert parts["attention core"].bytes == 4 * 61 * 2048 * 656
