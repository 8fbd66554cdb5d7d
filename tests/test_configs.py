"""Every registered family's config: importable without JAX, exact config.json round trip,
defaults equal to `transformers`, errors that name key, value and expectation."""
import dataclasses
import json
import subprocess
import sys

import pytest
import transformers

from core import registry
from core.configuration import ConfigError

MODEL_TYPES = sorted(registry.FAMILIES)


def test_configs_and_registry_import_without_jax():
    code = (
        "import sys\n"
        "for name in ('jax', 'jaxlib', 'flax', 'torch', 'tensorflow'):\n"
        "    sys.modules[name] = None   # any import of them now raises ImportError\n"
        "from core import registry\n"
        "for fam in registry.FAMILIES.values():\n"
        "    fam.config_class()()\n"
        "print('ok', len(registry.FAMILIES))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=".")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_transformers_config_round_trips_exactly(model_type, tmp_path):
    reference = transformers.AutoConfig.for_model(model_type)
    reference.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    config = registry.family(model_type).config_class().from_dict(written)
    assert config.to_dict() == written
    assert list(config.to_dict()) == list(written)


# Fields transformers fills in from another field when unset; ours keep None (so a config.json
# with null round-trips) and resolve it through a property.
DERIVED = {("llama", "num_key_value_heads"): "kv_heads", ("llama", "rope_parameters"): "rope",
           ("llama", "head_dim"): "attention_head_dim", ("vit", "pooler_output_size"): "pooler_size",
           ("deit", "pooler_output_size"): "pooler_size", ("falcon", "num_kv_heads"): "num_attention_heads",
           ("gpt_neo", "attention_types"): "_attention_types", ("gpt_neox", "rope_parameters"): "rope",
           ("marian", "decoder_vocab_size"): "vocab_size", ("t5", "num_decoder_layers"): "decoder_layers",
           ("mt5", "num_decoder_layers"): "decoder_layers", ("umt5", "num_decoder_layers"): "decoder_layers",
           ("opt", "word_embed_proj_dim"): "proj_dim", ("falcon", "rope_parameters"): "rope",
           ("falcon", "ffn_hidden_size"): "ffn_size",
           ("t5", "scale_decoder_outputs"): "scales_decoder_outputs",
           ("umt5", "scale_decoder_outputs"): "scales_decoder_outputs",
           ("longt5", "num_decoder_layers"): "decoder_layers",
           ("longt5", "scale_decoder_outputs"): "scales_decoder_outputs"}


def _tuples(value):
    """Lists (JSON) and tuples (ours) compare equal, at any depth."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


SKIPPED = ("extra", "source_keys", "architectures", "id2label", "label2id")


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_defaults_equal_transformers(model_type):
    reference = transformers.AutoConfig.for_model(model_type).to_dict()
    ours = registry.family(model_type).config_class()()
    for field in dataclasses.fields(ours):
        if field.name in SKIPPED:
            continue
        name = {v: k for k, v in ours.attribute_map.items()}.get(field.name, field.name)
        if name in reference:
            value = getattr(ours, field.name)
            if value is None and (model_type, field.name) in DERIVED:
                value = getattr(ours, DERIVED[model_type, field.name])
            expected = reference[name]
            if isinstance(expected, list):
                expected = tuple(expected)
            if value is None and isinstance(expected, dict) and name.endswith("_config"):
                # A nested sub-config (CLIP): unset in ours, its typed view holds the defaults.
                view = getattr(ours, name[:-len("_config")])
                for sub in dataclasses.fields(view):
                    if sub.name in expected and sub.name not in SKIPPED:
                        want = expected[sub.name]
                        want = tuple(want) if isinstance(want, list) else want
                        assert getattr(view, sub.name) == want, f"{model_type}.{name}.{sub.name}"
                continue
            assert _tuples(value) == _tuples(expected), f"{model_type}.{name}: ours {value!r}, transformers {expected!r}"


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_wrong_types_name_the_key_value_and_expectation(model_type):
    cls = registry.family(model_type).config_class()
    int_field = next(f.name for f in dataclasses.fields(cls) if f.type in ("int", int))
    with pytest.raises(ConfigError, match=f"{int_field}.*'seven'.*expected int"):
        cls.from_dict({int_field: "seven"})
    with pytest.raises(ConfigError, match="problem_type.*'regresion'"):
        cls.from_dict({"problem_type": "regresion"})


def test_unknown_keys_are_kept_and_num_labels_becomes_labels():
    cls = registry.family("bert").config_class()
    config = cls.from_dict({"model_type": "bert", "num_labels": 3, "my_key": [1, {"a": 2}]})
    assert config.num_labels == 3 and config.label_names == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert config.to_dict() == {"model_type": "bert", "num_labels": 3, "my_key": [1, {"a": 2}]}
    assert hash(config) == hash(cls.from_dict(config.to_dict()))   # Flax hashes module fields
    with pytest.raises(ConfigError, match="model_type.*'gpt2'"):
        cls.from_dict({"model_type": "gpt2"})
