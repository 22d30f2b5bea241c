"""What a trial is scored by: one seed gives one result on a fresh or a reused Tune actor, the
score is the best evaluation (or the last, by `metric_scope`), and the best evaluation's
checkpoint outlives Tune's `num_to_keep`. Real local Ray (the tests' shared session)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from test_search import tiny_space

from hk_tune.config.space_file import load_space
from hk_tune.errors import ConfigError
from hk_tune.search import results
from hk_tune.search.rows import checkpoint_at, trial_rows

# What the loop itself reports; Tune adds its own timing and bookkeeping keys beside them.
LOOP_KEYS = ("step", "train_loss", "train_consistency_loss", "eval_loss", "eval_accuracy",
             "eval_f1", "best_eval_accuracy", "best_step")


def loop_numbers(history: list[dict]) -> list[dict]:
    return [{key: row[key] for key in LOOP_KEYS} for row in history]


@pytest.mark.usefixtures("ray_session")
def test_a_point_run_again_on_a_reused_actor_repeats_its_first_run(tmp_path, tiny_models,
                                                                   toy_data):
    """Three runs through the search's trainable, two at a time: the first baseline on a fresh
    actor (its base model loaded), the second on an actor reused after the first two (its base
    model from the cache). Both give the same history."""
    from hk_tune.search.grid import run_grid

    space = load_space(tiny_space(tmp_path, tiny_models, toy_data))
    baseline, hiddenkey = space.warm_start_points
    records = run_grid(space, str(tmp_path / "runs"), "repeat", [baseline, hiddenkey, baseline],
                       seeds=[0])
    runs = [r for r in records if r.params == baseline]
    assert len(runs) == 2 and all(r.status == "completed" for r in runs)
    assert loop_numbers(runs[0].history) == loop_numbers(runs[1].history)


def scripted_trial(config):
    """A trial whose evaluations are given: eval_accuracy per step, each with a checkpoint."""
    import tempfile

    import ray.tune

    best = -math.inf
    for step, value in enumerate(config["values"], start=1):
        if value >= best:
            best, best_step = value, step
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "step.txt").write_text(str(step))
            ray.tune.report({"step": step, "total_steps": len(config["values"]),
                             "eval_accuracy": value, "best_eval_accuracy": best,
                             "best_step": best_step},
                            checkpoint=ray.tune.Checkpoint.from_directory(folder))


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("scope", ["best", "last"])
def test_the_best_evaluations_checkpoint_outlives_num_to_keep(tmp_path, tiny_models, toy_data,
                                                              scope):
    """Five evaluations, the best at step 2, two checkpoints kept: scored by the best, the
    search's run config keeps step 2's checkpoint, and the trial's row points at it."""
    import sys

    import ray.cloudpickle
    import ray.tune

    from hk_tune.search.experiment import fit, tune_run_config

    # Tune's actors cannot import this test module: send the trainable by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    space = load_space(tiny_space(tmp_path, tiny_models, toy_data, metric_scope=scope))
    tuner = ray.tune.Tuner(
        scripted_trial, param_space={"values": [0.5, 0.9, 0.6, 0.7, 0.65]},
        run_config=tune_run_config(space, "scripted", str(tmp_path / "runs"), []))
    (result,) = fit(tuner)
    kept = sorted(metrics["step"] for _, metrics in result.best_checkpoints)
    assert result.metrics["best_step"] == 2
    found = checkpoint_at(result, 2)  # what a trial's row holds as best_checkpoint
    # The latest checkpoint stays either way: a restarted trial resumes from it.
    assert Path(result.checkpoint.path, "step.txt").read_text() == "5"
    if scope == "best":
        assert kept == [2, 4]  # the two best scores
        assert Path(found, "step.txt").read_text() == "2"
    else:
        assert kept == [4, 5]
        assert found is None


def fake_result(trial: str, history: list[dict], params: dict) -> SimpleNamespace:
    """A Tune result as `trial_rows` reads it: config, last metrics, its history."""
    return SimpleNamespace(config=params, metrics=history[-1], error=None,
                           metrics_dataframe=pd.DataFrame(history), path=f"/runs/{trial}",
                           best_checkpoints=[])


def test_trials_rank_by_their_best_evaluation_or_their_last(tmp_path, tiny_models, toy_data):
    """A trial that peaked and fell against one still rising: best scope ranks the peak first,
    last scope the riser; both values are in each row either way."""
    def history(values):
        best, rows = -math.inf, []
        for step, value in enumerate(values, start=1):
            best_step = step if value >= best else rows[-1]["best_step"]
            best = max(best, value)
            rows.append({"step": step, "total_steps": len(values), "eval_accuracy": value,
                         "best_eval_accuracy": best, "best_step": best_step,
                         "trial_id": f"t{values[0]}"})
        return rows

    rows_by_scope = {}
    for scope in ("best", "last"):
        space = load_space(tiny_space(tmp_path, tiny_models, toy_data, metric_scope=scope))
        baseline, hiddenkey = space.warm_start_points
        grid = [fake_result("peaked", history([0.6, 0.9, 0.7]), baseline),
                fake_result("rising", history([0.5, 0.7, 0.8]), hiddenkey)]
        rows_by_scope[scope] = trial_rows(space, grid)[0]
    best, last = rows_by_scope["best"], rows_by_scope["last"]
    assert [(r.name, r.metric, r.last, r.best_step) for r in best] == [
        ("baseline", 0.9, 0.7, 2), (best[1].name, 0.8, 0.8, 3)]
    assert [r.name for r in last] == [best[1].name, "baseline"]
    assert [r.metric for r in last] == [0.8, 0.7]
    table = results.format_table([r.public() for r in best], "eval_accuracy", scope="best")
    assert "best eval_accuracy" in table.splitlines()[0] and "at step" in table


def test_the_score_follows_metric_scope(tmp_path, tiny_models, toy_data):
    best = load_space(tiny_space(tmp_path, tiny_models, toy_data))
    assert (best.metric_scope, best.score, best.mode) == ("best", "best_eval_accuracy", "max")
    assert best.base.metric == "eval_accuracy"  # the trials track that metric
    last = load_space(tiny_space(tmp_path, tiny_models, toy_data, metric_scope="last",
                                 metric="eval_loss"))
    assert (last.score, last.mode) == ("eval_loss", "min")


@pytest.mark.parametrize("settings, message", [
    ({"metric_scope": "first"}, "metric_scope: 'first' is not allowed; allowed: ['best', 'last']"),
    ({"metric": "eval_bleu"}, "metric: 'eval_bleu' is not reported by a classification "
                              "evaluation; allowed: ['eval_loss', 'eval_accuracy'"),
    ({"metric": "eval_loss", "mode": "max"}, "mode: 'max' is not allowed for eval_loss, where "
                                              "lower is better; allowed: 'min'"),
    ({"metric": 3}, "metric: expected a string"),
])
def test_a_score_no_evaluation_can_give_is_refused(tmp_path, tiny_models, toy_data, settings,
                                                   message):
    with pytest.raises(ConfigError, match=None) as raised:
        load_space(tiny_space(tmp_path, tiny_models, toy_data, **settings))
    assert message in str(raised.value) and "tiny.yaml" in str(raised.value)
