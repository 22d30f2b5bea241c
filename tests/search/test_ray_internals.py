"""Each use hk_tune makes of Ray's private APIs (hk_tune.search.ray_internals), on real Ray
objects: a Ray upgrade that renames or reshapes one fails here, by name."""

from __future__ import annotations

import inspect
import sys

import optuna
import pytest
from ray.tune.search import ConcurrencyLimiter, SearchGenerator
from ray.tune.search.optuna import OptunaSearch

from hk_tune.search import ray_internals


def define_by_run(trial):
    trial.suggest_float("x", 0.0, 1.0)
    return {"fixed": 1}


def optuna_search() -> OptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(define_by_run, metric="score", mode="max",
                        sampler=optuna.samplers.RandomSampler(seed=0))


def test_the_controller_saves_its_state_when_a_trial_changed():
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController.checkpoint
    assert {"force", "wait"} <= set(inspect.signature(original).parameters)
    assert "_trials_to_cache" in inspect.getsource(TuneController)

    forced = []

    class Controller:
        _trials_to_cache = {"a trial"}

    def spy(controller, force=False, wait=False):
        forced.append(force)

    TuneController.checkpoint = spy
    try:
        with ray_internals.save_state_on_change():
            TuneController.checkpoint(Controller())
            Controller._trials_to_cache = set()
            TuneController.checkpoint(Controller())
    finally:
        TuneController.checkpoint = original
    assert forced == [True, False]


def test_optuna_search_parts_and_a_replayed_trial():
    searcher = optuna_search()
    trials, study = ray_internals.optuna_parts(searcher)
    assert trials == {} and isinstance(study, optuna.Study)
    study.enqueue_trial({"x": 0.25})
    ot_trial = study.ask()
    params = ray_internals.replay_define_by_run(searcher, define_by_run, ot_trial)
    assert params == {"x": 0.25, "fixed": 1}
    assert ot_trial.params == {"x": 0.25}  # recorded with its distribution, as suggest does


def test_live_trials_hold_the_concurrency_slots():
    searcher = optuna_search()
    trials, study = ray_internals.optuna_parts(searcher)
    trials["running"] = study.ask()  # a trial a resumed search knows, still running
    limiter = ConcurrencyLimiter(searcher, max_concurrent=1)
    ray_internals.hold_live_trials(limiter, {"running"})
    assert limiter.suggest("new") is None  # the one slot is held
    limiter.on_trial_complete("running", {"score": 1.0})
    assert limiter.suggest("new") is not None


def test_a_generator_takes_its_spec_from_a_saved_state(tmp_path):
    from ray.tune.registry import register_trainable

    register_trainable("hk_tune_internals", lambda config: None)
    saved = SearchGenerator(ConcurrencyLimiter(optuna_search(), max_concurrent=1))
    saved.add_configurations({"spec": {"run": "hk_tune_internals", "num_samples": 3}})
    saved.save_to_dir(str(tmp_path), session_str="saved")

    fresh = SearchGenerator(ConcurrencyLimiter(optuna_search(), max_concurrent=3))
    ray_internals.restore_generator_spec(fresh, str(tmp_path), total_samples=3)
    ray_internals.set_generator_count(fresh, 1)
    assert fresh.next_trial() is not None and fresh.next_trial() is not None
    assert fresh.next_trial() is None  # 3 in the budget, 1 made before
    with pytest.raises(RuntimeError, match="to resume from"):
        ray_internals.restore_generator_spec(fresh, str(tmp_path / "empty"), total_samples=3)


@pytest.mark.usefixtures("ray_session")
def test_a_restored_tuner_hands_over_its_run_config_trials_and_tune_config(tmp_path):
    import ray.cloudpickle
    import ray.tune

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    tuner = ray.tune.Tuner(one_report, param_space={"x": ray.tune.grid_search([1, 2])},
                           run_config=ray.tune.RunConfig(name="internals",
                                                         storage_path=str(tmp_path)))
    tuner.fit()
    restored = ray.tune.Tuner.restore(str(tmp_path / "internals"), trainable=one_report)
    run_config, analysis, tune_config = ray_internals.restored_tuner_parts(restored)
    assert isinstance(run_config, ray.tune.RunConfig)
    assert isinstance(tune_config, ray.tune.TuneConfig)
    assert len(analysis.trials) == 2


def one_report(config):
    import ray.tune

    ray.tune.report({"score": float(config["x"])})


def test_local_ray_counts_the_gpus_it_would_schedule():
    assert ray_internals.local_ray_gpus() >= 0
