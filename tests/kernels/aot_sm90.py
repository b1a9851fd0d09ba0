"""Compile the fused MLA decode kernels ahead of time for sm_90 with the installed Triton, no GPU.

Run as a script (``python -m tests.kernels.aot_sm90``) in a process without ``TRITON_INTERPRET``
(the test session sets it, and Triton reads it once, at import). Prints one JSON line per kernel
and plan: whether it compiled to a cubin, the registers and spill bytes ptxas reports for it, and
the shared memory Triton allots a block.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import tempfile

SM90_SHARED_BYTES = 227 * 1024  # the most shared memory a block may use on sm_90
SHAPES = {  # name: (batch, new tokens, heads, max context); DeepSeek-V3's latent 512 + RoPE 64
    "acceptance b128 ctx4096": (128, 1, 128, 4096),
    "acceptance b128 ctx16384": (128, 1, 128, 16384),
    "default plan b1 ctx16384": (1, 1, 128, 16384),
    "default plan b8 s2 ctx8192": (8, 2, 128, 8192),
}


def ptxas() -> str | None:
    """The ptxas Triton compiles sm_90 with (its wheel ships one), or None."""
    try:
        from triton.backends.nvidia.compiler import get_ptxas

        path = get_ptxas(90).path
    except Exception:  # no NVIDIA backend, or no ptxas anywhere Triton looks
        return None
    return path if path and os.access(path, os.X_OK) else None


def _ptxas_report(log: str) -> dict:
    """Registers and spill bytes, as ``ptxas -v`` reported them while Triton compiled."""
    regs = [int(x) for x in re.findall(r"Used (\d+) registers", log)]
    stores = [int(x) for x in re.findall(r"(\d+) bytes spill stores", log)]
    loads = [int(x) for x in re.findall(r"(\d+) bytes spill loads", log)]
    if not regs:
        raise RuntimeError(f"no ptxas report in the compile log: {log[-500:]!r}")
    return {"registers": max(regs), "spill_bytes": sum(stores) + sum(loads)}


def _split_args(batch: int, s: int, heads: int, context: int, splits: int) -> dict[str, int]:
    """The integer arguments a launch passes at this shape: the model's contiguous cache, one page of
    ``context`` positions per sequence (``kernels.mla``), bf16 tensors, as ``mla_decode`` computes them."""
    c, r, rows = 512, 64, s * heads
    return dict(
        n_rows=rows,
        n_heads=heads,
        s_q=s,
        page_size=context,
        num_splits=splits,
        stride_ql_b=s * heads * c,
        stride_ql_s=heads * c,
        stride_ql_h=c,
        stride_qp_b=s * heads * r,
        stride_qp_s=heads * r,
        stride_qp_h=r,
        stride_kv_page=context * c,
        stride_kv_tok=c,
        stride_pe_page=context * r,
        stride_pe_tok=r,
        stride_bt_b=1,
        stride_op_b=0 if splits == 1 else rows * splits * c,
        stride_op_row=0 if splits == 1 else splits * c,
        stride_op_split=0 if splits == 1 else c,
        stride_lse_b=0 if splits == 1 else rows * splits,
        stride_lse_row=0 if splits == 1 else splits,
        stride_out_b=s * heads * c,
        stride_out_s=heads * c,
        stride_out_h=c,
    )


def _combine_args(batch: int, s: int, heads: int, splits: int) -> dict[str, int]:
    a = _split_args(batch, s, heads, 1, splits)
    keys = ("n_heads", "num_splits", "stride_op_b", "stride_op_row", "stride_op_split", "stride_lse_b")
    keys += ("stride_lse_row", "stride_out_b", "stride_out_s", "stride_out_h")
    return {k: a[k] for k in keys}


_COMPILED: dict[str, dict] = {}


def _compile(fn, pointers: dict, ints: dict, consts: dict, warps: int, stages: int) -> dict:
    """One kernel compiled for sm_90, specialised as a launch with these arguments would be: an
    integer 1 becomes a constant, a multiple of 16 and every pointer carry divisibility 16."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    consts = {**consts, **{k: 1 for k, v in ints.items() if v == 1}}
    signature = {}
    for arg in fn.arg_names:
        if arg in consts:
            signature[arg] = "constexpr"
        elif arg in pointers:
            signature[arg] = pointers[arg]
        elif arg == "scale_log2":
            signature[arg] = "fp32"
        else:
            signature[arg] = "i32"
    aligned = [a for a in fn.arg_names if a in pointers or (a in ints and a not in consts and ints[a] % 16 == 0)]
    attrs = {(fn.arg_names.index(a),): [["tt.divisibility", 16]] for a in aligned}
    src = ASTSource(fn=fn, signature=signature, constexprs=consts, attrs=attrs)
    key = f"{src.hash()}-{warps}-{stages}"
    if key not in _COMPILED:
        triton.knobs.nvidia.dump_ptxas_log = True  # Triton prints ptxas -v's report: registers, spills
        log = io.StringIO()
        with contextlib.redirect_stdout(log):
            k = triton.compile(
                src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "num_stages": stages}
            )
        _COMPILED[key] = {
            "cubin_bytes": len(k.asm.get("cubin", b"")),
            "shared_bytes": int(k.metadata.shared),
            **_ptxas_report(log.getvalue()),
        }
    return _COMPILED[key]


