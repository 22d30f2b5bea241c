"""A search from start to finish: Ray, the Tuner (Optuna TPE, warm start, ASHA), resume, seed
confirmation, the ranked results, the best configuration and MLflow.

    outcome = run_search(space, SearchOptions(space_file="search_spaces/quickstart.yaml"))
    outcome = resume_search("hk_tune_runs/quickstart")

The search folder is `storage_path/name` (never a timestamp): Tune's experiment, `search.json`
(what resume needs), a copy of the space file, `confirm/`, `best_config.yaml`, `summary.json`.
storage_path may be an object-store URI (`hk_tune.train.storage`); then the best configuration
is also written to `./<name>_best_config.yaml`, so `hk-tune train` can take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hk_tune.errors import ConfigError
from hk_tune.search import confirm as confirmation
from hk_tune.search import export, overfit, results
from hk_tune.search.executor import (
    build_trainable,
    choose_executor,
    trials_that_fit,
    tune_max_failures,
)
from hk_tune.search.space import Space
from hk_tune.search.space_file import load_space
from hk_tune.train import storage

SEARCH_STATE = "search.json"
SPACE_COPY = "space.yaml"
# Set before Ray starts so every Ray process inherits them (DESIGN.md 5): glibc arenas grow
# per thread and reused actors run each trial in a new thread; Train's fixed waits go down.
RAY_ENV = {
    "MALLOC_ARENA_MAX": "2",
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.25",
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    "RAY_TRAIN_METRICS_ENABLED": "0",
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


@dataclass
class SearchOptions:
    """How to run a search, beyond its space file.

    Attributes:
        space_file: the YAML the space came from (copied into the search folder).
        overrides: the `key=value` overrides it was loaded with (kept for resume).
        address: a running Ray cluster; None starts local Ray on this machine.
        tracking_uri: MLflow store; None is MLFLOW_TRACKING_URI, else ./mlflow.db.
        ray_dashboard: start local Ray with its dashboard (see `start_ray`).
    """

    space_file: str
    overrides: list[str] = field(default_factory=list)
    address: str | None = None
    tracking_uri: str | None = None
    ray_dashboard: bool = False


def search_folder(space: Space) -> str:
    """`storage_path/name`: an absolute local path or an object-store URI."""
    return storage.join(storage.resolve(space.storage_path), space.name)


def start_ray(address: str | None, dashboard: bool = False) -> None:
    """Connects to `address`, or starts local Ray; a Ray already started here is reused.

    Local Ray starts without its dashboard unless `dashboard`: the search reports through the
    terminal and MLflow, and on a 2-core machine the dashboard's processes wake often enough to
    preempt a trial that uses every core (`benchmarks/trial_cpu_wait.py`: over 6 trials of
    6 s, the trial's threads waited 4.7 s for a CPU without them, 5.6 s with them). A cluster
    (`address`) keeps its own dashboard.
    """
    import ray

    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=True, configure_logging=False,
                 include_dashboard=dashboard)


class InBackground:
    """`fn()` in a background thread; `result` waits and returns its value or re-raises.

    The search sets up MLflow this way while the main thread starts Ray: local Ray takes 4-5 s,
    mostly its own processes starting, which leaves the driver's core free. (`ray.init` itself
    must run in the main thread: started from another one, its GCS client loses the connection.)
    """

    def __init__(self, fn):
        import threading

        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn) -> None:
        try:
            self._value = fn()
        except BaseException as error:  # handed to the main thread by result()
            self._error = error

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def run_search(space: Space, options: SearchOptions) -> dict[str, Any]:
    """Runs a whole search: checks, Tune, confirmation, results. Returns the summary."""
    from hk_tune.tracking import SearchTracker
    from hk_tune.train.run_config import RunConfig
    from hk_tune.train.trainer import check

    timer = Timer()
    check(RunConfig.from_dict(space.run_config({}), where=space.file))
    folder = search_folder(space)
    if storage.exists(storage.join(folder, SEARCH_STATE)):
        raise ConfigError(f"{space.file}: name: a search named {space.name!r} exists in "
                          f"{folder}; continue it with `hk-tune resume {folder}` or set name=...")
    timer.lap("model and data check")

    def set_up_tracking():
        tracker = SearchTracker(options.tracking_uri)
        tracker.check()
        storage.write_text(storage.join(folder, SPACE_COPY),
                           Path(options.space_file).read_text())
        parent = tracker.start_search(space.name, options.space_file, space.fixed, space.seed,
                                      tags={"hk_tune.space": Path(options.space_file).name})
        state = {"overrides": [*options.overrides, f"name={space.name}",
                               f"storage_path={storage.resolve(space.storage_path)}"],
                 "address": options.address, "tracking_uri": tracker.tracking_uri,
                 "parent_run_id": parent, "space_file": options.space_file}
        storage.write_text(storage.join(folder, SEARCH_STATE), json.dumps(state, indent=1))
        return tracker

    # Bad input has failed by now, before Ray starts. The tracking store is checked while Ray
    # starts: a store that does not answer stops Ray again before the error is reported.
    import ray

    ray_was_running = ray.is_initialized()
    tracking = InBackground(set_up_tracking)
    try:
        start_ray(options.address, options.ray_dashboard)
        timer.lap("ray start (MLflow set-up meanwhile)")
        tracker = tracking.result()
    except BaseException:
        with contextlib.suppress(BaseException):  # Ray failed: let the set-up finish first
            tracking.result()
        if not ray_was_running and ray.is_initialized():
            ray.shutdown()
        raise
    timer.lap("MLflow set-up (rest)")
    grid = fit(build_tuner(space, folder, tracker))
    timer.lap("trials")
    return finish(space, folder, grid, tracker, timer,
                  stop_ray=not ray_was_running and options.address is None)


def resume_search(folder: str | Path, address: str | None = None,
                  ray_dashboard: bool = False) -> dict[str, Any]:
    """Continues an interrupted search: finished trials are kept, the searcher keeps its
    history (Tuner.restore), then confirmation and results run as usual."""
    import ray.tune

    from hk_tune.tracking import SearchTracker

    folder = storage.resolve(folder)
    if not storage.exists(storage.join(folder, SEARCH_STATE)):
        raise ConfigError(f"{folder}: not a search folder (no {SEARCH_STATE}); give "
                          "storage_path/name of a search, e.g. hk_tune_runs/quickstart")
    from hk_tune.search.tune_state import check_tune_state, tune_filesystem

    check_tune_state(folder)
    state = json.loads(storage.read_text(storage.join(folder, SEARCH_STATE)))
    space = _load_space_copy(folder, state["overrides"])
    tracker = SearchTracker(state["tracking_uri"])
    tracker.check()
    tracker.attach_search(state["parent_run_id"])
    address = address or state.get("address")
    ray_was_running = ray.is_initialized()
    start_ray(address, ray_dashboard)
    if storage.exists(storage.join(folder, "tuner.pkl")):
        from hk_tune.search.searcher import build_search

        tuner = ray.tune.Tuner.restore(
            folder, trainable=build_trainable(space, storage.join(folder, "train")),
            resume_unfinished=True, resume_errored=True,
            storage_filesystem=tune_filesystem(folder))
        # Tuner.restore takes no RunConfig or TuneConfig. The pickled callbacks hold no tracker
        # (see TrackingCallback.__getstate__), so hand them this session's; the searcher is
        # rebuilt from the trials of the saved experiment (which Tuner.restore has read), since
        # its own saved state may not match them (see hk_tune.search.searcher).
        tuner._local_tuner._run_config.callbacks = _callbacks(space, tracker)
        saved = tuner._local_tuner._experiment_analysis  # None: no experiment state, Tune says
        trials = saved.trials if saved is not None else []
        tune_config = tuner._local_tuner._tune_config
        tune_config.search_alg = build_search(space, concurrency(space), trials)
        tune_config.max_concurrent_trials = None  # the search holds the limit
    else:  # interrupted before Tune wrote its state: nothing ran yet
        tuner = build_tuner(space, folder, tracker)
    return finish(space, folder, fit(tuner), tracker,
                  stop_ray=not ray_was_running and address is None)


def _load_space_copy(folder: str, overrides: list[str]) -> Space:
    """The space file copied into the search folder; fetched first when the folder is remote,
    since the space loader reads local files."""
    copy = storage.join(folder, SPACE_COPY)
    if not storage.is_uri(copy):
        return load_space(copy, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, SPACE_COPY)
        local.write_text(storage.read_text(copy))
        return load_space(local, overrides)


def build_tuner(space: Space, folder: str, tracker):
    """The Tuner: the search (seeded TPE, presets first, concurrency from the space and the
    cluster), ASHA if asked, resources from the space."""
    import ray.tune
    from ray.tune.schedulers import ASHAScheduler

    from hk_tune.search.searcher import build_search

    scheduler = None
    if space.scheduler == "asha":
        scheduler = ASHAScheduler(metric=space.score, mode=space.mode,
                                  grace_period=space.grace_period,
                                  reduction_factor=space.reduction_factor)
    return ray.tune.Tuner(
        build_trainable(space, storage.join(folder, "train")),
        tune_config=ray.tune.TuneConfig(
            search_alg=build_search(space, concurrency(space)), scheduler=scheduler,
            num_samples=space.num_samples,
            reuse_actors=choose_executor(space) == "inprocess",
            trial_dirname_creator=trial_folder),
        run_config=_tune_run_config(space, space.name, storage.resolve(space.storage_path),
                                    _callbacks(space, tracker)),
    )


def concurrency(space: Space) -> int:
    """Trials at a time: what the cluster's CPUs and GPUs hold, capped by max_concurrent."""
    import ray

    return trials_that_fit(space, ray.cluster_resources())


