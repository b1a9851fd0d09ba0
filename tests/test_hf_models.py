"""Models from their Hugging Face config.json: counts against published figures, windows, round trips.

The config files and every published figure are sourced in tests/hf_configs/SOURCES.md. A figure
published as "17B" is good to half a unit of its last digit; the tolerance is that or 1%, whichever
is larger (the convention of tests/test_analytic.py). The two figures meter misses by more are
pinned with their own tolerance and the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from meter.analytic import flops as F
from meter.analytic import memory as M
from meter.analytic.params import count_params
from meter.config.models import load_hf_model, load_model, model_yaml, parse_model
from meter.config.paths import ConfigLocator
from meter.config.schema import read_yaml_text
from tests.test_bad_inputs import run_cli

HF = Path(__file__).parent / "hf_configs"
_SCALE = {"B": 1e9, "T": 1e12}


def published(text: str) -> tuple[float, float]:
    """'1.04T' -> (1.04e12, tolerance): 1% or half a unit of the last published digit."""
    m = re.fullmatch(r"(\d+)(?:\.(\d+))?([BT])", text)
    assert m, text
    value = float(f"{m.group(1)}.{m.group(2) or 0}") * _SCALE[m.group(3)]
    half_unit = 0.5 * 10 ** -len(m.group(2) or "") * _SCALE[m.group(3)]
    return value, max(0.01 * value, half_unit)


@dataclass(frozen=True)
class Card:
    file: str
    total: str | None
    active: str | None
    counts: str  # what the published active count includes: "head", "embeddings", "neither"
    non_embedding_total: str | None = None
    # A wider tolerance, with the reason, where meter's count and the published one differ by more.
    total_rel: float | None = None
    active_rel: float | None = None


CARDS = [
    Card("deepseek-v3", "671B", "37B", "head"),
    # Kimi K2: the main model counts 1.026T; 1.04T is what it would be with one V3-style MTP module
    # (~17B), which the released config.json does not have (num_nextn_predict_layers 0).
    Card("kimi-k2", "1.04T", "32B", "head", total_rel=0.015),
    Card("deepseek-v3.2", None, "37B", "head"),
    Card("deepseek-v4-pro", "1.6T", "49B", "head"),
    Card("deepseek-v4-flash", "284B", "13B", "head"),
    Card("qwen3-235b-a22b", "235B", "22B", "embeddings", non_embedding_total="234B"),
    Card("qwen3-235b-a22b-fp8", "235B", "22B", "embeddings"),
    # Qwen3-30B-A3B: 3.353B with both embeddings, 3.042B without the input one; the card's "3.3B"
    # is 1.6% below the former (two significant figures, truncated).
    Card("qwen3-30b-a3b", "30.5B", "3.3B", "embeddings", non_embedding_total="29.9B", active_rel=0.02),
    Card("qwen3-32b", "32.8B", None, "embeddings", non_embedding_total="31.2B"),
    Card("gpt-oss-120b", "116.83B", "5.13B", "head"),
    Card("mixtral-8x7b", "46.7B", "12.9B", "embeddings"),
    Card("llama-4-scout", "109B", "17B", "embeddings"),
    Card("llama-4-maverick", "400B", "17B", "embeddings"),
    Card("glm-4.5", "355B", "32B", "neither"),
]


def model(name: str):
    return load_hf_model(HF / f"{name}.json")


def raw(name: str) -> dict:
    return json.loads((HF / f"{name}.json").read_text())


@pytest.mark.parametrize("card", CARDS, ids=[c.file for c in CARDS])
def test_parameter_counts_match_the_published_figures(card: Card):
    p = count_params(model(card.file).args)
    if card.total:
        want, tol = published(card.total)
        if card.total_rel:
            tol = card.total_rel * want
        assert abs(p.total - want) <= tol, (p.total, want)
    if card.active:
        got = {
            "head": p.active,
            "embeddings": p.active_with_embedding,
            "neither": p.active - p.output_head,
        }[card.counts]
        want, tol = published(card.active)
        if card.active_rel:
            tol = card.active_rel * want
        assert abs(got - want) <= tol, (got, want)
    if card.non_embedding_total:
        want, tol = published(card.non_embedding_total)
        assert abs(p.total - p.embedding - p.output_head - want) <= tol


def test_published_figures_that_are_exact():
    # OpenAI's model card gives gpt-oss-120b to the ten million: 116.83B total, 5.13B active.
    p = count_params(model("gpt-oss-120b").args)
    assert p.total == pytest.approx(116.83e9, abs=0.005e9)
    assert p.active == pytest.approx(5.13e9, abs=0.005e9)
    # Mistral: "46.7B total parameters but only uses 12.9B parameters per token".
    p = count_params(model("mixtral-8x7b").args)
    assert p.total == pytest.approx(46.7e9, abs=0.05e9)
    assert p.active_with_embedding == pytest.approx(12.9e9, abs=0.05e9)


def test_imported_v3_is_the_hand_written_v3():
    hf, yaml_model = model("deepseek-v3").args, load_model("deepseek-v3").args
    assert count_params(hf) == count_params(yaml_model)
    assert F.train_flops_per_token(hf, 4096).total == pytest.approx(F.train_flops_per_token(yaml_model, 4096).total)


def _gqa_kv_bytes_per_token(cfg: dict, context: int, bytes_per_value: float = 2) -> float:
    """From the raw config.json: K and V of every KV head in each layer, windows holding their span."""
    layers, kv, hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]
    per_layer_token = 2 * kv * hd * bytes_per_value
    kinds = cfg.get("layer_types") or ["full_attention"] * layers
    kept = 0.0
    for kind in kinds:
        if kind == "sliding_attention":
            kept += min(context, cfg["sliding_window"])
        elif kind == "chunked_attention":
            kept += min(context, cfg["attention_chunk_size"])
        else:
            kept += context
    return kept * per_layer_token / context


def _llama4_text(name: str) -> dict:
    t = dict(raw(name)["text_config"])
    # transformers' Llama4TextConfig: a NoPE (global) layer every 4th, chunked attention elsewhere.
    t["layer_types"] = ["full_attention" if (i + 1) % 4 == 0 else "chunked_attention" for i in range(48)]
    return t


@pytest.mark.parametrize("context", [100, 4096, 131072])
def test_kv_cache_counts_windows_and_chunks(context: int):
    gpt = raw("gpt-oss-120b")
    assert M.kv_cache_bytes_per_token(model("gpt-oss-120b").args, 2, context_len=context) == pytest.approx(
        _gqa_kv_bytes_per_token(gpt, context)
    )
    scout = _llama4_text("llama-4-scout")
    assert M.kv_cache_bytes_per_token(model("llama-4-scout").args, 2, context_len=context) == pytest.approx(
        _gqa_kv_bytes_per_token(scout, context)
    )
    qwen = raw("qwen3-235b-a22b")
    assert M.kv_cache_bytes_per_token(model("qwen3-235b-a22b").args, 2, context_len=context) == pytest.approx(
        _gqa_kv_bytes_per_token(qwen, context)
    )


def test_kv_cache_matches_published_per_token_figures():
    # arXiv 2505.09343 Table 1 (bf16): DeepSeek-V3 70.272 KB, LLaMA-3.1 405B 516.096 KB per token.
    assert M.kv_cache_bytes_per_token(model("deepseek-v3").args, 2) == 70272
    assert M.kv_cache_bytes_per_token(model("llama-3.1-405b").args, 2, context_len=8192) == 516096


@pytest.mark.parametrize("context", [64, 4096, 131072])
def test_decode_attention_core_counts_each_layer_span(context: int):
    """gpt-oss: 18 full layers see the context, 18 see 128 tokens; Llama 4: 12 full, 36 in 8192-token chunks."""
    gpt = raw("gpt-oss-120b")
    h, hd = gpt["num_attention_heads"], gpt["head_dim"]
    per_key = 2 * h * (hd + hd)  # QK and AV
    keys = 18 * context + 18 * min(context, 128)
    core = F.decode_flops_per_token(model("gpt-oss-120b").args, context).attention_core
    assert core == pytest.approx(per_key * keys)
    t = raw("llama-4-maverick")["text_config"]
    per_key = 2 * t["num_attention_heads"] * 2 * t["head_dim"]
    keys = 12 * context + 36 * ((context - 1) % 8192 + 1)
    assert F.decode_flops_per_token(model("llama-4-maverick").args, context).attention_core == pytest.approx(
        per_key * keys
    )


def test_windowed_pairs_against_a_sum_over_positions():
    s, w, c = 1000, 128, 256
    # The continuous count of attention_pairs: the integral of min(x, w) and of (x mod c).
    assert F.attention_pairs(s, s, "causal", window=w) == pytest.approx(w * w / 2 + w * (s - w))
    assert F.attention_pairs(s, s, "causal", chunk=c) == pytest.approx(3 * c * c / 2 + (s - 3 * c) ** 2 / 2)
    discrete = sum(min(p, w) for p in range(1, s + 1))
    assert F.attention_pairs(s, s, "causal", window=w) == pytest.approx(discrete, rel=0.005)
    # A window or chunk longer than the sequence changes nothing.
    assert F.attention_pairs(s, s, "causal", window=4 * s) == F.attention_pairs(s, s, "causal")
    assert F.attention_pairs(s, s, "causal", chunk=4 * s) == F.attention_pairs(s, s, "causal")


def test_gpt_oss_attention_has_biases_and_sinks():
    cfg = raw("gpt-oss-120b")
    d, h, kv, hd = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    matrices = d * h * hd + 2 * d * kv * hd + h * hd * d
    biases = h * hd + 2 * kv * hd + d
    sinks = h
    p = count_params(model("gpt-oss-120b").args)
    assert p.attention == 36 * (matrices + biases + sinks)
    # The model card's Table 1: attention 0.96B.
    assert p.attention == pytest.approx(0.96e9, abs=0.005e9)


def test_layer_layouts_from_the_configs():
    mav = model("llama-4-maverick").args
    assert (mav.n_moe_layers, mav.n_ffn_dense_layers, mav.inter_dim) == (24, 24, 16384)
    assert [mav.is_moe_layer(i) for i in range(4)] == [False, True, False, True]
    scout = model("llama-4-scout").args
    assert (scout.n_moe_layers, scout.n_ffn_dense_layers, scout.inter_dim) == (48, 0, 0)
    assert (scout.n_chunked_layers, scout.attention_chunk, scout.n_full_attention_layers) == (36, 8192, 12)
    glm = model("glm-4.5").args
    assert (glm.n_dense_layers, glm.n_moe_layers, glm.qk_norm, glm.qkv_bias, glm.out_bias) == (3, 89, True, True, False)
    gpt = model("gpt-oss-120b").args
    assert (gpt.n_sliding_layers, gpt.sliding_window, gpt.attention_sinks) == (18, 128, True)
    qwen = model("qwen3-30b-a3b").args
    assert (qwen.inter_dim, qwen.norm_topk_prob, qwen.score_func) == (0, True, "softmax")
    kimi = model("kimi-k2").args
    assert (kimi.n_dense_layers, kimi.n_routed_experts, kimi.n_heads, kimi.route_scale) == (1, 384, 64, 2.827)
    v4 = model("deepseek-v4-pro").args
    assert (v4.score_func, v4.compressed_attention.hc_mult, v4.compressed_attention.index_topk) == (
        "sqrtsoftplus",
        4,
        1024,
    )


def test_weights_precision_from_quantization_config():
    v3 = model("deepseek-v3")
    assert v3.weights.routed_experts == v3.weights.attention == "fp8" and v3.weights.fp8_block == (128, 128)
    assert v3.weights.embedding == v3.weights.output_head == v3.weights.router == "bf16"
    gpt = model("gpt-oss-120b")
    assert gpt.weights.routed_experts == "mxfp4" and gpt.weights.attention == "bf16"
    v4 = model("deepseek-v4-flash")
    assert v4.weights.routed_experts == "mxfp4" and v4.weights.attention == "fp8"
    qwen_fp8 = model("qwen3-235b-a22b-fp8")
    assert qwen_fp8.weights.routed_experts == "fp8" and qwen_fp8.weights.router == "bf16"  # mlp.gate not converted
    assert model("qwen3-235b-a22b").weights.routed_experts == "bf16"
    # gpt-oss-120b's checkpoint is about 65 GB: MXFP4 experts (4.25 bits a weight), the rest bf16.
    wb = M.weight_bytes(gpt.args, gpt.weights)
    p = count_params(gpt.args)
    assert wb.routed_experts == pytest.approx(p.routed_experts * (0.5 + 1 / 32))
    assert 60e9 < wb.total < 70e9


def test_defaults_are_recorded_not_silent():
    gpt = model("gpt-oss-120b")
    assert 'torch_dtype="bfloat16"' in gpt.imported.defaulted
    assert any(i.startswith("swiglu_limit=") for i in gpt.imported.ignored)
    scout = model("llama-4-scout")
    assert "text_config.no_rope_layer_interval=4" in scout.imported.defaulted
    v3 = model("deepseek-v3")
    assert v3.imported.defaulted == () and v3.imported.architecture == "DeepseekV3ForCausalLM"
    assert len(v3.imported.sha256) == 64


@pytest.mark.parametrize("path", sorted(HF.glob("*.json")), ids=lambda p: p.stem)
def test_written_yaml_loads_back_to_the_same_model(path: Path):
    m = load_hf_model(path, name=path.stem)
    back = parse_model(read_yaml_text(model_yaml(m), Path(f"{path.stem}.yaml")), Path(f"{path.stem}.yaml"))
    assert back == m


def test_models_import_then_use_by_name(tmp_path: Path):
    (tmp_path / "models").mkdir()
    out = tmp_path / "models" / "scout.yaml"
    code, stdout, err = run_cli(["models", "import", str(HF / "llama-4-scout.json"), "-o", str(out)])
    assert code == 0, err
    assert "wrote" in stdout and out.is_file()
    text = out.read_text()
    assert "architecture: Llama4ForConditionalGeneration" in text and "sha256:" in text
    imported = load_model("scout", ConfigLocator.from_env([tmp_path]))
    assert imported.args == model("llama-4-scout").args and imported.imported.path.endswith("llama-4-scout.json")
    code, stdout, err = run_cli(["flops", "scout", "--config-dir", str(tmp_path), "--json"])
    assert code == 0, err
    report = json.loads(stdout)
    assert report["total_params"] == count_params(imported.args).total
    assert report["layers"]["chunked"] == 36


def test_a_model_directory_works_where_a_model_is_named(tmp_path: Path):
    model_dir = tmp_path / "Qwen3-30B-A3B"
    model_dir.mkdir()
    (model_dir / "config.json").write_bytes((HF / "qwen3-30b-a3b.json").read_bytes())
    m = load_model(str(model_dir))
    assert m.name == "Qwen3-30B-A3B" and m.args.n_routed_experts == 128
    code, stdout, err = run_cli(["flops", str(model_dir), "--json", "--context", "32768"])
    assert code == 0, err
    assert json.loads(stdout)["model"] == "Qwen3-30B-A3B"


@pytest.mark.parametrize(
    "name",
    [
        "kimi-k2",
        "qwen3-235b-a22b",
        "qwen3-30b-a3b",
        "qwen3-32b",
        "gpt-oss-120b",
        "mixtral-8x7b",
        "llama-4-scout",
        "llama-4-maverick",
        "glm-4.5",
    ],
)
def test_builtin_model_files_are_their_config_json(name: str):
    """configs/models/NAME.yaml were written by `meter models import` from these config.json files."""
    builtin = load_model(name)
    assert builtin.args == model(name).args and builtin.weights == model(name).weights
    assert builtin.published.total_params and builtin.published.source


def test_modelopt_nvfp4_quantization_beside_config_json():
    """nvidia/DeepSeek-V3.1-NVFP4: config.json has no quantization_config; hf_quant_config.json has NVFP4
    with the MLA projections and lm_head excluded."""
    m = load_model(str(HF / "deepseek-v3.1-nvfp4"))
    w = m.weights
    assert (w.routed_experts, w.shared_experts, w.dense_ffn) == ("nvfp4", "nvfp4", "nvfp4")
    assert (w.attention, w.output_head, w.router, w.embedding) == ("bf16", "bf16", "bf16", "bf16")
    assert m.imported.quantization_file.endswith("hf_quant_config.json") and len(m.imported.quantization_sha256) == 64
    assert "quantization_config.exclude_modules:model.layers.61*" in m.imported.ignored  # the MTP layer
    p = count_params(m.args)
    assert M.weight_bytes(m.args, w).routed_experts == pytest.approx(p.routed_experts * (0.5 + 1 / 16))
    back = parse_model(read_yaml_text(model_yaml(m), Path(f"{m.name}.yaml")), Path(f"{m.name}.yaml"))
    assert back == m


def test_modelopt_fp8_without_a_quant_method():
    """ModelOpt writes quant_algo and its producer but no quant_method: per-tensor fp8, lm_head ignored."""
    w = load_model(str(HF / "qwen3-32b-fp8-static")).weights
    assert (w.attention, w.dense_ffn, w.fp8_block) == ("fp8", "fp8", None)
    assert (w.output_head, w.embedding) == ("bf16", "bf16")


def test_transformers_5_rope_parameters_and_a_missing_architectures(tmp_path: Path):
    """transformers 5 writes rope_parameters (theta and scaling together); some exports drop architectures."""
    data = raw("deepseek-v3")
    del data["architectures"]
    scaling, theta = data.pop("rope_scaling"), data.pop("rope_theta")
    data["rope_parameters"] = {"rope_theta": theta, "rope_type": "yarn"} | {
        k: v for k, v in scaling.items() if k != "type"
    }
    (tmp_path / "config.json").write_text(json.dumps(data))
    m = load_hf_model(tmp_path / "config.json")
    assert m.args == model("deepseek-v3").args
    assert m.imported.defaulted == ('architectures=["DeepseekV3ForCausalLM"] (from model_type deepseek_v3)',)


def test_a_scenario_names_a_config_json(tmp_path: Path):
    from meter.config.scenarios import load_scenario

    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "qwen-run.yaml").write_text(
        "name: qwen-run\ndescription: Qwen3-30B-A3B trained on 1T tokens\nkind: train\n"
        f"model: {HF / 'qwen3-30b-a3b.json'}\nhardware: h800-sxm\n"
        "stages:\n  - name: pre-training\n    tokens: 1.0e12\n    source: test\n"
    )
    loc = ConfigLocator.from_env([tmp_path])
    scenario = load_scenario("qwen-run", loc)
    assert load_model(scenario.model, loc).args == model("qwen3-30b-a3b").args
    code, stdout, err = run_cli(
        ["cost", "train", "--scenario", "qwen-run", "--config-dir", str(tmp_path), "--mfu", "0.3", "--samples", "0"]
    )
    assert code == 0, err


def test_decode_step_reads_weights_in_their_stored_format():
    """gpt-oss-120b at batch 1: the 4 touched MXFP4 experts a layer plus bf16 attention, router, head."""
    gpt = model("gpt-oss-120b")
    a, p = gpt.args, count_params(gpt.args)
    step = M.decode_step_bytes(a, batch=1, context_len=4096, precision=gpt.weights)
    routed = p.routed_experts_active * (0.5 + 1 / 32)
    rest_bf16 = 2 * (p.attention + p.router + p.output_head + a.dim + p.norms)
    # The experts' biases are in routed_experts_active; decode_step_bytes counts expert matrices only.
    expert_biases = 36 * 4 * (2 * a.moe_inter_dim + a.dim) * (0.5 + 1 / 32)
    assert step.weights == pytest.approx(routed - expert_biases + rest_bf16, rel=1e-6)
    assert step.weights < M.decode_step_bytes(a, batch=1, context_len=4096).weights / 1.3