def compile_plan(name: str, batch: int, s: int, heads: int, context: int, plan=None) -> list[dict]:
    from kernels.triton.mla_decode import _combine_kernel, _pow2, _split_kernel
    from kernels.triton.plan import DEFAULT_SMS, plan_decode

    c, r, rows = 512, 64, s * heads
    plan = plan or plan_decode(batch=batch, rows=rows, max_context=context, latent_dim=c, num_sms=DEFAULT_SMS)
    direct = plan.num_splits == 1
    ptr = {"Q_LAT": "*bf16", "Q_PE": "*bf16", "KV": "*bf16", "PE": "*bf16", "BLOCK_TABLE": "*i32"}
    ptr.update(LENGTHS="*i32", O_PART="*fp32", LSE_PART="*fp32", OUT="*bf16")
    consts = dict(C=c, R=r, BLOCK_C=_pow2(c), BLOCK_R=max(16, _pow2(r)), BLOCK_H=plan.block_h, BLOCK_N=plan.block_n)
    consts.update(DIRECT=direct, UPCAST=False)
    ints = _split_args(batch, s, heads, context, plan.num_splits)
    label = f"h{plan.block_h}n{plan.block_n}s{plan.num_splits} w{plan.num_warps}"
    found = [
        {
            "shape": name,
            "kernel": "_split_kernel",
            "plan": label,
            **_compile(_split_kernel, ptr, ints, consts, plan.num_warps, plan.num_stages),
        }
    ]
    if not direct:
        combine_ptr = {"O_PART": "*fp32", "LSE_PART": "*fp32", "OUT": "*bf16"}
        combine_consts = dict(C=c, BLOCK_C=_pow2(c), BLOCK_S=max(2, _pow2(plan.num_splits)))
        combine_ints = _combine_args(batch, s, heads, plan.num_splits)
        row = _compile(_combine_kernel, combine_ptr, combine_ints, combine_consts, 4, 2)
        found.append({"shape": name, "kernel": "_combine_kernel", "plan": label, **row})
    return found


def main() -> int:
    # a fresh cache: a cached kernel is not compiled again, and ptxas's report comes with compiling
    os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="aot-sm90-"))
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's default; said, to silence its warning
    from kernels.triton.plan import DecodePlan

    if ptxas() is None:
        print(json.dumps({"error": "no ptxas (Triton's wheel ships one in triton/backends/nvidia/bin)"}))
        return 3
    for name, (b, s, h, ctx) in SHAPES.items():
        for row in compile_plan(name, b, s, h, ctx):
            print(json.dumps(row), flush=True)
    for row in compile_plan("explicit DecodePlan(64, 32, 4)", 8, 1, 128, 4096, DecodePlan(64, 32, 4)):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
