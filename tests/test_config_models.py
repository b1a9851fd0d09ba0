"""Model configs: every built-in loads, and bad input is refused naming file, field and value."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from meter.config.models import list_models, load_model, parse_model
from meter.config.paths import ConfigLocator, builtin_config_dir
from meter.errors import ConfigError

BUILTIN = ["deepseek-v3", "deepseek-v2", "deepseek-v2-lite", "llama-3.1-405b", "deepseek-v3-tiny"]


def v3_data() -> dict:
    return yaml.safe_load((builtin_config_dir() / "models" / "deepseek-v3.yaml").read_text())


def test_every_builtin_model_loads():
    names = {m.name for m in list_models()}
    assert set(BUILTIN) <= names


def test_v3_fields_follow_deepseek_config():
    a = load_model("deepseek-v3").args
    assert (a.dim, a.inter_dim, a.moe_inter_dim, a.n_layers, a.n_dense_layers) == (7168, 18432, 2048, 61, 3)
    assert (a.n_routed_experts, a.n_shared_experts, a.n_activated_experts) == (256, 1, 8)
    assert (a.n_expert_groups, a.n_limited_groups, a.score_func, a.route_scale) == (8, 4, "sigmoid", 2.5)
    assert (a.q_lora_rank, a.kv_lora_rank, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim) == (
        1536,
        512,
        128,
        64,
        128,
    )
    assert a.gate_bias and a.n_mtp_layers == 1 and a.attention == "mla"


def test_tiny_model_is_v3_shaped():
    a = load_model("deepseek-v3-tiny").args
    assert a.score_func == "sigmoid" and a.gate_bias
    assert a.n_expert_groups > 1 and a.n_limited_groups < a.n_expert_groups
    assert a.n_shared_experts >= 1 and a.n_routed_experts > a.n_activated_experts
    assert a.attention == "mla" and a.q_lora_rank > 0 and a.n_mtp_layers == 1


def test_llama_is_dense_gqa():
    a = load_model("llama-3.1-405b").args
    assert a.attention == "gqa" and not a.is_moe and a.n_ffn_dense_layers == a.n_layers == 126


def test_load_by_path(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    data = v3_data()
    data["name"] = "mine"
    path.write_text(yaml.safe_dump(data))
    assert load_model(str(path)).name == "mine"


def test_user_config_dir_shadows_builtin(config_dir: Path):
    data = v3_data()
    data["n_layers"] = 7
    (config_dir / "models" / "deepseek-v3.yaml").write_text(yaml.safe_dump(data))
    locator = ConfigLocator.from_env([config_dir])
    assert load_model("deepseek-v3", locator).args.n_layers == 7
    assert load_model("deepseek-v3").args.n_layers == 61


def test_environment_variable_adds_config_dirs(config_dir: Path):
    data = v3_data()
    data["name"] = "from-env"
    (config_dir / "models" / "from-env.yaml").write_text(yaml.safe_dump(data))
    locator = ConfigLocator.from_env(environ={"METER_CONFIG_PATH": str(config_dir)})
    assert load_model("from-env", locator).name == "from-env"


def _error(data, path=Path("m.yaml")) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_model(data, path)
    return info.value


def _with(**changes) -> dict:
    data = v3_data()
    data["name"] = "m"
    for key, value in changes.items():
        if value is _DELETE:
            del data[key]
        else:
            data[key] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(
    ("changes", "field", "fragment", "value"),
    [
        ({"dim": "7168"}, "dim", "expected an integer", "7168"),
        ({"dim": 7168.5}, "dim", "expected an integer", 7168.5),
        ({"dim": True}, "dim", "expected an integer", True),
        ({"dim": _DELETE}, "dim", "missing required field", None),
        ({"n_heads": -4}, "n_heads", "greater than 0", -4),
        ({"n_layers": 0}, "n_layers", "greater than 0", 0),
        ({"route_scale": math.nan}, "route_scale", "finite", math.nan),
        ({"route_scale": 0.0}, "route_scale", "greater than 0", 0.0),
        ({"score_func": "relu"}, "score_func", "must be one of", "relu"),
        ({"gate_bias": "yes"}, "gate_bias", "true or false", "yes"),
        ({"n_activated_experts": 300}, "n_activated_experts", "exceeds n_routed_experts", 300),
        ({"n_limited_groups": 9}, "n_limited_groups", "exceeds n_expert_groups", 9),
        ({"n_expert_groups": 7}, "n_routed_experts", "not divisible", 256),
        ({"n_dense_layers": 62}, "n_dense_layers", "exceeds n_layers", 62),
        ({"qk_rope_head_dim": 63}, "qk_rope_head_dim", "even", 63),
        ({"moe_inter_dim": 0}, "moe_inter_dim", "MoE model", 0),
        ({"rope_factor": 0.5}, "rope_factor", "at least 1", 0.5),
        ({"original_seq_len": 0}, "original_seq_len", "greater than 0", 0),
        ({"beta_fast": 1, "beta_slow": 32}, "beta_fast", "must not be below", 1),
    ],
)
def test_bad_model_fields_name_file_field_and_value(changes, field, fragment, value):
    err = _error(_with(**changes))
    message = str(err)
    assert err.path == Path("m.yaml") and err.field == field
    assert message.startswith("m.yaml: field ") and fragment in message
    if value is not None:
        assert repr(value) in message or str(value) in message
    assert "\n" not in message


def test_unknown_field_suggests_the_closest_name():
    data = _with(n_heads=_DELETE)
    data["n_head"] = 128
    err = _error(data)
    assert err.field == "n_head" and "did you mean 'n_heads'" in str(err)


def test_too_many_experts_for_the_limited_groups():
    # 8 groups of 32, 1 group kept: only 32 experts are reachable, top-k 40 is impossible.
    err = _error(_with(n_limited_groups=1, n_activated_experts=40))
    assert err.field == "n_activated_experts" and "n_limited_groups" in str(err)


def test_dense_model_with_expert_fields_is_refused():
    data = yaml.safe_load((builtin_config_dir() / "models" / "llama-3.1-405b.yaml").read_text())
    data["name"] = "m"
    data["n_activated_experts"] = 2
    err = _error(data)
    assert err.field == "n_activated_experts" and "dense model" in str(err)


def test_v3_yarn_follows_deepseek_reference():
    a = load_model("deepseek-v3").args
    assert (a.original_seq_len, a.rope_factor, a.beta_fast, a.beta_slow, a.mscale) == (4096, 40, 32, 1, 1.0)
    assert load_model("deepseek-v2-lite").args.mscale == 0.707  # config_16B.json


def test_yarn_on_a_gqa_model_is_refused():
    data = yaml.safe_load((builtin_config_dir() / "models" / "llama-3.1-405b.yaml").read_text())
    data["name"] = "m"
    data["rope_factor"] = 8.0
    err = _error(data)
    assert err.field == "rope_factor" and "MLA models only" in str(err)


def test_gqa_heads_must_divide():
    data = yaml.safe_load((builtin_config_dir() / "models" / "llama-3.1-405b.yaml").read_text())
    data["name"] = "m"
    data["n_kv_heads"] = 7
    assert _error(data).field == "n_kv_heads"


def test_name_must_match_the_file_name():
    err = _error(_with(name="other"))
    assert err.field == "name" and "file name 'm'" in str(err)


def test_scientific_notation_without_exponent_sign_is_a_number():
    # PyYAML reads 671e9 as a string (YAML 1.1); the loader accepts it as the number it is.
    data = _with()
    data["published"] = {"total_params": "671e9"}
    assert parse_model(data, Path("m.yaml")).published.total_params == 671e9


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: m\ndim: [1\n", "malformed YAML at line 3"),
        ("", "expected a mapping"),
        ("- 1\n- 2\n", "expected a mapping"),
    ],
)
def test_malformed_or_empty_files(config_dir: Path, text: str, fragment: str):
    path = config_dir / "models" / "m.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_model(str(path))
    assert str(path) in str(info.value) and fragment in str(info.value)
