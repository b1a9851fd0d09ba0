"""``meter flops MODEL``: parameters, FLOPs per token and bytes per decode token."""

from __future__ import annotations

import argparse

from meter import domains as D
from meter.cli.common import locator, number
from meter.cli.output import emit_json, key_values, table
from meter.units import DTYPE_BYTES, binary_bytes, count, si

CONVENTIONS = (
    "multiply-add = 2 FLOPs; matrix products only; train = 3 x forward; causal attention counts half "
    "the sequence (Megatron); prefill computes logits for the last position only; decode uses MLA's "
    "absorbed form; MTP is reported separately; sliding-window and chunked layers attend (and cache) their "
    "span only"
)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "flops",
        parents=[common],
        help="parameters, FLOPs per token and decode bytes of a model",
        description="Analytic parameters, FLOPs per token (train, prefill, decode) and memory traffic of a model.",
        epilog=f"Conventions: {CONVENTIONS}.",
    )
    p.add_argument(
        "model",
        help="model config name (meter models), a path to a YAML file, or a Hugging Face config.json (or its directory)",
    )
    p.add_argument(
        "--seq",
        type=number(D.SEQ),
        default=4096,
        metavar="N",
        help="training sequence length and prefill prompt length (default 4096)",
    )
    p.add_argument(
        "--context",
        type=number(D.CONTEXT),
        default=4096,
        metavar="N",
        help="decode context length: positions each generated token attends to (default 4096)",
    )
    p.add_argument(
        "--batch",
        type=number(D.BATCH),
        default=1,
        metavar="N",
        help="decode batch size for bytes per decode token (default 1)",
    )
    p.add_argument(
        "--dtype",
        choices=["bf16", "fp16", "fp32", "fp8"],
        default="bf16",
        help="bytes per weight and per KV-cache value (default bf16)",
    )
    p.add_argument("--json", action="store_true", help="print JSON (docs/cli-json.md)")
    p.set_defaults(handler=run_flops)


def model_report(model, *, seq: int, context: int, batch: int, dtype: str) -> dict:
    """Every analytic figure of one model, as the JSON `meter flops --json` prints."""
    from meter.analytic import flops as F
    from meter.analytic import memory as M
    from meter.analytic.params import count_params

    a = model.args
    nbytes = DTYPE_BYTES[dtype]
    p = count_params(a)
    train = F.train_flops_per_token(a, seq)
    prefill = F.prefill_flops_per_token(a, seq)
    decode = F.decode_flops_per_token(a, context, form="absorbed")
    decode_naive = F.decode_flops_per_token(a, context, form="naive")
    step = M.decode_step_bytes(a, batch=batch, context_len=context, weight_bytes=nbytes, kv_bytes=nbytes)
    return {
        "model": model.name,
        "inputs": {"seq_len": seq, "context_len": context, "batch": batch, "dtype": dtype},
        "total_params": p.total,
        "active_params": p.active,
        "active_params_with_embedding": p.active_with_embedding,
        "mtp_params": p.mtp,
        "params": p.as_dict(),
        "train_flops_per_token": train.total,
        "prefill_flops_per_token": prefill.total,
        "decode_flops_per_token": decode.total,
        "decode_flops_per_token_naive": decode_naive.total,
        "mtp_train_flops_per_token": F.mtp_train_flops_per_token(a, seq),
        "flops": {
            "train": train.as_dict(),
            "prefill": prefill.as_dict(),
            "decode": decode.as_dict(),
            "decode_naive": decode_naive.as_dict(),
        },
        "kv_cache_bytes_per_token": M.kv_cache_bytes_per_token(a, nbytes, "latent", context_len=context),
        "kv_cache_bytes_per_token_expanded": M.kv_cache_bytes_per_token(a, nbytes, "expanded", context_len=context),
        "weight_formats": model.weights.formats(),
        "weight_bytes": M.weight_bytes(a, model.weights).as_dict(),
        "decode_bytes_per_token_stored": M.decode_step_bytes(
            a, batch=batch, context_len=context, kv_bytes=nbytes, precision=model.weights
        ).per_token,
        "layers": layer_kinds(a),
        "decode_bytes_per_token": step.per_token,
        "decode_step_bytes": step.as_dict(),
        "sparse_attention": sparse_attention_report(a, seq=seq, context=context, kv_value_bytes=nbytes),
        "conventions": CONVENTIONS,
    }


