"""Fused split-KV MLA decode over the latent cache (the absorbed form), in Triton.

Attention of ``S`` new tokens per sequence against that sequence's latent cache, where the key of
a cached position is its 576 values (``kv`` 512 + ``pe`` 64 for V3) and the value is its first 512:

    o_lat[b, s, h] = softmax_t(scale * (q_lat[b, s, h] . kv[t] + q_pe[b, s, h] . pe[t])) @ kv[t]

over the positions ``t`` that token ``s`` may see: ``t < length[b] - S + s + 1`` (the new tokens
are already in the cache, each sees itself and the ones before it).

Pass 1 (``_split_kernel``): a program takes one block of query rows (heads x new tokens) of one
sequence and one split of that sequence's context. It loads each ``[block_n, 576]`` cache tile
once and uses it for the scores of all its rows and for their output, keeps the running maximum
and sum of the softmax in registers and accumulates ``o_lat`` in fp32. Pass 2 (``_combine_kernel``)
merges the splits by their log-sum-exp. With one split, pass 1 writes the output itself.

The cache may be paged (vLLM, FlashMLA): ``kv [pages, page_size, C]`` and ``pe [pages,
page_size, R]`` with a ``block_table [B, max_pages]`` of page numbers; a contiguous cache
``[B, T_max, C]`` is the special case of one page of ``T_max`` positions per sequence. The kernel
reads only the positions below each sequence's length, so pages past the end are never touched.

Nothing here reads a tensor's value on the host (no device sync), so a decode step that calls it
can be captured in a CUDA graph. When Triton is imported with ``TRITON_INTERPRET=1`` the same
kernels run through Triton's interpreter on CPU tensors (slow; for tests).

Shape legend: B batch, S new tokens, H heads, C latent (kv_lora_rank), R RoPE key dim.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from triton.runtime.jit import JITFunction

from kernels.triton import FusedUnavailable, interpreter_requested
from kernels.triton.plan import DEFAULT_SMS, DecodePlan, plan_decode

_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


@triton.jit
def _split_kernel(
    Q_LAT,
    Q_PE,
    KV,
    PE,
    BLOCK_TABLE,
    LENGTHS,
    O_PART,
    LSE_PART,
    OUT,
    scale_log2,
    n_rows,
    n_heads,
    s_q,
    page_size,
    num_splits,
    stride_ql_b,
    stride_ql_s,
    stride_ql_h,
    stride_qp_b,
    stride_qp_s,
    stride_qp_h,
    stride_kv_page,
    stride_kv_tok,
    stride_pe_page,
    stride_pe_tok,
    stride_bt_b,
    stride_op_b,
    stride_op_row,
    stride_op_split,
    stride_lse_b,
    stride_lse_row,
    stride_out_b,
    stride_out_s,
    stride_out_h,
    C: tl.constexpr,
    R: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DIRECT: tl.constexpr,
    UPCAST: tl.constexpr,
):
    pid_h = tl.program_id(0)  # fastest: the head blocks of one split, which share its cache tiles, run together
    pid_split = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)  # 64-bit offsets: a batch of long caches passes 2**31 elements

    length = tl.load(LENGTHS + b)
    chunk = tl.cdiv(tl.cdiv(length, num_splits), BLOCK_N) * BLOCK_N
    start = pid_split * chunk
    end = tl.minimum(start + chunk, length)

    rows = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    row_ok = rows < n_rows
    s_idx = rows // n_heads
    h_idx = rows % n_heads
    limit = length - s_q + s_idx + 1  # token s sees the cache up to and including itself

    offs_c = tl.arange(0, BLOCK_C)
    offs_r = tl.arange(0, BLOCK_R)
    c_ok = offs_c < C
    r_ok = offs_r < R
    q_lat = tl.load(
        Q_LAT + b * stride_ql_b + s_idx[:, None] * stride_ql_s + h_idx[:, None] * stride_ql_h + offs_c[None, :],
        mask=row_ok[:, None] & c_ok[None, :],
        other=0.0,
    )
    q_pe = tl.load(
        Q_PE + b * stride_qp_b + s_idx[:, None] * stride_qp_s + h_idx[:, None] * stride_qp_h + offs_r[None, :],
        mask=row_ok[:, None] & r_ok[None, :],
        other=0.0,
    )
    if UPCAST:
        q_lat = q_lat.to(tl.float32)
        q_pe = q_pe.to(tl.float32)

    m_i = tl.full([BLOCK_H], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_H], dtype=tl.float32)
    acc = tl.zeros([BLOCK_H, BLOCK_C], dtype=tl.float32)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_ok = offs_n < end
        page = tl.load(BLOCK_TABLE + b * stride_bt_b + offs_n // page_size, mask=n_ok, other=0).to(tl.int64)
        tok = offs_n % page_size
        kv = tl.load(
            KV + page[:, None] * stride_kv_page + tok[:, None] * stride_kv_tok + offs_c[None, :],
            mask=n_ok[:, None] & c_ok[None, :],
            other=0.0,
        )
        pe = tl.load(
            PE + page[:, None] * stride_pe_page + tok[:, None] * stride_pe_tok + offs_r[None, :],
            mask=n_ok[:, None] & r_ok[None, :],
            other=0.0,
        )
        if UPCAST:
            kv_dot = kv.to(tl.float32)
            qk = tl.dot(q_lat, tl.trans(kv_dot), input_precision="ieee")
            qk = tl.dot(q_pe, tl.trans(pe.to(tl.float32)), qk, input_precision="ieee")
        else:
            kv_dot = kv
            qk = tl.dot(q_lat, tl.trans(kv))
            qk = tl.dot(q_pe, tl.trans(pe), qk)
        qk = qk * scale_log2
        visible = n_ok[None, :] & (offs_n[None, :] < limit[:, None])
        qk = tl.where(visible, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with nothing visible yet stays at 0
        alpha = tl.exp2(m_i - m_safe)
        p = tl.exp2(qk - m_safe[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        # P is rounded to the cache's dtype for the second product, as FlashMLA does.
        p_dot = p.to(kv.dtype).to(tl.float32) if UPCAST else p.to(kv.dtype)
        if UPCAST:
            acc = tl.dot(p_dot, kv_dot, acc * alpha[:, None], input_precision="ieee")
        else:
            acc = tl.dot(p_dot, kv_dot, acc * alpha[:, None])
        m_i = m_new

    has = l_i > 0.0
    o = acc / tl.where(has, l_i, 1.0)[:, None]
    if DIRECT:
        tl.store(
            OUT + b * stride_out_b + s_idx[:, None] * stride_out_s + h_idx[:, None] * stride_out_h + offs_c[None, :],
            o,
            mask=row_ok[:, None] & c_ok[None, :],
        )
    else:
        tl.store(
            O_PART + b * stride_op_b + rows[:, None] * stride_op_row + pid_split * stride_op_split + offs_c[None, :],
            o,
            mask=row_ok[:, None] & c_ok[None, :],
        )
        lse = tl.where(has, m_i + tl.log2(tl.where(has, l_i, 1.0)), float("-inf"))
        tl.store(LSE_PART + b * stride_lse_b + rows * stride_lse_row + pid_split, lse, mask=row_ok)


@triton.jit
def _combine_kernel(
    O_PART,
    LSE_PART,
    OUT,
    n_heads,
    num_splits,
    stride_op_b,
    stride_op_row,
    stride_op_split,
    stride_lse_b,
    stride_lse_row,
    stride_out_b,
    stride_out_s,
    stride_out_h,
    C: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    row = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    offs_s = tl.arange(0, BLOCK_S)
    offs_c = tl.arange(0, BLOCK_C)
    c_ok = offs_c < C
    lse = tl.load(
        LSE_PART + b * stride_lse_b + row * stride_lse_row + offs_s, mask=offs_s < num_splits, other=float("-inf")
    )
    m = tl.max(lse, 0)  # finite: every row sees at least the first cache position
    w = tl.exp2(lse - m)
    w = w / tl.sum(w, 0)
    acc = tl.zeros([BLOCK_C], dtype=tl.float32)
    base = O_PART + b * stride_op_b + row * stride_op_row + offs_c
    for sp in range(0, num_splits):
        w_sp = tl.sum(tl.where(offs_s == sp, w, 0.0), 0)
        if w_sp > 0.0:  # an empty split wrote zeros and -inf; skipping it saves its read
            acc += w_sp * tl.load(base + sp * stride_op_split, mask=c_ok, other=0.0)
    s_idx = row // n_heads
    h_idx = row % n_heads
    tl.store(OUT + b * stride_out_b + s_idx * stride_out_s + h_idx * stride_out_h + offs_c, acc, mask=c_ok)


def interpreted() -> bool:
    """Whether these kernels run in Triton's interpreter: Triton fixes that when it is imported,
    from ``TRITON_INTERPRET`` (its own library functions too, so it cannot change later)."""
    return not isinstance(_split_kernel, JITFunction)


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _check(q_lat, q_pe, kv, pe, block_table, lengths) -> None:
    b, s, h, c = q_lat.shape
    r = q_pe.shape[-1]
    if q_pe.shape != (b, s, h, r):
        raise ValueError(f"q_pe must be [B, S, H, R] = [{b}, {s}, {h}, R], not {list(q_pe.shape)}")
    if kv.dim() != 3 or pe.dim() != 3 or kv.shape[:2] != pe.shape[:2] or kv.shape[2] != c or pe.shape[2] != r:
        raise ValueError(
            f"kv and pe must be [pages, page_size, {c}] and [pages, page_size, {r}], "
            f"not {list(kv.shape)} and {list(pe.shape)}"
        )
    if block_table.dim() != 2 or block_table.shape[0] != b or block_table.dtype != torch.int32:
        raise ValueError(
            f"block_table must be int32 [{b}, max_pages], not {block_table.dtype} {list(block_table.shape)}"
        )
    if lengths.shape != (b,) or lengths.dtype != torch.int32:
        raise ValueError(f"lengths must be int32 [{b}], not {lengths.dtype} {list(lengths.shape)}")
    dtypes = {t.dtype for t in (q_lat, q_pe, kv, pe)}
    if len(dtypes) != 1 or q_lat.dtype not in _DTYPES:
        raise ValueError(f"q_lat, q_pe, kv and pe must share one of bf16, fp16, fp32; got {sorted(map(str, dtypes))}")
    for name, t in (("q_lat", q_lat), ("q_pe", q_pe), ("kv", kv), ("pe", pe)):
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must be contiguous in its last dimension")
    devices = {t.device for t in (q_lat, q_pe, kv, pe, block_table, lengths)}
    if len(devices) != 1:
        raise ValueError(f"all inputs must be on one device; got {sorted(map(str, devices))}")


def mla_decode(
    q_lat: torch.Tensor,
    q_pe: torch.Tensor,
    kv: torch.Tensor,
    pe: torch.Tensor,
    block_table: torch.Tensor,
    lengths: torch.Tensor,
    softmax_scale: float,
    plan: DecodePlan | None = None,
) -> torch.Tensor:
    """``o_lat [B, S, H, C]`` (the dtype of the inputs) of the absorbed MLA decode; see the module doc.

    Args:
        q_lat: ``[B, S, H, C]`` queries absorbed into the latent space (``q_nope @ W_UK``).
        q_pe: ``[B, S, H, R]`` RoPE part of the queries.
        kv, pe: the cache, ``[pages, page_size, C]`` and ``[pages, page_size, R]``.
        block_table: int32 ``[B, max_pages]``: page ``j`` of sequence ``b`` is ``kv[block_table[b, j]]``.
        lengths: int32 ``[B]``: cached positions of each sequence, the S new tokens included
            (S <= length <= max_pages * page_size; not checked on the host, which would sync).
        plan: tile sizes and splits; by default :func:`kernels.triton.plan.plan_decode`.
    """
    _check(q_lat, q_pe, kv, pe, block_table, lengths)
    interpret = interpreted()
    if not interpret and q_lat.device.type != "cuda":
        hint = (
            "TRITON_INTERPRET was set after Triton was imported; set it before"
            if interpreter_requested()
            else "TRITON_INTERPRET=1 runs it through Triton's interpreter (slow, for tests)"
        )
        raise FusedUnavailable(f"the fused decode kernel runs on CUDA tensors, not {q_lat.device.type} ({hint})")
    b, s, h, c = q_lat.shape
    r = q_pe.shape[-1]
    rows = s * h
    page_size = kv.shape[1]
    if plan is None:
        sms = torch.cuda.get_device_properties(q_lat.device).multi_processor_count if q_lat.is_cuda else DEFAULT_SMS
        plan = plan_decode(batch=b, rows=rows, max_context=block_table.shape[1] * page_size, latent_dim=c, num_sms=sms)
    out = torch.empty_like(q_lat, memory_format=torch.contiguous_format)
    direct = plan.num_splits == 1
    if direct:  # no partials: pass 1 writes the output
        o_part = lse = out.new_empty(0, dtype=torch.float32)
        op_strides, lse_strides = (0, 0, 0), (0, 0)
    else:
        o_part = torch.empty(b, rows, plan.num_splits, c, device=q_lat.device, dtype=torch.float32)
        lse = torch.empty(b, rows, plan.num_splits, device=q_lat.device, dtype=torch.float32)
        op_strides, lse_strides = o_part.stride()[:3], lse.stride()[:2]
    # The interpreter's tl.dot multiplies bf16's uint16 storage as integers (Triton 3.6 to 3.9); in the
    # interpreter the tiles are widened to fp32 first, which is exact for bf16 and fp16 values.
    upcast = interpret or q_lat.dtype == torch.float32
    block_c, block_r = _pow2(c), max(16, _pow2(r))
    grid = (plan.head_blocks(rows), plan.num_splits, b)
    _split_kernel[grid](
        q_lat,
        q_pe,
        kv,
        pe,
        block_table,
        lengths,
        o_part,
        lse,
        out,
        softmax_scale * math.log2(math.e),
        rows,
        h,
        s,
        page_size,
        plan.num_splits,
        *q_lat.stride()[:3],
        *q_pe.stride()[:3],
        *kv.stride()[:2],
        *pe.stride()[:2],
        block_table.stride(0),
        *op_strides,
        *lse_strides,
        *out.stride()[:3],
        C=c,
        R=r,
        BLOCK_C=block_c,
        BLOCK_R=block_r,
        BLOCK_H=plan.block_h,
        BLOCK_N=plan.block_n,
        DIRECT=direct,
        UPCAST=upcast,
        num_warps=plan.num_warps,
        num_stages=plan.num_stages,
    )
    if not direct:
        _combine_kernel[(rows, b)](
            o_part,
            lse,
            out,
            h,
            plan.num_splits,
            *op_strides,
            *lse_strides,
            *out.stride()[:3],
            C=c,
            BLOCK_C=block_c,
            BLOCK_S=max(2, _pow2(plan.num_splits)),
            num_warps=4,
        )
    return out
