"""The named methods of the paper's Table 1 (DESIGN.md 2.5), as rows of one table.

Rates are what a search varies; the rate given here (0.1, λ = 1) is only a starting point so a
preset runs as it is. A preset with its rate fixed by the user is just a config.
"""

from __future__ import annotations

from hk_tune.dropout.spec import DropoutSpec, PositionSpec

_RATE = 0.1
_WEIGHT = 1.0

# name: (positions -> pattern, consistency loss, reference in Wang et al., ACL Findings 2024)
_TABLE: dict[str, tuple[dict[str, str], str, str]] = {
    "baseline": ({}, "none", "Table 1, 'w/o dropout': every dropout off"),
    "dropkey_element": ({"attn_logits": "element"}, "none", "DropKey (Li et al. 2023), Eq. 4"),
    "dropkey_column": ({"attn_logits": "column"}, "none", "DropKey, column pattern, Sec. 3.2"),
    "dropkey_span": ({"attn_logits": "span"}, "none", "DropKey, span pattern, Sec. 3.2"),
    "dropattention_element": (
        {"attn_weights": "element"}, "none", "DropAttention (Zehui et al. 2019), Eq. 5"
    ),
    "dropattention_column": ({"attn_weights": "column"}, "none", "DropAttention, column"),
    "dropattention_span": ({"attn_weights": "span"}, "none", "DropAttention, span"),
    "hiddencut_element": ({"ffn_hidden": "element"}, "none", "HiddenCut (Chen et al. 2021)"),
    "hiddencut_column": ({"ffn_hidden": "column"}, "none", "HiddenCut, column"),
    "hiddencut_span": ({"ffn_hidden": "span"}, "none", "HiddenCut, span (its default)"),
    "hiddenkey_minus": (
        {"attn_logits": "column", "ffn_hidden": "element"}, "none", "HiddenKey⁻, Sec. 4"
    ),
    "hiddenkey": (
        {"attn_logits": "column", "ffn_hidden": "element"}, "kl", "HiddenKey, Sec. 4, Eq. 11"
    ),
    "hiddenkey_js": (
        {"attn_logits": "column", "ffn_hidden": "element"}, "js", "HiddenKey with JS, Eq. 12"
    ),
    "hiddenkey_input": (
        {"attn_logits": "column", "ffn_hidden": "element", "input": "element"},
        "kl",
        "HiddenKey + input dropout (cutoff), Sec. 5.4",
    ),
    "hiddenkey_output": (
        {"attn_logits": "column", "ffn_hidden": "element", "output": "element"},
        "kl",
        "HiddenKey + output dropout, Sec. 5.4",
    ),
}


def _build(positions: dict[str, str], consistency: str) -> DropoutSpec:
    entries = {name: PositionSpec(pattern, _RATE) for name, pattern in positions.items()}
    return DropoutSpec(**entries, consistency=consistency, consistency_weight=_WEIGHT)


PRESETS: dict[str, DropoutSpec] = {
    name: _build(positions, loss) for name, (positions, loss, _) in _TABLE.items()
}
# What users get today: the backbone's stock dropout, nothing of ours.
PRESETS["hf_default"] = DropoutSpec(stock_dropout=True)

REFERENCES: dict[str, str] = {name: reference for name, (_, _, reference) in _TABLE.items()}
REFERENCES["hf_default"] = "the backbone's own dropout, as transformers ships it"
