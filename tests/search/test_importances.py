"""Importances see every searched parameter: a rate and λ that exist only when their switch is
on are assessed (PED-ANOVA), where fANOVA would drop them."""

from __future__ import annotations

import random
from pathlib import Path

from hk_tune.config.space_file import load_space
from hk_tune.search.results import importances
from hk_tune.search.rows import TrialRow

PAPER = Path(__file__).parents[2] / "search_spaces" / "paper.yaml"
RATES = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
WEIGHTS = (0.01, 0.1, 1, 10)


def trials(n: int, seed: int = 0) -> list[TrialRow]:
    """A search where the score rises with the DropKey rate and with λ, when they are on."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sampled = {"dropout/attn_logits": "off", "dropout/consistency.loss": "none"}
        score = 0.70 + rng.gauss(0, 0.002)
        if i % 3:
            rate = rng.choice(RATES)
            sampled.update({"dropout/attn_logits": "column", "dropout/attn_logits.rate": rate})
            score += rate / 3
        if i % 2:
            weight = rng.choice(WEIGHTS)
            sampled.update({"dropout/consistency.loss": "kl",
                            "dropout/consistency.weight": weight})
            score += 0.01 * WEIGHTS.index(weight)
        rows.append(TrialRow(trial_id=f"t{i}", name=f"t{i}", status="completed", params={},
                             sampled=sampled, metric=score, last=score))
    return rows


def test_conditional_rates_and_weights_get_an_importance():
    found = importances(load_space(PAPER), trials(30))
    assert {"dropout.attn_logits.rate", "dropout.consistency.weight"} <= set(found)
    assert found["dropout.attn_logits.rate"] > 0 and found["dropout.consistency.weight"] > 0
    assert abs(sum(found.values()) - 1.0) < 1e-6


def test_too_few_trials_give_no_importances():
    assert importances(load_space(PAPER), trials(3)) == {}
