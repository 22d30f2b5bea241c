"""Run names: the preset's name and its rates when the shape is a preset's, else compact."""

from __future__ import annotations

import pytest

from hk_tune.dropout.spec import PRESETS
from hk_tune.tracking import run_name

LOGITS = {"attn_logits.pattern": "column", "attn_logits.rate": 0.1}
FFN = {"ffn_hidden.pattern": "element", "ffn_hidden.rate": 0.05}
KL = {"consistency.loss": "kl", "consistency.weight": 1.0}

CASES = [
    ({}, "baseline"),
    ({"attn_logits.rate": 0.0, "ffn_hidden.rate": 0.0, "consistency.loss": "none"}, "baseline"),
    ({"stock_dropout": True}, "hf_default"),
    ({"attn_logits.pattern": "element", "attn_logits.rate": 0.02}, "dropkey_element r=0.02"),
    (LOGITS, "dropkey_column r=0.1"),
    ({"attn_logits.pattern": "span", "attn_logits.rate": 0.15}, "dropkey_span r=0.15"),
    ({"attn_weights.pattern": "element", "attn_weights.rate": 0.1}, "dropattention_element r=0.1"),
    ({"attn_weights.pattern": "column", "attn_weights.rate": 0.1}, "dropattention_column r=0.1"),
    ({"attn_weights.pattern": "span", "attn_weights.rate": 0.2}, "dropattention_span r=0.2"),
    (FFN, "hiddencut_element r=0.05"),
    ({"ffn_hidden.pattern": "column", "ffn_hidden.rate": 0.1}, "hiddencut_column r=0.1"),
    ({"ffn_hidden.pattern": "span", "ffn_hidden.rate": 0.1}, "hiddencut_span r=0.1"),
    ({**LOGITS, **FFN}, "hiddenkey_minus r=0.1/0.05"),
    ({**LOGITS, **FFN, **KL}, "hiddenkey r=0.1/0.05 λ=1"),
    ({**LOGITS, **FFN, "consistency.loss": "js", "consistency.weight": 0.5},
     "hiddenkey_js r=0.1/0.05 λ=0.5"),
    ({**LOGITS, **FFN, **KL, "input.pattern": "element", "input.rate": 0.01},
     "hiddenkey_input r=0.1/0.05/0.01 λ=1"),
    ({**LOGITS, **FFN, **KL, "output.pattern": "element", "output.rate": 0.2},
     "hiddenkey_output r=0.1/0.05/0.2 λ=1"),
    # No preset has this shape: the compact form.
    ({"attn_logits.pattern": "span", "attn_logits.rate": 0.1, **FFN, **KL},
     "logits:span@0.1 ffn:element@0.05 kl λ=1"),
    ({**KL, "consistency.weight": 0.5}, "kl λ=0.5"),
    # λ = 0 switches the loss off.
    ({**LOGITS, **FFN, "consistency.loss": "kl", "consistency.weight": 0.0},
     "hiddenkey_minus r=0.1/0.05"),
    # Values as MLflow and YAML hand them back, and TPE's long floats.
    ({"attn_logits.pattern": "column", "attn_logits.rate": "0.0734523"}, "dropkey_column r=0.0735"),
    # Settings that differ from the defaults are named.
    ({"attn_weights.pattern": "element", "attn_weights.rate": 0.1,
      "attn_weights.rescale": "inverted"}, "dropattention_element r=0.1 weights.rescale=inverted"),
    ({**LOGITS, **FFN, **KL, "consistency.grad": "both", "layers": "latter_half"},
     "hiddenkey r=0.1/0.05 λ=1 grad=both layers=latter_half"),
    ({**LOGITS, "attn_logits.rescale": "none", "layers": "auto"}, "dropkey_column r=0.1"),
]


@pytest.mark.parametrize(("params", "expected"), CASES, ids=[c[1] for c in CASES])
def test_run_name(params, expected):
    assert run_name(params) == expected


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_recognised(preset):
    name = run_name(PRESETS[preset].to_dict())
    assert name == preset or name.startswith(f"{preset} r=")
