"""The search algorithm rebuilt from a search's trials (hk_tune.search.searcher): what a resumed
search's searcher knows must be exactly what Tune's saved experiment holds, whatever the
searcher's own saved files say. No Ray processes: Tune's search objects are driven directly."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial
from ray.tune.registry import register_trainable
from test_search import tiny_space

from hk_tune.config.space_file import load_space
from hk_tune.search.searcher import build_search


@pytest.fixture
def space(tmp_path, tiny_models, toy_data):
    # Tune checks that the trainable a trial names is registered; none ever runs here.
    register_trainable("hk_tune", lambda config: None)
    return load_space(tiny_space(tmp_path, tiny_models, toy_data, num_samples=6))


def saved_trial(trial_id: str, params: dict, status: str, accuracy: float | None = None):
    """A trial as Tune restores it from its experiment state."""
    trial = Trial("hk_tune", config={}, trial_id=trial_id, evaluated_params=params, stub=True)
    trial.set_status(status)
    if accuracy is not None:
        trial.run_metadata.last_result = {"best_eval_accuracy": accuracy, "training_iteration": 3}
    return trial


def next_suggestion(search):
    trial = search.next_trial()
    return None if trial is None else (trial.trial_id, trial.evaluated_params)


def test_a_new_search_starts_with_its_presets_in_order(space):
    search = build_search(space, max_concurrent=2)
    search.add_configurations({"tiny": {"run": "hk_tune", "num_samples": space.num_samples}})
    points = space.warm_start_points
    first, second = next_suggestion(search), next_suggestion(search)
    assert [first[1], second[1]] == list(points)
    assert next_suggestion(search) is None  # two live trials, limit 2


def optuna_params(point: dict) -> dict:
    """What Optuna records of a point with every dropout off: the define-by-run function
    leaves the consistency entries out (the loss is `none` as a constant)."""
    return {k: v for k, v in point.items() if not k.startswith("dropout/consistency.")}


def test_a_rebuilt_search_holds_the_saved_trials_and_only_them(space, tmp_path):
    baseline, hiddenkey = space.warm_start_points
    trials = [saved_trial("a", baseline, Trial.TERMINATED, accuracy=0.75),
              saved_trial("b", hiddenkey, Trial.RUNNING)]
    search = build_search(space, max_concurrent=1, trials=trials)
    # The saved searcher state is not laid over the trials (it may be older or newer than
    # them); only what to run is taken from it.
    saved = build_search(space, max_concurrent=1)
    saved.add_configurations({"tiny": {"run": "hk_tune", "num_samples": 1}})
    saved.next_trial()
    saved.save_to_dir(str(tmp_path), session_str="saved")
    search.restore_from_dir(str(tmp_path))

    limiter = search.searcher
    optuna_search = limiter.searcher
    study = optuna_search._ot_study
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert [(t.params, t.value) for t in done] == [(optuna_params(baseline), 0.75)]
    # The running trial is known, so its results and completion reach Optuna ...
    assert limiter.live_trials == {"b"}
    assert next_suggestion(search) is None  # ... and it holds the one concurrency slot
    search.on_trial_result("b", {"best_eval_accuracy": 0.5, "training_iteration": 1})
    search.on_trial_complete("b", {"best_eval_accuracy": 0.8, "training_iteration": 3})
    assert sorted(t.value for t in study.trials if t.state.name == "COMPLETE") == [0.75, 0.8]

    # Both presets are taken; the budget left is 6 - 2 trials.
    suggested = []
    while (suggestion := next_suggestion(search)) is not None:
        suggested.append(suggestion)
        search.on_trial_complete(suggestion[0], {"best_eval_accuracy": 0.6})
    assert len(suggested) == 4
    assert all(params not in (baseline, hiddenkey) for _, params in suggested)
    assert search.is_finished()


def test_errored_trials_are_run_again_so_they_stay_live(space):
    baseline, _ = space.warm_start_points
    search = build_search(space, max_concurrent=2,
                          trials=[saved_trial("a", baseline, Trial.ERROR)])
    assert search.searcher.live_trials == {"a"}
    search.on_trial_complete("a", {"best_eval_accuracy": 0.7})
    study = search.searcher.searcher._ot_study
    assert [(t.params, t.value) for t in study.trials if t.state.name == "COMPLETE"] == [
        (optuna_params(baseline), 0.7)]



def test_a_configuration_proposed_again_is_not_run_again(tmp_path, tiny_models, toy_data,
                                                         capsys):
    """Every trial has the search's seed, so a repeated configuration would only repeat its
    numbers: TPE is asked for another point, and once the space has none, no trial starts."""
    register_trainable("hk_tune", lambda config: None)
    space = load_space(tiny_space(
        tmp_path, tiny_models, toy_data, num_samples=4, warm_start=["baseline"],
        search={"dropout.attn_logits": {"type": "categorical", "choices": {
            "off": {}, "column": {"dropout.attn_logits.rate": {"type": "grid",
                                                                "values": [0.1]}}}}}))
    search = build_search(space, max_concurrent=1)
    search.add_configurations({"tiny": {"run": "hk_tune", "num_samples": space.num_samples}})
    seen = []
    while (suggestion := next_suggestion(search)) is not None:
        seen.append(suggestion[1])
        search.on_trial_complete(suggestion[0], {"best_eval_accuracy": 0.5 + len(seen) / 10})
    # Two configurations exist (off; column at 0.1): each ran once, then the search ended.
    assert len(seen) == 2 and seen[0] == space.warm_start_points[0]
    assert seen[1]["dropout/attn_logits"] == "column"
    assert search.is_finished()
    err = capsys.readouterr().err
    assert "again, which trial" in err and "is reused" in err
    assert "no new trial is started" in err
