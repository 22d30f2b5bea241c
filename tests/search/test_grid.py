"""Comparisons (`hk_tune.search.grid`): every row of a row space on its own grid, as plain Tune
experiments on the shared local Ray, and the row enumeration `benchmarks/reproduce.py` uses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from hk_tune.errors import ConfigError
from hk_tune.search.grid import row_points, run_grid
from hk_tune.search.space_file import load_space

REPRODUCE = Path(__file__).resolve().parents[2] / "search_spaces" / "reproduce.yaml"


def test_every_table_row_gets_its_grid():
    rows = row_points(load_space(REPRODUCE))
    assert list(rows)[:2] == ["baseline", "hf_default"] and len(rows) == 14
    assert rows["baseline"] == [{"dropout/preset": "baseline"}]
    assert [p["dropout/attn_weights.rate"] for p in rows["dropattention_span"]] == [0.05, 0.1,
                                                                                    0.2]
    assert len(rows["hiddenkey"]) == 27  # two rates x λ, each on a 3-point grid


def test_a_limit_keeps_the_presets_own_point_and_a_seeded_draw():
    space = load_space(REPRODUCE)
    one = row_points(space, limit=1)
    assert one["hiddenkey"] == [{"dropout/preset": "hiddenkey", "dropout/attn_logits.rate": 0.1,
                                 "dropout/ffn_hidden.rate": 0.1,
                                 "dropout/consistency.weight": 1}]
    three = row_points(space, limit=3, seed=0)
    assert three == row_points(space, limit=3, seed=0)
    assert three["hiddenkey"][0] == one["hiddenkey"][0] and len(three["hiddenkey"]) == 3
    assert len({str(p) for p in three["hiddenkey"]}) == 3
    assert three["hiddenkey"] != row_points(space, limit=3, seed=1)["hiddenkey"]


@pytest.mark.parametrize("search, message", [
    ({"dropout.preset": {"type": "categorical", "choices": ["baseline"]},
      "optim.lr": {"type": "grid", "values": [0.001]}}, "exactly one categorical"),
    ({"dropout.preset": {"type": "categorical", "choices": {
        "dropkey_column": {"dropout.attn_logits.rate": {"type": "float", "low": 0.05,
                                                        "high": 0.2}}}}},
     "allowed types: grid, categorical"),
])
def test_a_space_that_is_not_a_row_space_is_refused(tmp_path, search, message):
    path = tmp_path / "rows.yaml"
    path.write_text(yaml.safe_dump({"fixed": {"model": "minilm"}, "search": search}))
    with pytest.raises(ConfigError, match=message) as error:
        row_points(load_space(path))
    assert str(path) in str(error.value)


@pytest.mark.usefixtures("ray_session")
def test_run_grid_runs_every_point_with_every_seed(tmp_path, tiny_models, toy_data):
    raw = {
        "fixed": {"model": tiny_models["bert"], "data.source": toy_data["pair"]["source"],
                  "data.task": "classification", "data.text_pair": "other",
                  "data.max_length": 32, "optim.lr": 5e-3, "optim.batch_size": 4,
                  "optim.max_steps": 4, "optim.eval_every": 2},
        "search": {"dropout.preset": {"type": "categorical", "choices": {
            "baseline": {},
            "dropkey_column": {"dropout.attn_logits.rate": {"type": "grid",
                                                            "values": [0.1, 0.2]}}}}},
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "storage_path": str(tmp_path / "runs"),
    }
    path = tmp_path / "rows.yaml"
    path.write_text(yaml.safe_dump(raw))
    space = load_space(path)
    points = [p for row in row_points(space).values() for p in row]
    assert len(points) == 3

    records = run_grid(space, str(tmp_path / "runs"), "grid", points, [1, 2])

    assert len(records) == 6
    assert sorted((str(r["params"]), r["seed"]) for r in records) == sorted(
        (str(p), s) for p in points for s in (1, 2))
    for record in records:
        assert record["status"] == "completed", record["error"]
        assert math.isfinite(record["value"]) and 0.0 <= record["value"] <= 1.0
        assert [h["step"] for h in record["history"]] == [2, 4]
    again = run_grid(space, str(tmp_path / "runs"), "grid", points, [1, 2])  # finished: kept
    assert sorted(r["trial_id"] for r in again) == sorted(r["trial_id"] for r in records)


def test_a_restarted_runs_repeated_evaluations_count_once():
    """A trial restarted in its own process reports the evaluations after its last registered
    checkpoint again (Tune's own result rows, here as Tune's dataframe holds them)."""
    from types import SimpleNamespace

    import pandas as pd

    from hk_tune.search.results import run_records

    frame = pd.DataFrame([{"step": 2, "eval_accuracy": 0.5}, {"step": 4, "eval_accuracy": 0.6},
                          {"step": 4, "eval_accuracy": 0.7}, {"step": 6, "eval_accuracy": 0.8}])
    result = SimpleNamespace(config={"params": {"dropout/preset": "baseline"}, "seed": 1},
                             metrics={"step": 6, "total_steps": 6, "eval_accuracy": 0.8},
                             metrics_dataframe=frame, error=None, path="/runs/trial_a_00000")

    (record,) = run_records([result], SimpleNamespace(score="eval_accuracy",
                                                      metric="eval_accuracy"))

    assert [(h["step"], h["eval_accuracy"]) for h in record["history"]] == [(2, 0.5), (4, 0.7),
                                                                          (6, 0.8)]
    assert record["status"] == "completed" and record["trial_id"] == "trial_a_00000"