class Timer:
    """Wall time of a search's phases, printed to stderr at the end (where the time went)."""

    def __init__(self):
        import time

        self._clock = time.perf_counter
        self._last = self._clock()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = self._clock()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def finish(space: Space, folder: str, grid, tracker, timer: Timer | None = None,
           stop_ray: bool = False) -> dict[str, Any]:
    """Ranks the trials, confirms the top-k with more seeds, writes the best configuration and
    the summary, and closes the MLflow parent run. `stop_ray`: shut down the local Ray this
    search started, once the confirmation is done, while the results are written. (A cluster
    the search connected to is left at the interpreter's exit, as before: disconnecting is
    quick, and its workers' output reaches this process later than a local Ray's.)"""
    timer = timer or Timer()
    rows, histories = results.trial_rows(space, grid)
    if not rows or all(row["status"] == "errored" for row in rows):
        tracker.finish_search(_public(rows), {}, space.score, space.mode)
        errors = "; ".join(row["error"] or "" for row in rows)[-800:]
        raise RuntimeError(f"every trial failed: {errors}")
    baseline = next((row["trial_id"] for row in rows if row["name"] == "baseline"), None)
    summary_confirm = None
    best = rows[0]
    picked = confirmation.candidates(space, rows, baseline) if space.confirm_seeds > 1 else []
    if picked:
        print(f"confirming {len(picked)} configurations with {space.confirm_seeds} seeds",
              file=sys.stderr, flush=True)
        runs = confirmation.confirm(space, picked, folder)
        for run in runs:
            row = next(r for r in picked if r["trial_id"] == run["confirms"])
            tracker.confirmation_run(run["confirms"], run["seed"], _params(row), run["history"],
                                     run["final"])
        summary_confirm = confirmation.summarize(space, picked, runs, baseline)
        timer.lap("confirmation")
        best = next(r for r in rows if r["trial_id"] == summary_confirm["winner"]["trial_id"])
    # Nothing below needs Ray. Its shutdown takes 1-2 s (each Ray process gets up to 1 s to exit
    # after SIGTERM, and at interpreter exit Ray first sleeps 0.5 s), mostly waiting: it runs
    # beside the ranking, fANOVA, plots and MLflow artifacts instead of after them.
    stopping = InBackground(_stop_local_ray) if stop_ray else None
    try:
        summary = _write_results(space, folder, rows, histories, best, baseline,
                                 summary_confirm, tracker)
        timer.lap("results and MLflow")
    finally:
        if stopping is not None:
            stopping.result()
            timer.lap("Ray shutdown (rest)")
    report_gaps(summary["tracking_gaps"])
    summary["timings_s"] = timer.laps
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timer.laps.items()),
          file=sys.stderr, flush=True)
    results.write_summary(folder, summary)
    return summary


