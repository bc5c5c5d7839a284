"""A model's config read in one place (tokenloop/model/config.py, was model/config.py): the sizes of
the tiny Llama's real config.json, the same from the dict and from transformers' own config object,
the documented defaults, and the one-line refusals of what a forward written by hand can't run."""

from __future__ import annotations

import json
import shutil

import pytest
from transformers import AutoConfig

from tokenloop.errors import ModelError
from tokenloop.model.config import ModelConfig, Shape, folder_config

REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")


@pytest.fixture
def folder(tiny_model_dir, tmp_path):
    """A copy of the tiny Llama's config.json that a test may change."""
    shutil.copy(tiny_model_dir / "config.json", tmp_path / "config.json")
    return tmp_path


def rewrite(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return config


def test_the_tiny_llamas_config_json_gives_its_sizes(tiny_model_dir):
    raw = json.loads((tiny_model_dir / "config.json").read_text())
    config = ModelConfig.from_folder(tiny_model_dir)
    assert (config.vocab, config.dim, config.layers) == (
        raw["vocab_size"],
        raw["hidden_size"],
        raw["num_hidden_layers"],
    )
    assert (config.heads, config.kv_heads, config.intermediate) == (
        raw["num_attention_heads"],
        raw["num_key_value_heads"],
        raw["intermediate_size"],
    )
    assert config.head_dim * config.heads == config.dim and config.kv_heads < config.heads  # grouped-query
    assert config.tied is raw["tie_word_embeddings"] and config.context == raw["max_position_embeddings"]
    assert config.stop_ids == frozenset({raw["eos_token_id"]})


def test_a_dict_and_transformers_config_object_read_the_same(tiny_model_dir, tiny):
    from_dict = ModelConfig.from_config(json.loads((tiny_model_dir / "config.json").read_text()))
    from_object = ModelConfig.from_config(AutoConfig.from_pretrained(tiny_model_dir))
    assert from_dict == from_object
    assert Shape.from_config(tiny.lm.config) == Shape.from_config(
        from_dict
    )  # the loaded model's, and a Shape of a ModelConfig


def test_only_the_sizes_are_required_the_rest_has_its_documented_default():
    given = dict(zip(REQUIRED, (300, 48, 3, 6, 96)))
    config = ModelConfig.from_config(given)
    assert config.kv_heads == given["num_attention_heads"]  # every query head has its own keys
    assert config.head_dim == given["hidden_size"] // given["num_attention_heads"]
    assert (config.tied, config.eps, config.rope_theta, config.context) == (False, 1e-6, 10000.0, 2048)
    assert config.stop_ids == frozenset()


@pytest.mark.parametrize("key", REQUIRED)
def test_a_missing_size_is_a_one_line_model_error_naming_it(key):
    given = dict.fromkeys(REQUIRED, 8)
    del given[key]
    with pytest.raises(ModelError, match=f"where it came from has no {key}") as error:
        ModelConfig.from_config(given, "where it came from")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("place", ["rope_parameters", "rope_scaling", "top"])
def test_rope_theta_is_read_where_each_transformers_version_puts_it(place):
    given = dict.fromkeys(REQUIRED, 8)
    given.update({"rope_theta": 123.0} if place == "top" else {place: {"rope_theta": 123.0}})
    assert ModelConfig.from_config(given).rope_theta == 123.0


def test_generation_config_adds_its_end_tokens_to_the_configs(folder):
    ids = rewrite(folder, eos_token_id=[5, 0])["eos_token_id"]
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 7}))
    assert folder_config(folder)["eos_token_id"] == sorted({*ids, 7})
    assert ModelConfig.from_folder(folder).stop_ids == frozenset({*ids, 7})


def test_a_config_that_is_not_json_is_a_model_error_naming_the_file(folder):
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json could not be read as JSON"):
        ModelConfig.from_folder(folder)


def test_a_plain_llama_is_accepted_for_a_forward_written_by_hand(folder):
    assert ModelConfig.plain_llama(folder, "the from-scratch forward") == ModelConfig.from_folder(folder)


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"attention_bias": True}, "only knows the plain Llama architecture"),
        ({"mlp_bias": True}, "only knows the plain Llama architecture"),
        ({"hidden_act": "gelu"}, "only knows the plain Llama architecture"),
        ({"model_type": "qwen2"}, "only knows the plain Llama architecture"),
        ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0}}, "not 'llama3'"),
        ({"rope_parameters": None, "rope_scaling": {"type": "yarn"}}, "not 'yarn'"),
    ],
)
def test_what_a_forward_by_hand_cant_run_is_refused_in_one_line(folder, changes, words):
    rewrite(folder, **changes)
    with pytest.raises(ModelError, match=words) as error:
        ModelConfig.plain_llama(folder, "the from-scratch forward", hint="; use --engine transformers")
    assert str(error.value).startswith(str(folder)) and str(error.value).endswith("; use --engine transformers")
    assert "\n" not in str(error.value)
