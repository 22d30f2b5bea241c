"""A space never samples a consistency loss with every dropout off: the two passes would be the
same pass, the term 0 and the trial the baseline again."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hk_tune.config.space_file import load_space
from hk_tune.search.space import any_dropout, sample

SPACES = Path(__file__).parents[2] / "search_spaces"


ONE_SWITCH = {
    "fixed": {"model": "minilm", "data.source": "bundled:sentiment"},
    "search": {
        "dropout.ffn_hidden": {"type": "categorical", "choices": {
            "off": {}, "element": {"dropout.ffn_hidden.rate": {"type": "grid",
                                                               "values": [0.05, 0.1]}}}},
        "dropout.consistency.loss": {"type": "categorical", "choices": {
            "none": {}, "js": {}, "kl": {"dropout.consistency.weight": {
                "type": "log_float", "low": 0.01, "high": 10}}}},
    },
}


@pytest.mark.parametrize("name", ["quickstart", "one_switch"])
def test_no_point_has_a_consistency_loss_without_dropout(name, tmp_path):
    path = SPACES / f"{name}.yaml"
    if name == "one_switch":
        path = tmp_path / "one_switch.yaml"
        path.write_text(yaml.safe_dump(ONE_SWITCH))
    space = load_space(path)
    points = sample(space, 200)
    off = [p for p in points if not any_dropout(space, p)]
    on = [p for p in points if any_dropout(space, p)]
    assert off and on  # both occur in 200 draws of these spaces
    for point in off:
        assert space.trial_config(point).dropout.consistency == "none", point
        assert "dropout/consistency.weight" not in point
    assert any(space.trial_config(p).dropout.consistency != "none" for p in on)


def test_fixed_dropout_keeps_its_consistency_entries(tmp_path):
    """hiddenkey.yaml fixes HiddenKey's positions on and searches λ: always sampled."""
    space = load_space(SPACES / "hiddenkey.yaml")
    points = sample(space, 20)
    assert all("dropout/consistency.weight" in p for p in points)