def _stop_local_ray() -> None:
    import time

    import ray

    # As Ray does at the interpreter's exit: its workers' last output lines reach this process
    # through Ray's log monitor; give them time to arrive before disconnecting.
    time.sleep(0.5)
    ray.shutdown()


def _write_results(space: Space, folder: str, rows: list[dict], histories: dict, best: dict,
                   baseline: str | None, summary_confirm: dict | None, tracker
                   ) -> dict[str, Any]:
    """Writes the best configuration and closes the MLflow parent run (ranked trials, fANOVA,
    plots); returns the summary."""
    best_config = results.best_run_config(space, best["sampled"], f"{space.name}_best")
    best_path = storage.join(folder, results.BEST_CONFIG)
    about = (f"The best configuration of search {space.name!r} ({best['name']}: "
             f"{results.describe_score(space, best)}).")
    best_uri = None
    if storage.is_uri(folder):
        # `hk-tune train` reads a local file; the bucket keeps the search's own copy.
        results.write_best_config(best_path, best_config, about)
        best_uri, best_path = best_path, str(results.local_best_config_path(space.name))
    results.write_best_config(best_path, best_config,
                              f"{about} Train it with:\n\n  hk-tune train {best_path}")
    importances = results.importances(space, rows)
    overfitting = overfit.overfitting(rows, histories, baseline)
    for line in overfit.describe(overfitting, space.metric):
        print(line, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="hk_tune_adapter_") as tmp:
        adapter = export.copy_adapter(best, Path(tmp, "best_adapter"), space, best_config,
                                      folder)
        tracker.finish_search(_public(rows), best_config, space.score, space.mode,
                              importances=importances, histories=histories,
                              baseline_trial_id=baseline, best_trial_id=best["trial_id"],
                              confirmation=summary_confirm, folders=[adapter] if adapter else [])
    summary = {
        "name": space.name, "path": str(folder), "space_file": space.file,
        "metric": space.metric, "metric_scope": space.metric_scope, "score": space.score,
        "mode": space.mode, "results": _with_errors(rows),
        "best": {"trial_id": best["trial_id"], "name": best["name"], "metric": best["metric"],
                 "last": best["last"], "best_step": best["best_step"],
                 "checkpoint": best["best_checkpoint"], "params": _params(best)},
        "best_config": best_config, "best_config_path": best_path,
        "best_config_uri": best_uri, "overfitting": overfitting,
        "confirmation": summary_confirm, "importances": importances,
        "parent_run_id": tracker.parent_run_id, "experiment_id": tracker.experiment_id,
        "tracking_uri": tracker.tracking_uri, "tracking_gaps": tracker.gaps(),
    }
    return summary