def layer_kinds(a) -> dict[str, int]:
    """How many layers attend to what, and which FFN they have."""
    return {
        "full_attention": a.n_full_attention_layers,
        "sliding_window": a.n_sliding_layers,
        "chunked": a.n_chunked_layers,
        "dense_ffn": a.n_ffn_dense_layers,
        "moe": a.n_moe_layers,
    }


def sparse_attention_report(a, *, seq: int, context: int, kv_value_bytes: float) -> dict | None:
    """DeepSeek-V3.2's DSA or V4's compressed attention, part by part (None for dense attention)."""
    from meter.analytic import sparse_attention as S

    if not a.is_sparse:
        return None
    return {
        "form": "dsa" if a.sparse_attention is not None else "compressed",
        "prefill": S.attention_per_token(a, seq, "prefill", kv_value_bytes).as_dict(),
        "decode": S.attention_per_token(a, context, "decode", kv_value_bytes).as_dict(),
        "kv_cache": S.kv_cache(a, context, kv_value_bytes).as_dict(),
        "kv_bytes_per_added_token": S.kv_bytes_per_added_token(a, kv_value_bytes),
    }


def run_flops(args: argparse.Namespace) -> int:
    from meter.config.models import load_model

    model = load_model(args.model, locator(args))
    r = model_report(model, seq=args.seq, context=args.context, batch=args.batch, dtype=args.dtype)
    if args.json:
        emit_json(r)
        return 0
    a = model.args
    shape = f"{a.attention.upper()} attention, {a.n_layers} layers"
    if a.sparse_attention is not None:
        shape = f"MLA + DeepSeek Sparse Attention (top-{a.sparse_attention.index_topk:,}), {a.n_layers} layers"
    elif a.compressed_attention is not None:
        ratios = a.compressed_attention.layer_ratios(a.n_layers)
        kinds = ", ".join(
            f"{ratios.count(r)} at ratio {r}" if r else f"{ratios.count(r)} window-only" for r in sorted(set(ratios))
        )
        shape = f"compressed attention ({kinds}; window {a.compressed_attention.sliding_window}), {a.n_layers} layers"
    if a.is_moe:
        shape += (
            f" ({a.n_ffn_dense_layers} dense + {a.n_moe_layers} MoE), {a.n_shared_experts} shared + "
            f"{a.n_routed_experts} routed experts, top-{a.n_activated_experts}"
        )
    if a.n_sliding_layers:
        shape += f"; {a.n_sliding_layers} layers attend a {a.sliding_window}-token sliding window"
    if a.n_chunked_layers:
        shape += f"; {a.n_chunked_layers} layers attend within {a.attention_chunk}-token chunks"
    print(f"{model.name}: {shape}")
    print(f"source: {model.source}\n")
    pr = r["params"]
    print(
        key_values(
            [
                ("total (main model)", count(r["total_params"])),
                (
                    "active per token",
                    f"{count(r['active_params'])}  ({count(r['active_params_with_embedding'])} with the input embedding)",
                ),
                ("MTP modules", count(r["mtp_params"])),
                ("embedding / head", f"{count(pr['embedding'])} / {count(pr['output_head'])}"),
                ("attention", count(pr["attention"])),
                ("dense FFN", count(pr["dense_ffn"])),
                ("shared / routed experts", f"{count(pr['shared_experts'])} / {count(pr['routed_experts'])}"),
            ],
            title="Parameters",
        )
    )
    print()
    labels = [
        ("attention_gemm", "attention projections"),
        ("attention_core", "attention core (QK, AV)"),
        ("dense_ffn", "dense FFN"),
        ("router", "router"),
        ("shared_experts", "shared experts"),
        ("routed_experts", "routed experts"),
        ("output_head", "output head"),
        *([("indexer", "indexer scores")] if a.is_sparse else []),
        ("total", "total"),
    ]
    fl = r["flops"]
    rows = [
        [
            label,
            si(fl["train"][k], "FLOP"),
            si(fl["prefill"][k], "FLOP"),
            si(fl["decode"][k], "FLOP"),
            si(fl["decode_naive"][k], "FLOP"),
        ]
        for k, label in labels
    ]
    print(
        table(
            [
                "FLOPs per token",
                f"train (seq {args.seq})",
                f"prefill ({args.seq})",
                f"decode (ctx {args.context})",
                "decode, naive MLA",
            ],
            rows,
        )
    )
    print(f"MTP modules add {si(r['mtp_train_flops_per_token'], 'FLOP')} per training token.\n")
    step = r["decode_step_bytes"]
    print(
        key_values(
            [
                (
                    "KV cache per token",
                    f"{r['kv_cache_bytes_per_token']:,.0f} B ({binary_bytes(r['kv_cache_bytes_per_token'])})"
                    + (
                        f"; per-head K/V would take {binary_bytes(r['kv_cache_bytes_per_token_expanded'])}"
                        if a.attention == "mla"
                        else ""
                    ),
                ),
                (
                    f"decode step, batch {args.batch}",
                    f"weights {binary_bytes(step['weights'])} + KV read "
                    f"{binary_bytes(step['kv_cache_read'])} + KV write {binary_bytes(step['kv_cache_write'])}",
                ),
                ("bytes per decode token", binary_bytes(r["decode_bytes_per_token"])),
            ],
            title=f"Memory ({args.dtype})",
        )
    )
    wb = r["weight_bytes"]
    formats = ", ".join(f"{k} {v}" for k, v in r["weight_formats"].items())
    print()
    print(
        key_values(
            [
                ("formats", formats),
                ("weights, main model", f"{binary_bytes(wb['total'])} ({wb['total'] / 1e9:,.1f} GB)"),
                (
                    f"bytes per decode token, batch {args.batch}",
                    f"{binary_bytes(r['decode_bytes_per_token_stored'])} (weights as stored, KV cache in {args.dtype})",
                ),
            ],
            title="Weights as stored (the config's precision)",
        )
    )
    if r["sparse_attention"] is not None:
        print()
        print_sparse_attention(r["sparse_attention"], args.dtype)
    return 0


