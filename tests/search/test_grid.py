"""Plain grids (`hk_tune.search.grid`): fixed points with fixed seeds, as a plain Tune experiment
on the shared local Ray, and the records their runs make."""

from __future__ import annotations

import math

import pytest
import yaml

from hk_tune.config.space_file import load_space
from hk_tune.search.grid import run_grid


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
    points = [{"dropout/preset": "baseline"},
              *({"dropout/preset": "dropkey_column", "dropout/attn_logits.rate": rate}
                for rate in (0.1, 0.2))]

    records = run_grid(space, str(tmp_path / "runs"), "grid", points, [1, 2])

    assert len(records) == 6
    assert sorted((str(r.params), r.seed) for r in records) == sorted(
        (str(p), s) for p in points for s in (1, 2))
    for record in records:
        assert record.status == "completed", record.error
        assert math.isfinite(record.value) and 0.0 <= record.value <= 1.0
        assert [h["step"] for h in record.history] == [2, 4]
    again = run_grid(space, str(tmp_path / "runs"), "grid", points, [1, 2])  # finished: kept
    assert sorted(r.trial_id for r in again) == sorted(r.trial_id for r in records)


def test_a_restarted_runs_repeated_evaluations_count_once():
    """A trial restarted in its own process reports the evaluations after its last registered
    checkpoint again (Tune's own result rows, here as Tune's dataframe holds them)."""
    from types import SimpleNamespace

    import pandas as pd

    from hk_tune.search.rows import run_records

    frame = pd.DataFrame([{"step": 2, "eval_accuracy": 0.5}, {"step": 4, "eval_accuracy": 0.6},
                          {"step": 4, "eval_accuracy": 0.7}, {"step": 6, "eval_accuracy": 0.8}])
    result = SimpleNamespace(config={"params": {"dropout/preset": "baseline"}, "seed": 1},
                             metrics={"step": 6, "total_steps": 6, "eval_accuracy": 0.8},
                             metrics_dataframe=frame, error=None, path="/runs/trial_a_00000")

    (record,) = run_records([result], SimpleNamespace(score="eval_accuracy",
                                                      metric="eval_accuracy"))

    assert [(h["step"], h["eval_accuracy"]) for h in record.history] == [(2, 0.5), (4, 0.7),
                                                                        (6, 0.8)]
    assert record.status == "completed" and record.trial_id == "trial_a_00000"
