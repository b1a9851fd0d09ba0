"""The fused MLA decode kernel through Triton's interpreter (TRITON_INTERPRET=1) on the CPU.

The kernel is checked against a float64 reference written out here (loops over tokens and heads,
`tests.kernels.reference.attention`), against its pure-torch reference and, inside the MLA layer,
against the eager absorbed and naive forms: several head counts, ragged lengths that are not
multiples of the block, S = 1 and 2 new tokens, contiguous and paged caches, several splits.
Unused pages and positions past each length hold NaN (FlashMLA's test does the same), so any
out-of-bounds read shows up in the output. Shapes are small: the interpreter runs each program in
numpy, on 2 cores.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch

from kernels.mla import MLA, LatentKVCache
from kernels.paged import PagedLatentKVCache
from kernels.triton import FusedUnavailable
from kernels.triton.plan import DecodePlan, plan_decode
from kernels.triton.reference import mla_decode_reference
from tests.conftest import require_component
from tests.kernels import reference
from tests.kernels.configs import tiny_v3, v2_lite_like
from tests.kernels.test_attention import randomize_norms

HOW = "install the test extra (pip install -e '.[test]'), which brings triton"


@pytest.fixture
def interpreter():
    """Triton present, and running its kernels in the interpreter (tests/conftest.py selects it
    when there is no GPU)."""
    require_component("triton", importlib.util.find_spec("triton") is not None, HOW)
    import triton

    version = tuple(int(p) for p in triton.__version__.split(".")[:2])
    # Before 3.8 the interpreter turns a loop bound computed in the kernel into an int with a numpy
    # call that numpy 2.4 refuses; compiled kernels (the GPU's Triton 3.6) are not affected.
    require_component(f"triton >= 3.8 (found {triton.__version__})", version >= (3, 8), HOW)
    from kernels.triton import mla_decode as module

    if not module.interpreted():
        pytest.skip("Triton compiles kernels in this session (a GPU is present): the gpu tests cover them")


def mla_decode(*args, **kwargs):
    from kernels.triton.mla_decode import mla_decode as kernel

    return kernel(*args, **kwargs)


# --- inputs -------------------------------------------------------------------------------------


@dataclasses.dataclass
class PagedInputs:
    q_lat: torch.Tensor  # [B, S, H, C]
    q_pe: torch.Tensor  # [B, S, H, R]
    kv: torch.Tensor  # [P, page, C]
    pe: torch.Tensor  # [P, page, R]
    block_table: torch.Tensor  # int32 [B, max_pages]
    lengths: torch.Tensor  # int32 [B]


def paged_inputs(lengths, s, heads, c, r, page, dtype, seed=0) -> PagedInputs:
    """Random queries and a paged cache whose pages sit in shuffled order; everything unused is NaN.

    Page 0 is never used and stays NaN; block-table entries past a sequence's last page point at
    it, so reading one of them (or a position past a length) poisons the output.
    """
    g = torch.Generator().manual_seed(seed)
    b = len(lengths)
    max_pages = max(-(-n // page) for n in lengths) + 1  # one spare entry per sequence, never valid
    used = [-(-n // page) for n in lengths]
    order = (torch.randperm(sum(used), generator=g) + 1).tolist()  # physical pages 1.., shuffled
    table = torch.zeros(b, max_pages, dtype=torch.int32)
    kv = torch.full((sum(used) + 1, page, c), float("nan"), dtype=dtype)
    pe = torch.full((sum(used) + 1, page, r), float("nan"), dtype=dtype)
    for i, n in enumerate(lengths):
        for j in range(used[i]):
            p = order.pop()
            table[i, j] = p
            valid = min(page, n - j * page)
            kv[p, :valid] = torch.randn(valid, c, generator=g).to(dtype)
            pe[p, :valid] = torch.randn(valid, r, generator=g).to(dtype)
    q_lat = torch.randn(b, s, heads, c, generator=g).to(dtype)
    q_pe = torch.randn(b, s, heads, r, generator=g).to(dtype)
    return PagedInputs(q_lat, q_pe, kv, pe, table, torch.tensor(lengths, dtype=torch.int32))


def float64_reference(x: PagedInputs, scale: float) -> torch.Tensor:
    """Each sequence on its own: read its positions page by page, then causal attention in float64."""
    b, s, h, c = x.q_lat.shape
    page = x.kv.shape[1]
    out = torch.zeros(b, s, h, c, dtype=torch.float64)
    for i in range(b):
        n = int(x.lengths[i])
        rows = [(int(x.block_table[i, t // page]), t % page) for t in range(n)]
        kv = torch.stack([x.kv[p, o] for p, o in rows]).double()  # [n, C]
        pe = torch.stack([x.pe[p, o] for p, o in rows]).double()
        key = torch.cat([kv, pe], dim=-1)[:, None].expand(n, h, -1)  # one 576-wide key for all heads
        value = kv[:, None].expand(n, h, c)
        q = torch.cat([x.q_lat[i], x.q_pe[i]], dim=-1).double()  # [S, H, C+R]
        out[i] = reference.attention(q, key, value, scale, n - s)
    return out


def cos_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """FlashMLA's closeness measure: 1 - 2<a,b> / (|a|^2 + |b|^2), 0 when equal."""
    a, b = a.double(), b.double()
    return float(1 - 2 * (a * b).sum() / (a * a + b * b).sum())


TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (2e-2, 2e-2), torch.float16: (3e-3, 3e-3)}


def assert_matches(got: torch.Tensor, want: torch.Tensor) -> None:
    assert torch.isfinite(got).all(), "NaN or inf in the output: an unused page or position was read"
    atol, rtol = TOLERANCE[got.dtype]
    torch.testing.assert_close(got.double(), want.double(), atol=atol, rtol=rtol)
    assert cos_diff(got, want) < 1e-5


# --- the kernel on its own ----------------------------------------------------------------------

KERNEL_CASES = {
    # id: lengths, S, heads, C, R, page, dtype, plan
    "h8-s1-bf16-ragged": ([1, 37, 100, 64], 1, 8, 64, 16, 16, torch.bfloat16, None),
    "h16-s2-bf16-splits3": ([2, 45, 130], 2, 16, 64, 16, 16, torch.bfloat16, DecodePlan(16, 16, 3)),
    "h4-s2-fp16-splits7": ([5, 77, 33], 2, 4, 64, 16, 32, torch.float16, DecodePlan(16, 16, 7)),
    "h24-s1-fp32-two-head-blocks": ([19, 70], 1, 24, 64, 16, 16, torch.float32, DecodePlan(16, 32, 2)),
    "h3-s2-fp32-odd-widths": ([9, 40], 2, 3, 48, 8, 8, torch.float32, DecodePlan(16, 16, 4)),
    "v3-widths-h16-s2-bf16": ([70, 33], 2, 16, 512, 64, 64, torch.bfloat16, DecodePlan(32, 32, 2)),
}


