"""YaRN in MLA against DeepSeek's reference math (inference/model.py), written out here in float64."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from kernels.mla import MLA
from meter.config.models import load_model
from tests.kernels import reference
from tests.kernels.configs import tiny_v3
from tests.kernels.test_attention import mla_params, randomize_norms, rel_err


def yarn_inv_freq(dim: int, theta: float, factor: float, original: int, beta_fast: float, beta_slow: float) -> list:
    """DeepSeek-V3 ``precompute_freqs_cis`` (seqlen > original_seq_len branch), in float64."""

    def correction_dim(turns: float) -> float:
        return dim * math.log(original / (turns * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    out = []
    for i in range(dim // 2):
        base = 1.0 / theta ** (2 * i / dim)
        ramp = min(max((i - low) / (high - low), 0.0), 1.0)
        smooth = 1.0 - ramp
        out.append(base / factor * (1 - smooth) + base * smooth)
    return out


def yarn_softmax_scale(qk_head_dim: int, factor: float, mscale: float) -> float:
    """DeepSeek-V3 ``MLA.__init__``: the scale times mscale squared."""
    m = 0.1 * mscale * math.log(factor) + 1.0
    return qk_head_dim**-0.5 * m * m


def test_v3_tables_and_scale_at_16k_follow_the_reference():
    a = load_model("deepseek-v3").args
    small = dataclasses.replace(a, dim=64, n_heads=2, q_lora_rank=32)  # V3's RoPE and head dims, small weights
    layer = MLA(small, max_seq_len=16384)
    freqs = yarn_inv_freq(64, 10000.0, 40.0, 4096, 32, 1)
    positions = torch.tensor([0, 1, 17, 1000, 4095, 4096, 9000, 16383], dtype=torch.float64)
    angles = positions[:, None] * torch.tensor(freqs, dtype=torch.float64)[None, :]
    # float32 tables: an angle near 16K rad carries about 1e-3 of rounding.
    torch.testing.assert_close(layer.cos[positions.long()].double(), angles.cos(), atol=2e-3, rtol=0)
    torch.testing.assert_close(layer.sin[positions.long()].double(), angles.sin(), atol=2e-3, rtol=0)
    assert layer.softmax_scale == pytest.approx(yarn_softmax_scale(192, 40.0, 1.0), rel=1e-12)
    assert layer.softmax_scale / 192**-0.5 == pytest.approx(1.8739, abs=1e-4)  # (0.1 ln 40 + 1)^2
    # The slowest pairs turn 40x slower; the fastest are untouched.
    assert freqs[-1] == pytest.approx(10000.0 ** (-62 / 64) / 40, rel=1e-12) and freqs[0] == 1.0


def test_no_yarn_up_to_the_original_length():
    a = load_model("deepseek-v3").args
    small = dataclasses.replace(a, dim=64, n_heads=2, q_lora_rank=32)
    layer = MLA(small, max_seq_len=4096)
    plain = [10000.0 ** (-2 * i / 64) for i in range(32)]
    angles = torch.arange(4096, dtype=torch.float64)[:, None] * torch.tensor(plain, dtype=torch.float64)
    torch.testing.assert_close(layer.cos.double(), angles.cos(), atol=1e-3, rtol=0)
    assert not layer.yarn and layer.softmax_scale == 192**-0.5


@pytest.mark.parametrize("mscale", [1.0, 0.707])
def test_mla_with_yarn_matches_float64_reference(mscale: float):
    # The tiny model with a short original length, so a CPU-sized layer is extended.
    a = dataclasses.replace(tiny_v3(), original_seq_len=16, rope_factor=40.0, mscale=mscale)
    torch.manual_seed(21)
    layer = MLA(a, max_seq_len=64).double()
    randomize_norms(layer)
    assert layer.yarn
    x = torch.randn(2, 12, a.dim, dtype=torch.float64)
    out = layer(x)
    freqs = yarn_inv_freq(a.qk_rope_head_dim, a.rope_theta, 40.0, 16, a.beta_fast, a.beta_slow)
    scale = yarn_softmax_scale(a.qk_head_dim, 40.0, mscale)
    plain = reference.mla(x[0], mla_params(layer), a)
    for b in range(2):
        ref = reference.mla(x[b], mla_params(layer), a, inv_freq=freqs, scale=scale)
        assert rel_err(out[b], ref) < 1e-7  # the RoPE tables are float32, as DeepSeek's are
    assert rel_err(out[0], plain) > 1e-2  # YaRN changes the output: the test can tell
