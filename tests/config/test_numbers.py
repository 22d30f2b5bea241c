"""Every numeric key reads the same numbers in files and overrides, in every spelling YAML 1.2,
JSON and Python write (PyYAML follows YAML 1.1, which reads `5e-2` as text), and a key given
twice in one mapping is refused instead of the later one silently winning."""

from __future__ import annotations

import pytest

from hk_tune.config.files import apply_overrides
from hk_tune.config.run import RunConfig, load_run_config
from hk_tune.config.space_file import load_space
from hk_tune.errors import ConfigError

SPELLINGS = ["5e-2", "5E-2", "+5e-2", "5.0e-2", "0.05", ".05", "5.e-2"]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_rate_reads_the_same_in_every_spelling(tmp_path, spelling):
    path = tmp_path / "run.yaml"
    path.write_text("data: {source: bundled:sentiment}\n"
                    f"dropout: {{attn_logits.pattern: element, attn_logits.rate: {spelling}}}\n"
                    f"optim: {{lr: {spelling}}}\n")
    cfg = load_run_config(path)
    assert cfg.dropout.attn_logits.rate == 0.05 and cfg.optim.lr == 0.05

    raw = apply_overrides({"data": {"source": "bundled:sentiment"}},
                          ["dropout=hiddenkey", f"dropout.consistency.weight={spelling}",
                           f"dropout.attn_logits.rate={spelling}"], "overrides")
    cfg = RunConfig.from_dict(raw)
    assert cfg.dropout.consistency_weight == 0.05 and cfg.dropout.attn_logits.rate == 0.05


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_a_space_reads_the_same_numbers(tmp_path, spelling):
    path = tmp_path / "space.yaml"
    path.write_text("fixed: {data.source: bundled:sentiment, "
                    f"dropout.consistency.loss: kl, dropout.consistency.weight: {spelling}}}\n"
                    "search:\n"
                    f"  dropout.attn_logits.rate: {{type: float, low: {spelling}, high: 0.3}}\n")
    space = load_space(path)
    assert space.fixed["dropout.consistency.weight"] == 0.05
    assert space.entries[0].low == 0.05


def test_integers_and_text_stay_what_they_were(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {source: bundled:sentiment}\nseed: 10\nname: 1e3x\n"
                    "optim: {batch_size: 1_6}\n")
    cfg = load_run_config(path)
    assert (cfg.seed, cfg.name, cfg.optim.batch_size) == (10, "1e3x", 16)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data: {source: bundled:sentiment}\noptim:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"line 4, column 3\): 'lr' is given twice"):
        load_run_config(path)
    with pytest.raises(ConfigError, match="given twice"):
        apply_overrides({}, ["optim={lr: 1, lr: 2}"], "overrides")


def test_a_merge_key_still_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("base: &base {lr: 0.1, batch_size: 8}\ndata: {source: bundled:sentiment}\n"
                    "optim:\n  <<: *base\n  lr: 0.2\n")
    from hk_tune.config.files import read_yaml

    assert read_yaml(path, "config")["optim"] == {"lr": 0.2, "batch_size": 8}
