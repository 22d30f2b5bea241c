"""Search-space files: every shipped space loads and samples valid run configs, conditional
parameters follow their parent, and bad files fail naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hk_tune.config.run import RunConfig
from hk_tune.config.space_file import branch_points, load_space
from hk_tune.dropout import DropoutSpec
from hk_tune.errors import ConfigError
from hk_tune.search.space import sample

SPACES = sorted(Path(__file__).parents[2].joinpath("search_spaces").glob("*.yaml"))


def test_the_shipped_spaces():
    assert {p.stem for p in SPACES} == {"quickstart", "paper", "hiddenkey", "positions",
                                        "decoder", "reproduce"}


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_space_samples_build_valid_run_configs(path):
    text = path.read_text()
    assert text.startswith("#") and f"hk-tune search search_spaces/{path.name}" in text
    space = load_space(path)
    points = sample(space, 20, seed=1)
    assert len(points) == 20
    for point in points + list(space.warm_start_points):
        cfg = space.trial_config(point)
        assert isinstance(cfg.dropout, DropoutSpec)
        assert cfg.to_dict() == RunConfig.from_dict(cfg.to_dict()).to_dict()
        # Budgets in epochs: a regularizer pays off only after whole passes over the data.
        assert cfg.optim.epochs is not None and cfg.optim.max_steps is None
    assert sample(space, 3, seed=1) == points[:3]  # seeded: same samples again


def test_conditional_parameters_never_appear_when_their_parent_is_off():
    space = load_space(Path("search_spaces/paper.yaml"))
    for point in sample(space, 60, seed=3):
        for position in ("attn_logits", "attn_weights", "ffn_hidden", "input", "output"):
            on = point[f"dropout/{position}"] != "off"
            assert (f"dropout/{position}.rate" in point) == on
            cfg = space.trial_config(point)
            assert (cfg.dropout.position(position).rate > 0) == on
        has_weight = "dropout/consistency.weight" in point
        assert has_weight == (point["dropout/consistency.loss"] != "none")


def test_presets_are_warm_start_points_in_the_space_names():
    space = load_space(Path("search_spaces/quickstart.yaml"))
    baseline, hiddenkey = space.warm_start_points
    assert baseline == {"dropout/attn_logits": "off", "dropout/ffn_hidden": "off",
                        "dropout/consistency.loss": "none"}
    cfg = space.trial_config(hiddenkey)
    assert cfg.dropout.attn_logits.pattern == "column" and cfg.dropout.consistency == "kl"


def test_overrides_reach_fixed_keys_and_settings():
    space = load_space(Path("search_spaces/quickstart.yaml"),
                       ["data.source=my.csv", "data.label=sentiment", "data.task=classification",
                        "num_samples=20", "confirm.seeds=5", "name=mine"])
    assert space.num_samples == 20 and space.confirm_seeds == 5 and space.name == "mine"
    assert space.base.data.source == "my.csv" and space.base.data.label == "sentiment"
    assert space.trial_config({}) == space.base


def test_the_mlflow_experiment_comes_from_the_file_then_the_environment(tmp_path, monkeypatch):
    path = Path("search_spaces/quickstart.yaml")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    assert load_space(path).experiment == "hk_tune"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "team-dropout")
    assert load_space(path).experiment == "team-dropout"
    assert load_space(path, ["experiment=sentiment"]).experiment == "sentiment"


GOOD = {"fixed": {"model": "minilm", "data.source": "bundled:snli"},
        "search": {"dropout.attn_logits.rate": {"type": "float", "low": 0.01, "high": 0.3}}}

BAD_FILES = [
    ({"serch": {}}, "serch", "num_samples"),
    ({"fixed": {"optim.lrr": 1}}, "optim.lrr", "optim.lr"),
    ({"search": {"dropout.attn_logits.rat": {"type": "float", "low": 0, "high": 1}}},
     "dropout.attn_logits.rat", "dropout.attn_logits.rate"),
    ({"search": {"dropout.attn_logits.rate": {"type": "uniform", "low": 0, "high": 1}}},
     "type", "log_float"),
    ({"search": {"dropout.attn_logits.rate": {"type": "float", "low": 0.1, "high": 1.0}}},
     "dropout.attn_logits.rate", "[0, 1)"),
    ({"search": {"dropout.attn_logits.rate": {"type": "float", "low": 0.3, "high": 0.1}}},
     "dropout.attn_logits.rate", "below high"),
    ({"search": {"dropout.consistency.weight": {"type": "log_float", "low": 0, "high": 1}}},
     "dropout.consistency.weight", "low > 0"),
    ({"search": {"dropout.attn_logits.pattern": {"type": "categorical",
                                                 "choices": ["column", "diagonal"]}}},
     "dropout.attn_logits.pattern", "column"),
    ({"search": {"dropout.ffn_hidden": {"type": "categorical",
                                        "choices": {"off": {}, "row": {}}}}},
     "dropout.ffn_hidden", "span"),
    ({"search": {"dropout.consistency.loss": {"type": "categorical", "choices": {
        "none": {}, "kl": {"dropout.consistency.wieght": {"type": "grid", "values": [1]}}}}}},
     "dropout.consistency.wieght", "dropout.consistency.weight"),
    ({"scheduler": "hyperband"}, "scheduler", "asha"),
    ({"executor": "thread"}, "executor", "inprocess"),
    ({"warm_start": ["hiddenkeyy"]}, "warm_start", "hiddenkey_minus"),
    ({"mode": "maximize"}, "mode", "max"),
    ({"num_samples": 0}, "num_samples", ">= 1"),
    ({"resources": {"gpus": 1}}, "resources", "gpus_per_worker"),
    ({"experiment": ""}, "experiment", "non-empty MLflow experiment name"),
    ({"experiment": ["a"]}, "experiment", "at most 500 characters"),
    # A fixed value under a choice is checked whether or not a sample would take that choice.
    ({"search": {"dropout.consistency.loss": {"type": "categorical", "choices": {
        "none": {}, "js": {}, "kl": {"dropout.consistency.weight": -1}}}}},
     "dropout.consistency.weight", ">= 0"),
]


@pytest.mark.parametrize("change, key, allowed", BAD_FILES, ids=[b[1] for b in BAD_FILES])
def test_bad_space_files_name_file_key_and_allowed_values(tmp_path, change, key, allowed):
    raw = {**GOOD, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_space(path)
    message = str(caught.value)
    assert str(path) in message and key in message and allowed in message, message


def test_every_branch_is_a_point_that_is_checked():
    """One point per value of every entry, nested ones included: each choice is taken once."""
    space = load_space(Path("search_spaces/quickstart.yaml"))
    points = branch_points(space.entries)
    taken = {(name, value) for point in points for name, value in point.items()}
    for rate in (0.05, 0.1, 0.2):
        assert ("dropout/attn_logits.rate", rate) in taken
    for weight in (0.01, 0.1, 1, 10):
        assert ("dropout/consistency.weight", weight) in taken
    assert all(("dropout/attn_logits.rate" in p) == (p["dropout/attn_logits"] == "column")
               for p in points)


def test_show_prints_samples_without_running_anything(capsys):
    from hk_tune import cli

    assert cli.main(["show", "search_spaces/paper.yaml", "-n", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("search 'paper'") and len(out) == 5


def test_show_bad_space_exits_2(tmp_path, capsys):
    from hk_tune import cli

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "executor": "thread"}))
    assert cli.main(["show", str(path)]) == 2
    assert "executor" in capsys.readouterr().err
