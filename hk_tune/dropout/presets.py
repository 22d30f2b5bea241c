"""The named methods of the paper's Table 1 (docs/design.md 2.5), as rows of one table.

Each row says which positions drop with which pattern, which consistency loss is on, and where
the paper defines it. `hk_tune.dropout.spec.PRESETS` builds the `DropoutSpec` of each row. Rates
are what a search varies; the rate every row starts from (0.1, λ = 1) is only a starting point so
a preset runs as it is. A preset with its rate fixed by the user is just a config.
"""

from __future__ import annotations

RATE = 0.1
WEIGHT = 1.0

# name: (positions -> pattern, consistency loss, reference in Wang et al., ACL Findings 2024)
TABLE: dict[str, tuple[dict[str, str], str, str]] = {
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
# What users get today: the backbone's stock dropout, nothing of ours.
STOCK = "hf_default"

REFERENCES: dict[str, str] = {name: reference for name, (_, _, reference) in TABLE.items()}
REFERENCES[STOCK] = "the backbone's own dropout, as transformers ships it"
