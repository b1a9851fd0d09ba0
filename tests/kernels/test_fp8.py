"""FP8 expert GEMMs: quantisers, and the expert path against the same arithmetic in float64.

The rowwise recipe runs on the CPU (torch implements rowwise scaled_mm there). The grouped and the
blockwise (DeepSeek) recipes need an sm90 GPU and are tested under the `gpu` marker.
"""

from __future__ import annotations

import pytest
import torch

from kernels.fp8 import FP8_MAX, Fp8Experts, dequantize_blockwise, fp8_support, quantize_blockwise, quantize_rowwise
from kernels.moe import GroupedExperts
from tests.conftest import skip_without_cpu_fp8

E4M3_HALF_ULP = 2.0**-4  # largest relative rounding error of a normal e4m3 value (3 mantissa bits)


def test_rowwise_quantisation_maps_each_row_max_to_448():
    torch.manual_seed(0)
    x = torch.randn(64, 256) * torch.logspace(-2, 2, 64)[:, None]  # rows of very different ranges
    q, scale = quantize_rowwise(x)
    assert q.dtype == torch.float8_e4m3fn and scale.shape == (64, 1)
    assert torch.allclose(q.float().abs().amax(dim=1), torch.full((64,), FP8_MAX))
    back = q.float() * scale
    big = x.abs() > x.abs().amax(dim=1, keepdim=True) * 2.0**-6  # above e4m3's subnormal range
    assert ((back - x).abs()[big] <= E4M3_HALF_ULP * x.abs()[big] + 1e-12).all()


