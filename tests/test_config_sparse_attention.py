"""The model schema's attention sections: DeepSeek-V3.2's DSA and DeepSeek-V4's compressed attention.

Expected values are DeepSeek's published config fields (see configs/models/deepseek-v3.2.yaml,
deepseek-v4-*.yaml and shared/reference/dsa-v4-facts.md), not meter's output.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from meter.config.models import load_model, parse_model
from meter.config.paths import builtin_config_dir
from meter.errors import ConfigError


def _data(name: str) -> dict:
    return yaml.safe_load((builtin_config_dir() / "models" / f"{name}.yaml").read_text())


def test_v32_is_v3_plus_the_indexer():
    v3, v32 = load_model("deepseek-v3").args, load_model("deepseek-v3.2").args
    s = v32.sparse_attention
    assert v32.attention == "mla" and v32.is_sparse and not v3.is_sparse
    # config_671B_v3.2.json: index_n_heads 64, index_head_dim 128, index_topk 2048
    assert (s.index_n_heads, s.index_head_dim, s.index_topk) == (64, 128, 2048)
    # FlashMLA: 512 fp8 + 4 fp32 scales + 64 bf16 RoPE; the indexer's key: 128 fp8 + 1 fp32 scale
    assert s.fp8_kv_entry_bytes == 512 + (512 // 128) * 4 + 64 * 2 == 656
    assert s.index_key_bytes == s.index_head_dim + (s.index_head_dim // s.index_quant_block) * 4 == 132
    # "the only architectural change" from V3.1-Terminus (V3's shape)
    for f in ("dim", "n_layers", "n_heads", "kv_lora_rank", "q_lora_rank", "n_routed_experts", "moe_inter_dim"):
        assert getattr(v32, f) == getattr(v3, f), f


@pytest.mark.parametrize(
    ("name", "layers", "window_only", "csa", "hca", "topk", "o_groups"),
    [("deepseek-v4-pro", 61, 0, 30, 31, 1024, 16), ("deepseek-v4-flash", 43, 2, 21, 20, 512, 8)],
)
def test_v4_layer_types_follow_compress_ratios(name, layers, window_only, csa, hca, topk, o_groups):
    a = load_model(name).args
    c = a.compressed_attention
    ratios = c.layer_ratios(a.n_layers)
    assert a.attention == "compressed" and a.n_layers == layers and len(ratios) == layers
    assert (ratios.count(0), ratios.count(4), ratios.count(128)) == (window_only, csa, hca)
    assert len(c.compress_ratios) == layers + 1 and c.compress_ratios[-1] == 0  # the MTP layer's entry
    assert (c.sliding_window, c.index_topk, c.o_groups, c.o_lora_rank, c.hc_mult) == (128, topk, o_groups, 1024, 4)
    assert (a.n_kv_heads, a.head_dim, a.kv_lora_rank) == (1, 512, 0)
    # FlashMLA MODEL1: 448 fp8 + 64 bf16 RoPE + 7 UE8M0 scales + 1 pad
    assert c.fp8_kv_entry_bytes == 448 + 64 * 2 + 448 // 64 + 1 == 584


def test_compress_ratios_without_the_mtp_entry_are_accepted():
    data = _data("deepseek-v4-flash")
    data["compressed_attention"]["compress_ratios"] = data["compressed_attention"]["compress_ratios"][:43]
    assert parse_model(data, Path("deepseek-v4-flash.yaml")).args.compressed_attention.layer_ratios(43).count(4) == 21


@pytest.mark.parametrize(
    ("model", "change", "field", "fragment"),
    [
        (
            "deepseek-v3.2",
            {"sparse_attention": {"index_n_heads": 64, "index_head_dim": 128}},
            "sparse_attention.index_topk",
            "missing",
        ),
        (
            "deepseek-v3.2",
            {"sparse_attention": {"index_n_heads": 64, "index_head_dim": 128, "index_topk": 8, "topk": 1}},
            "sparse_attention.topk",
            "unknown field",
        ),
        ("deepseek-v4-pro", {"kv_lora_rank": 512}, "kv_lora_rank", "no latent"),
        ("deepseek-v4-pro", {"n_kv_heads": 8}, "n_kv_heads", "must be 1"),
        ("deepseek-v4-pro", {"qk_rope_head_dim": 512}, "qk_rope_head_dim", "below head_dim"),
        ("deepseek-v4-pro", {"n_dense_layers": 59}, "compressed_attention.n_hash_layers", "exceeds the MoE layers"),
    ],
)
def test_bad_attention_sections_name_the_field(model, change, field, fragment):
    data = _data(model)
    data.update(change)
    with pytest.raises(ConfigError) as info:
        parse_model(data, Path(f"{model}.yaml"))
    assert info.value.field == field and fragment in str(info.value)
