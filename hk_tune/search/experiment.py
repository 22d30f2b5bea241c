"""The Tune experiments of a search: the Tuner (Optuna TPE, warm start, ASHA), a restored one for
resume, plain grids (seed confirmation), and fitting them with Tune's state saved whenever a
trial changes.

    tuner = build_tuner(space, folder, callbacks)      # or restore_tuner(space, folder, ...)
    grid = fit(tuner)
    grid = run_plain(space, folder, {"params": ..., "seed": ...}, "confirm")

Ray and the modules that import it at load (the searcher, the stopper, the progress lines) and
Tune's state (pyarrow's filesystems) are imported where a Tuner is built, so importing this
module loads none of them.
"""

from __future__ import annotations

import contextlib
import os
import sys

from hk_tune import storage
from hk_tune.config.space import SearchConfig
from hk_tune.search.executor import (
    build_trainable,
    choose_executor,
    trials_that_fit,
    tune_max_failures,
)
from hk_tune.search.ray_internals import restored_tuner_parts, save_state_on_change
from hk_tune.search.trust import sign_file

TUNER_FILE = "tuner.pkl"  # Tune's name for the Tuner it pickles into an experiment folder

# Checkpoints a trial keeps: a resumed trial repeats at most one evaluation (see `tune_state`);
# scored by the metric, the best evaluation's stays beside the latest (`hk-tune export`).
CHECKPOINTS_KEPT = 2


def build_tuner(space: SearchConfig, folder: str, callbacks: list):
    """The Tuner: the search (seeded TPE, presets first, concurrency from the space and the
    cluster), ASHA if asked, resources from the space."""
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler

    from hk_tune.search.searcher import build_search
    from hk_tune.search.stopping import TargetReached

    scheduler = None
    if space.scheduler == "asha":
        scheduler = ASHAScheduler(metric=space.score, mode=space.mode,
                                  grace_period=space.grace_period,
                                  reduction_factor=space.reduction_factor)
    tuner = ray.tune.Tuner(
        build_trainable(space, storage.join(folder, "train")),
        tune_config=ray.tune.TuneConfig(
            search_alg=build_search(space, concurrency(space), folder=folder),
            scheduler=scheduler,
            num_samples=space.num_samples, time_budget_s=space.time_budget_s,
            reuse_actors=choose_executor(space) == "inprocess",
            trial_dirname_creator=trial_folder),
        run_config=tune_run_config(space, space.name, storage.resolve(space.storage_path),
                                   callbacks, stop=TargetReached(space) if space.stop is not None
                                   else None),
    )
    sign_file(storage.join(folder, TUNER_FILE))  # written by the Tuner, outside Tune's saves
    return tuner


def restore_tuner(space: SearchConfig, folder: str, callbacks: list):
    """The Tuner of an interrupted search, with this session's callbacks and a searcher rebuilt
    from the saved experiment's trials (its own saved state may not match them: see
    `hk_tune.search.searcher`)."""
    import ray.tune

    from hk_tune.search.progress import ProgressCallback
    from hk_tune.search.searcher import build_search
    from hk_tune.search.tune_state import tune_filesystem

    tuner = ray.tune.Tuner.restore(
        folder, trainable=build_trainable(space, storage.join(folder, "train")),
        resume_unfinished=True, resume_errored=True,
        storage_filesystem=tune_filesystem(folder))
    # The pickled callbacks hold no tracker (TrackingCallback.__getstate__): hand them this
    # session's. No experiment analysis: Tune found no trials in the saved state.
    run_config, saved, tune_config = restored_tuner_parts(tuner)
    run_config.callbacks = [ProgressCallback(space), *callbacks]
    trials = saved.trials if saved is not None else []
    tune_config.search_alg = build_search(space, concurrency(space), trials, folder=folder)
    tune_config.max_concurrent_trials = None  # the search holds the limit
    return tuner


def run_plain(space: SearchConfig, folder: str, param_space: dict, name: str):
    """A plain Tune experiment (no searcher) in the search folder, resumed if it exists."""
    import ray.tune

    from hk_tune.search.tune_state import tune_filesystem

    trainable = build_trainable(space, storage.join(folder, "train"))
    path = storage.join(folder, name)
    if storage.exists(storage.join(path, TUNER_FILE)):
        tuner = ray.tune.Tuner.restore(path, trainable=trainable, resume_errored=True,
                                       storage_filesystem=tune_filesystem(path))
    else:
        tuner = ray.tune.Tuner(
            trainable, param_space=param_space,
            tune_config=ray.tune.TuneConfig(max_concurrent_trials=concurrency(space),
                                            reuse_actors=choose_executor(space) == "inprocess",
                                            trial_dirname_creator=trial_folder),
            run_config=tune_run_config(space, name, folder, []))
        sign_file(storage.join(path, TUNER_FILE))
    return fit(tuner)


def fit(tuner):
    """`tuner.fit()`, with Tune's state saved in the search folder whenever a trial changed.

    Whatever Tune prints meanwhile (its experiment header, even with verbose=0, and the trial
    processes' forwarded output) goes to stderr: stdout holds hk_tune's results only.
    """
    with save_state_on_change(), contextlib.redirect_stdout(sys.stderr), _ctrl_c_interrupts():
        return tuner.fit()


@contextlib.contextmanager
def _ctrl_c_interrupts():
    """Ctrl-C raises KeyboardInterrupt out of `fit`, as SIGTERM does from the command line.

    Tune's own handler would end the experiment and return its unfinished trials as if it had
    run them all, and the search would confirm and report them; its state is saved whenever a
    trial changes, so `hk-tune resume` continues from the moment of the interrupt instead.
    """
    previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TUNE_DISABLE_SIGINT_HANDLER"]
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous


def concurrency(space: SearchConfig) -> int:
    """Trials at a time: what the cluster's CPUs and GPUs hold, capped by max_concurrent."""
    import ray

    return trials_that_fit(space, ray.cluster_resources())


def trial_folder(trial) -> str:
    """A trial's folder is named by its id (Tune's default name carries a timestamp)."""
    return f"trial_{trial.trial_id}"


def tune_run_config(space: SearchConfig, name: str, storage_path: str, callbacks: list,
                    stop=None):
    """Tune's RunConfig for an experiment of `space` in `storage_path/name`; `stop`, a Tune
    stopper."""
    import ray.tune

    from hk_tune.search.progress import ProgressCallback
    from hk_tune.search.tune_state import tune_filesystem

    # Tune's status tables (verbose=1) went to stdout; hk_tune's own progress goes to stderr.
    return ray.tune.RunConfig(
        name=name, storage_path=storage_path, verbose=0, stop=stop,
        callbacks=[ProgressCallback(space), *callbacks],
        storage_filesystem=tune_filesystem(storage_path),
        # Restarts the executor's run cannot do itself: see `tune_max_failures`.
        failure_config=ray.tune.FailureConfig(max_failures=tune_max_failures(space)),
        checkpoint_config=ray.tune.CheckpointConfig(
            num_to_keep=CHECKPOINTS_KEPT, checkpoint_score_order=space.mode,
            checkpoint_score_attribute=space.metric if space.metric_scope == "best" else None))