@pytest.mark.parametrize(("rows", "cols"), [(1, 128), (128, 128)])
def test_blockwise_quantisation(rows: int, cols: int):
    torch.manual_seed(1)
    x = torch.randn(300, 520)  # not multiples of the block: edges are partial blocks
    q, scale = quantize_blockwise(x, rows, cols)
    assert scale.shape == (-(-300 // rows), -(-520 // cols))
    back = dequantize_blockwise(q, scale, rows, cols)
    block_max = scale.repeat_interleave(rows, 0).repeat_interleave(cols, 1)[:300, :520] * FP8_MAX
    assert ((back - x).abs() <= E4M3_HALF_ULP * block_max).all()


def reference_fp8_experts(x: torch.Tensor, fp8: Fp8Experts, counts: list[int]) -> torch.Tensor:
    """The same quantised arithmetic in float64: dequantised operands, exact products."""
    outs, start = [], 0
    for e, n in enumerate(counts):
        rows = x[start : start + n]
        start += n
        w13 = fp8.w13_q[e].double() * fp8.w13_scale[e].double()[:, None]
        w2 = fp8.w2_q[e].double() * fp8.w2_scale[e].double()[:, None]
        xq, xs = quantize_rowwise(rows)
        h = (xq.double() * xs.double()) @ w13.T
        h = h.to(torch.bfloat16)  # the GEMM writes bf16, and SwiGLU runs in bf16 as in the layer
        gate, up = h.split(fp8.hidden, dim=-1)
        act = torch.nn.functional.silu(gate) * up
        aq, as_ = quantize_rowwise(act)
        outs.append((aq.double() * as_.double()) @ w2.T)
    return torch.cat(outs)


def test_rowwise_fp8_experts_compute_the_quantised_product():
    skip_without_cpu_fp8()
    torch.manual_seed(2)
    experts = GroupedExperts(4, 256, 128).bfloat16()
    fp8 = Fp8Experts(experts, "rowwise")
    counts = [10, 0, 33, 21]
    x = torch.randn(sum(counts), 256).bfloat16()
    out = fp8(x, torch.tensor(counts))
    assert out.dtype == torch.bfloat16 and out.shape == (64, 256)
    ref = reference_fp8_experts(x, fp8, counts)
    assert float((out.double() - ref).norm() / ref.norm()) < 1e-2
    exact = experts.float()(x.float(), torch.tensor(counts)).double()  # fp8 holds its own weights
    quantisation_error = float((out.double() - exact).norm() / exact.norm())
    assert 1e-3 < quantisation_error < 0.15  # fp8 is visibly lossy, but not broken


def test_fp8_support_says_why_not():
    from kernels.ops import probe_ops

    rowwise = fp8_support(torch.device("cpu"), "rowwise")
    assert (rowwise is None) == probe_ops("cpu").ok("scaled_mm_rowwise")  # what the probe ran, not the version
    reason = fp8_support(torch.device("cpu"), "blockwise")
    assert reason and "sm90" in reason


@pytest.mark.gpu
@pytest.mark.parametrize("recipe", ["rowwise", "blockwise"])
def test_fp8_experts_on_the_gpu(recipe: str):
    device = torch.device("cuda")
    if fp8_support(device, recipe):
        pytest.skip(fp8_support(device, recipe))
    torch.manual_seed(3)
    experts = GroupedExperts(4, 512, 256, dtype=torch.bfloat16, device=device)
    fp8 = Fp8Experts(experts, recipe)
    counts = torch.tensor([64, 0, 128, 32], device=device)
    x = torch.randn(224, 512, device=device, dtype=torch.bfloat16)
    out = fp8(x, counts)
    exact = experts(x, counts).double()
    assert float((out.double() - exact).norm() / exact.norm()) < 0.1


# --- DeepSeek's blockwise recipe: the scale layout cuBLAS (and torch's meta kernel) accepts ---------


@pytest.mark.parametrize(("dim", "hidden"), [(256, 128), (512, 256), (7168, 2048)])
def test_blockwise_scales_pass_torchs_meta_kernel(dim: int, hidden: int):
    """torch's meta kernel for scaled_mm checks what cuBLAS checks on sm90: activation scales
    [M, K/128] with strides (1, M), weight scales [L4, N/128] with strides (1, L4), L4 = K/128
    rounded up to 4. The shapes here have K/128 = 1, 2 and 16 (w2) and 2, 4 and 56 (w13)."""
    experts = GroupedExperts(4, dim, hidden, dtype=torch.bfloat16, device="meta")
    fp8 = Fp8Experts(experts, "blockwise")
    x = torch.randn(100, dim, dtype=torch.bfloat16, device="meta")
    out = fp8(x, torch.tensor([25, 0, 50, 25], device="meta"))
    assert out.shape == (100, dim) and out.dtype == torch.bfloat16


def test_the_row_major_weight_scales_are_what_the_meta_kernel_refuses():
    """The layout used before (weight scales transposed to row-major [K/128, N/128]) is refused:
    the meta-kernel test above has teeth."""
    import torch.nn.functional as F

    x_q = torch.empty(64, 256, dtype=torch.float8_e4m3fn, device="meta")
    w_q = torch.empty(384, 256, dtype=torch.float8_e4m3fn, device="meta")
    x_s = torch.empty(2, 64, device="meta").t()  # [64, 2], strides (1, 64): right
    w_s = torch.empty(3, 2, device="meta").t().contiguous()  # [2, 3] row-major: the old layout
    with pytest.raises(RuntimeError, match="blockwise scaling"):
        F.scaled_mm(
            x_q, w_q.t(), x_s, F.ScalingType.BlockWise1x128, w_s, F.ScalingType.BlockWise128x128,
            output_dtype=torch.bfloat16,
        )  # fmt: skip


def test_weight_scales_for_mm_keep_each_block_where_cublas_reads_it():
    from kernels.fp8 import padded_k_blocks, weight_scales_for_mm

    scale = torch.arange(3 * 2, dtype=torch.float32).view(3, 2) + 1  # N/128 = 3 blocks, K/128 = 2
    mm = weight_scales_for_mm(scale)
    assert padded_k_blocks(256) == 4 and padded_k_blocks(2048) == 16 and padded_k_blocks(128) == 4
    assert mm.shape == (4, 3) and mm.stride() == (1, 4)
    for kb in range(2):
        for nb in range(3):
            assert mm[kb, nb] == scale[nb, kb]  # block (n, k) of w is read at [k, n] of w.t()'s scales
    assert torch.all(mm[2:] == 1.0)  # padding, never read


def test_blockwise_dequantised_weights_match_the_quantiser():
    torch.manual_seed(4)
    experts = GroupedExperts(2, 256, 128)
    fp8 = Fp8Experts(experts, "blockwise")
    q, s = quantize_blockwise(experts.w2[1].detach(), 128, 128)
    assert torch.equal(fp8.dequantized_weight("w2", 1), dequantize_blockwise(q, s, 128, 128))


def test_the_probe_says_why_an_op_cannot_run_and_checks_values():
    from kernels.ops import probe_ops

    probe = probe_ops("cpu")
    rowwise = probe.results["scaled_mm_rowwise"]
    assert (rowwise.ok and rowwise.rel_error < 1e-2) or (not rowwise.ok and rowwise.reason)
    assert not probe.ok("scaled_mm_blockwise") and probe.reason("scaled_mm_blockwise")
    assert probe.ok("grouped_mm_bf16") == (torch.nn.functional.grouped_mm is not None)


def test_fp8_gemm_on_prequantised_inputs_is_the_forward_without_quantising():
    skip_without_cpu_fp8()
    torch.manual_seed(5)
    experts = GroupedExperts(4, 256, 128).bfloat16()
    fp8 = Fp8Experts(experts, "rowwise")
    counts = torch.tensor([10, 0, 33, 21])
    offsets = torch.cumsum(counts, 0, dtype=torch.int32)
    x = torch.randn(64, 256).bfloat16()
    h = fp8.gemm(*fp8.quantize(x), "w13", offsets)
    gate, up = h.split(128, dim=-1)
    out = fp8.gemm(*fp8.quantize(torch.nn.functional.silu(gate) * up), "w2", offsets).bfloat16()
    assert torch.equal(out, fp8(x, counts))