@pytest.mark.parametrize("case", sorted(KERNEL_CASES))
def test_kernel_matches_float64_and_torch_references(case: str, interpreter):
    lengths, s, heads, c, r, page, dtype, plan = KERNEL_CASES[case]
    x = paged_inputs(lengths, s, heads, c, r, page, dtype)
    scale = (c // 4 + r) ** -0.5
    args = (x.q_lat, x.q_pe, x.kv, x.pe, x.block_table, x.lengths, scale)
    got = mla_decode(*args, plan=plan)
    assert got.shape == x.q_lat.shape and got.dtype == dtype
    assert_matches(got, float64_reference(x, scale))
    # The torch reference in fp32 from the same (rounded) inputs, as FlashMLA's test compares.
    wide = [t.float() for t in (x.q_lat, x.q_pe, x.kv, x.pe)]
    assert_matches(got, mla_decode_reference(*wide, x.block_table, x.lengths, scale))


def test_splits_do_not_change_the_result(interpreter):
    x = paged_inputs([3, 90, 61], 2, 8, 64, 16, 16, torch.float32, seed=3)
    args = (x.q_lat, x.q_pe, x.kv, x.pe, x.block_table, x.lengths, 0.2)
    one = mla_decode(*args, plan=DecodePlan(16, 16, 1))
    for splits in (2, 5, 12):  # 12 splits leave the 3-token sequence with empty ones
        torch.testing.assert_close(mla_decode(*args, plan=DecodePlan(16, 16, splits)), one, atol=1e-6, rtol=1e-5)


def test_kernel_refuses_mismatched_inputs(interpreter):
    x = paged_inputs([10], 1, 4, 64, 16, 16, torch.float32)
    with pytest.raises(ValueError, match="share one of"):
        mla_decode(x.q_lat.bfloat16(), x.q_pe, x.kv, x.pe, x.block_table, x.lengths, 0.1)
    with pytest.raises(ValueError, match="block_table must be int32"):
        mla_decode(x.q_lat, x.q_pe, x.kv, x.pe, x.block_table.long(), x.lengths, 0.1)
    with pytest.raises(ValueError, match="q_pe must be"):
        mla_decode(x.q_lat, x.q_pe[:, :, :2], x.kv, x.pe, x.block_table, x.lengths, 0.1)


def test_cpu_tensors_outside_the_interpreter_are_refused(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    a = tiny_v3()
    layer = MLA(a, max_seq_len=16)
    cache = LatentKVCache(1, 16, a, torch.float32)
    with pytest.raises(FusedUnavailable, match="CUDA|not installed"):
        layer.decode(torch.randn(1, 1, a.dim), cache, 3, "fused")


# --- inside the MLA layer -----------------------------------------------------------------------


def sixteen_heads():
    return dataclasses.replace(tiny_v3(), n_heads=16)


LAYER_CONFIGS = {"tiny-v3-8h": tiny_v3, "v2-lite-like-4h": v2_lite_like, "tiny-v3-16h": sixteen_heads}


def poison_past(cache, lengths) -> None:
    """NaN into every position at and past each sequence's length (and every unused page)."""
    nan = float("nan")
    if isinstance(cache, LatentKVCache):
        for i, n in enumerate(lengths):
            cache.kv[i, n:] = nan
            cache.pe[i, n:] = nan
        return
    used = set()
    for i, n in enumerate(lengths):
        for t in range(n):
            used.add((int(cache.block_table[i, t // cache.page_size]), t % cache.page_size))
    for p in range(cache.kv.shape[0]):
        for o in range(cache.page_size):
            if (p, o) not in used:
                cache.kv[p, o] = nan
                cache.pe[p, o] = nan


def make_cache(kind: str, a, batch: int, capacity: int, dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    if kind == "paged":
        page = 8
        pages = batch * capacity // page
        table = (torch.randperm(pages, generator=g) + 1).view(batch, capacity // page)  # page 0 unused
        cache = PagedLatentKVCache(table, pages + 1, page, a, dtype)
        positions = torch.arange(capacity)[None, :].expand(batch, -1)
        cache.write(
            positions,
            torch.randn(batch, capacity, a.kv_lora_rank, generator=g).to(dtype),
            torch.randn(batch, capacity, a.qk_rope_head_dim, generator=g).to(dtype),
        )
        return cache
    cache = LatentKVCache(batch, capacity, a, dtype)
    cache.kv.copy_(torch.randn(cache.kv.shape, generator=g))
    cache.pe.copy_(torch.randn(cache.pe.shape, generator=g))
    return cache


@pytest.mark.parametrize("config", sorted(LAYER_CONFIGS))
@pytest.mark.parametrize("s", [1, 2])
@pytest.mark.parametrize("layout", ["contiguous-uniform", "contiguous-ragged", "paged-ragged"])
def test_fused_equals_absorbed_and_naive_in_the_layer(config: str, s: int, layout: str, interpreter):
    a = LAYER_CONFIGS[config]()
    torch.manual_seed(31)
    layer = MLA(a, max_seq_len=48)
    randomize_norms(layer)
    kind, batching = layout.split("-")
    cache = make_cache(kind, a, 3, 48, torch.float32, seed=32)
    start = 29 if batching == "uniform" else torch.tensor([3, 40, 17])
    starts = [start] * 3 if isinstance(start, int) else start.tolist()
    poison_past(cache, starts)  # the new tokens' own entries are written by decode
    x = torch.randn(3, s, a.dim)
    with torch.no_grad():
        fused = layer.decode(x, cache, start, "fused")
        absorbed = layer.decode(x, cache, start, "absorbed")
        naive = layer.decode(x, cache, start, "naive")
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(fused, absorbed, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused, naive, atol=1e-5, rtol=1e-4)


def test_fused_decode_equals_the_full_causal_pass(interpreter):
    a = tiny_v3()
    torch.manual_seed(33)
    layer = MLA(a, max_seq_len=32)
    randomize_norms(layer)
    x = torch.randn(3, 12, a.dim)
    with torch.no_grad():
        full = layer(x)
        cache = LatentKVCache(3, 32, a, torch.float32)
        layer(x[:, :9], cache=cache)
        one = layer.decode(x[:, 9:10], cache, 9, "fused")
        two = layer.decode(x[:, 10:12], cache, 10, "fused")  # two tokens at once (MTP)
        # A ragged step: sequence i decodes its token at position p_i over a cache holding 12;
        # the entries past p_i are stale and must not be seen.
        layer(x, cache=cache)
        p = torch.tensor([4, 11, 7])
        ragged = layer.decode(x[torch.arange(3), p][:, None], cache, p, "fused")
    torch.testing.assert_close(one[:, 0], full[:, 9], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(two, full[:, 10:12], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(ragged[:, 0], full[torch.arange(3), p], atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_in_half_precision_is_as_close_to_float64_as_absorbed(dtype, interpreter):
    a = dataclasses.replace(tiny_v3(), n_heads=16)
    torch.manual_seed(34)
    layer = MLA(a, max_seq_len=64)
    randomize_norms(layer)
    cache = make_cache("paged", a, 3, 64, torch.float32, seed=35)
    start = torch.tensor([10, 61, 33])
    poison_past(cache, start.tolist())
    x = torch.randn(3, 2, a.dim)
    with torch.no_grad():
        exact = layer.double().decode(x.double(), cache.double(), start, "absorbed")
        layer.to(dtype)
        half_cache = cache.to(dtype)
        fused = layer.decode(x.to(dtype), half_cache, start, "fused")
        absorbed = layer.decode(x.to(dtype), half_cache, start, "absorbed")
    assert torch.isfinite(fused).all()
    fused_err = float((fused.double() - exact).norm() / exact.norm())
    absorbed_err = float((absorbed.double() - exact).norm() / exact.norm())
    assert fused_err < 2e-2 and cos_diff(fused, exact) < 1e-4
    assert fused_err < 1.5 * absorbed_err + 1e-3  # fp32 accumulation: no worse than the eager form


# --- the launch rule ----------------------------------------------------------------------------


def test_plan_for_v3_shapes():
    v3 = plan_decode(batch=128, rows=128, max_context=8192, latent_dim=512, num_sms=132)
    assert (v3.block_h, v3.block_n, v3.num_splits, v3.num_warps) == (64, 32, 1, 8)  # 256 programs fill 132 SMs
    assert v3.head_blocks(128) == 2
    half = plan_decode(batch=64, rows=128, max_context=8192, latent_dim=512, num_sms=132)
    assert half.num_splits == 3  # 128 programs: split for two waves
    one = plan_decode(batch=1, rows=128, max_context=16384, latent_dim=512, num_sms=132)
    assert one.num_splits == 64  # 256 positions each
    tp8 = plan_decode(batch=128, rows=16, max_context=4096, latent_dim=512, num_sms=132)
    assert (tp8.block_h, tp8.num_splits) == (16, 3)
    mtp = plan_decode(batch=128, rows=256, max_context=4096, latent_dim=512, num_sms=132)
    assert (mtp.block_h, mtp.head_blocks(256), mtp.num_splits) == (64, 4, 1)
    short = plan_decode(batch=2, rows=8, max_context=300, latent_dim=64, num_sms=132)
    assert (short.block_h, short.block_n, short.num_splits) == (16, 64, 2)  # no split under 256 positions


def test_plan_overrides_and_bad_values():
    p = plan_decode(batch=128, rows=128, max_context=8192, latent_dim=512, block_h=32, block_n=64, num_splits=8)
    assert (p.block_h, p.block_n, p.num_splits) == (32, 64, 8)
    with pytest.raises(ValueError, match="power of two"):
        DecodePlan(block_h=24, block_n=32, num_splits=1)
    with pytest.raises(ValueError, match="at least 1"):
        DecodePlan(block_h=16, block_n=32, num_splits=0)
