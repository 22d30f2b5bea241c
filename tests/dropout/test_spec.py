"""The configuration value: validation messages, flat round trip, presets."""

from __future__ import annotations

import pytest

from hk_tune.dropout import PRESETS, REFERENCES, DropoutSpec, PositionSpec
from hk_tune.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_flat_keys(name):
    spec = PRESETS[name]
    assert DropoutSpec.from_dict(spec.to_dict()) == spec
    assert name in REFERENCES


def test_design_table_rows():
    assert set(PRESETS) == {
        "baseline", "hf_default", "hiddenkey_minus", "hiddenkey", "hiddenkey_js",
        "hiddenkey_input", "hiddenkey_output",
        *(f"{m}_{p}" for m in ("dropkey", "dropattention", "hiddencut")
          for p in ("element", "column", "span")),
    }
    hk = PRESETS["hiddenkey"]
    assert hk.active_positions == ("attn_logits", "ffn_hidden")
    assert (hk.attn_logits.pattern, hk.ffn_hidden.pattern, hk.consistency) == (
        "column", "element", "kl")
    assert PRESETS["baseline"].active_positions == ()
    assert PRESETS["hf_default"].stock_dropout


def test_from_dict_with_preset_and_overrides():
    spec = DropoutSpec.from_dict({"preset": "hiddenkey", "attn_logits.rate": 0.05,
                                  "consistency.weight": 2})
    assert spec.attn_logits.rate == 0.05 and spec.consistency_weight == 2.0
    assert spec.ffn_hidden == PRESETS["hiddenkey"].ffn_hidden


def test_default_rescale_follows_the_pattern():
    assert DropoutSpec(ffn_hidden=PositionSpec("element", 0.1)).ffn_hidden.rescale == "inverted"
    assert DropoutSpec(ffn_hidden=PositionSpec("span", 0.1)).ffn_hidden.rescale == "none"
    assert DropoutSpec(attn_weights=PositionSpec("span", 0.1)).attn_weights.rescale == "renorm"
    changed = DropoutSpec.from_dict({"preset": "hiddencut_element", "ffn_hidden.pattern": "span"})
    assert changed.ffn_hidden.rescale == "none"


@pytest.mark.parametrize(
    ("flat", "message"),
    [
        ({"attn_logits.rate": 1.0}, r"dropout\.attn_logits\.rate: 1\.0 is outside \[0, 1\)"),
        ({"attn_logits.rate": -0.1}, r"attn_logits\.rate"),
        ({"attn_logits.rate": "0.1"}, r"attn_logits\.rate"),
        ({"ffn_hidden.pattern": "block"}, r"ffn_hidden\.pattern: 'block'.*'element', 'column'"),
        ({"attn_logits.rescale": "inverted"}, r"attn_logits\.rescale.*allowed: \['none'\]"),
        ({"attn_weights.rescale": "none"}, r"allowed: \['renorm', 'inverted'\]"),
        ({"consistency.loss": "mse"}, r"consistency\.loss.*\['none', 'kl', 'js'\]"),
        ({"consistency.weight": -1}, r"consistency\.weight: -1"),
        ({"consistency.weight": float("nan")}, r"consistency\.weight"),
        ({"consistency.grad": "two"}, r"consistency\.grad.*\['one', 'both'\]"),
        ({"layers": "first_half"}, r"layers.*'latter_half'"),
        ({"layers": []}, r"layers"),
        ({"stock_dropout": "yes"}, r"stock_dropout"),
        ({"attn_logit.rate": 0.1}, r"unknown key 'attn_logit\.rate'.*allowed: \["),
        ({"preset": "hiddenkeys"}, r"preset 'hiddenkeys' is unknown.*'hiddenkey'"),
    ],
)
def test_bad_values_name_the_key_and_the_allowed_values(flat, message):
    with pytest.raises(ConfigError, match=message):
        DropoutSpec.from_dict(flat)


def test_specs_are_values():
    spec = PRESETS["hiddenkey"]
    with pytest.raises(AttributeError):
        spec.consistency = "js"
    assert DropoutSpec(layers=[3, 1, 3]).layers == (1, 3)
    assert hash(spec) == hash(DropoutSpec.from_dict(spec.to_dict()))