def print_sparse_attention(sa: dict, dtype: str) -> None:
    """Each part of the attention: entries read, FLOPs, bytes, and whether it follows a published
    description or is meter's reading of the config and code."""
    rows = []
    for phase in ("prefill", "decode"):
        att = sa[phase]
        for part in att["parts"]:
            rows.append(
                [
                    f"{phase} ({att['context']:,})",
                    part["name"],
                    f"{part['entries']:,.0f}",
                    si(part["flops"], "FLOP"),
                    binary_bytes(part["read_bytes"]),
                    part["basis"],
                ]
            )
    title = "DeepSeek Sparse Attention" if sa["form"] == "dsa" else "Compressed attention (DeepSeek-V4)"
    print(f"{title}, per token over all layers (entries: cached entries or keys read):")
    print(table(["phase (context)", "part", "entries", "FLOPs", "reads", "basis"], rows))
    notes = {p["name"]: p["note"] for p in sa["decode"]["parts"]}
    for name, note in notes.items():
        print(f"  {name}: {note}")
    if sa["prefill"]["prefill_mode"]:
        print(f"  prefill form: {sa['prefill']['prefill_mode']} (the cheaper of the two; meter's reading)")
    kv = sa["kv_cache"]
    parts = [f"attention {binary_bytes(kv['attention_bytes'])}", f"indexer keys {binary_bytes(kv['indexer_bytes'])}"]
    if kv["window_bytes"]:
        parts.append(f"sliding window {binary_bytes(kv['window_bytes'])}")
    print(
        f"KV cache of one {kv['context']:,}-token sequence ({dtype}): {binary_bytes(kv['total_bytes'])} = "
        + " + ".join(parts)
        + f"; {kv['per_token_bytes']:,.0f} B per token"
    )