def report_gaps(gaps: list[str]) -> None:
    """Says on stderr that MLflow missed calls while it was away (or refused them): how many
    a retry delivered, and each one still missing. summary.json's tracking_gaps and the parent
    run's tracking_gaps.txt list them all."""
    if not gaps:
        return
    missing = [gap for gap in gaps if not gap.endswith("logged on retry")]
    print(f"MLflow: {len(gaps)} calls did not land when made; {len(gaps) - len(missing)} were "
          f"logged on retry, {len(missing)} are missing{':' if missing else ''} (see "
          "tracking_gaps in summary.json)", file=sys.stderr, flush=True)
    for gap in missing:
        print(f"  {gap}", file=sys.stderr, flush=True)


def run_plain(space: Space, folder: str, param_space: dict, name: str):
    """A plain Tune experiment (no searcher) in the search folder, resumed if it exists."""
    import ray.tune

    from hk_tune.search.tune_state import tune_filesystem

    trainable = build_trainable(space, storage.join(folder, "train"))
    path = storage.join(folder, name)
    if storage.exists(storage.join(path, "tuner.pkl")):
        tuner = ray.tune.Tuner.restore(path, trainable=trainable, resume_errored=True,
                                       storage_filesystem=tune_filesystem(path))
    else:
        tuner = ray.tune.Tuner(
            trainable, param_space=param_space,
            tune_config=ray.tune.TuneConfig(max_concurrent_trials=concurrency(space),
                                            reuse_actors=choose_executor(space) == "inprocess",
                                            trial_dirname_creator=trial_folder),
            run_config=_tune_run_config(space, name, folder, []))
    return fit(tuner)


def fit(tuner):
    """`tuner.fit()`, with Tune's state saved in the search folder whenever a trial changed."""
    from hk_tune.search.tune_state import snapshot_on_change

    with snapshot_on_change():
        return tuner.fit()


def trial_folder(trial) -> str:
    """A trial's folder is named by its id (Tune's default name carries a timestamp)."""
    return f"trial_{trial.trial_id}"


def _tune_run_config(space: Space, name: str, storage_path: str, callbacks: list):
    import ray.tune

    from hk_tune.search.tune_state import tune_filesystem

    return ray.tune.RunConfig(
        name=name, storage_path=storage_path, callbacks=callbacks, verbose=1,
        storage_filesystem=tune_filesystem(storage_path),
        # Restarts the executor's run cannot do itself: see `tune_max_failures`.
        failure_config=ray.tune.FailureConfig(max_failures=tune_max_failures(space)),
        # Two: a resumed trial repeats at most one evaluation (see `tune_state`). Scored by the
        # metric, so the best evaluation's checkpoint stays beside the latest (`hk-tune export`).
        checkpoint_config=ray.tune.CheckpointConfig(
            num_to_keep=2, checkpoint_score_order=space.mode,
            checkpoint_score_attribute=space.metric if space.metric_scope == "best" else None))


def _callbacks(space: Space, tracker) -> list:
    from hk_tune.search.callback import TrackingCallback

    return [TrackingCallback(tracker, space)]


def _params(row: dict) -> dict:
    skip = {"sampled", "metric", "last", "best_step", "best_checkpoint", "trial_id", "name",
            "status", "steps", "time_s", "error"}
    return {k: v for k, v in row.items() if k not in skip}


def _public(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("sampled", "error", "best_checkpoint")}
            for row in rows]


def _with_errors(rows: list[dict]) -> list[dict]:
    """The summary's rows: an errored trial's row says why, in the error's last line (the
    exception the trial raised, e.g. `hk_tune.errors.DivergedError: step 3: loss is nan; ...`;
    the traceback above it is in the trial's error.txt)."""
    return [{**public, "error": _last_line(row.get("error"))}
            for public, row in zip(_public(rows), rows, strict=True)]


def _last_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else None
