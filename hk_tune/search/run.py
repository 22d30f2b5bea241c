"""A search from start to finish: the checks before Ray, Ray and the tracker, the trials, resume,
seed confirmation, and the results.

    summary = search(load_space("search_spaces/quickstart.yaml"),
                     SearchOptions(space_file="search_spaces/quickstart.yaml"))
    summary = resume_search("hk_tune_runs/quickstart")
    summary.best["name"], summary.best_config_path

The search folder is `storage_path/name` (never a timestamp): Tune's experiment, `search.json`
(what resume needs), a copy of the space file, `confirm/`, `best_config.yaml`, `summary.json`.
storage_path may be an object-store URI (`hk_tune.storage`); then the best configuration
is also written to `./<name>_best_config.yaml`, so `hk-tune train` can take it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hk_tune import storage
from hk_tune.config.space import SearchConfig
from hk_tune.config.space_file import load_space
from hk_tune.errors import ConfigError
from hk_tune.search import confirm as confirmation
from hk_tune.search import export, overfit, results
from hk_tune.search.executor import choose_executor
from hk_tune.search.experiment import TUNER_FILE, build_tuner, fit, restore_tuner
from hk_tune.search.extend import extend, extension
from hk_tune.search.ray_runtime import InBackground, start_ray, stop_local_ray
from hk_tune.search.resources import check_answers, check_fits, this_machine
from hk_tune.search.results import SearchSummary
from hk_tune.search.rows import TrialRow, trial_rows
from hk_tune.search.study import storage_address
from hk_tune.search.tracker import Tracker
from hk_tune.search.trust import adopt_folder, verify_folder
from hk_tune.search.unfinished import SEARCH_STATE, SPACE_COPY, abandon, ended_if_unfinished
from hk_tune.tracking import SearchTracker, check_tracking_uri, resolve_tracking_uri
from hk_tune.tracking.figures import seed_history_key
from hk_tune.train.trainer import check


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


def describe_search(space: SearchConfig) -> str:
    """One line saying what the search will do."""
    asha = f", ASHA (grace {space.grace_period})" if space.scheduler == "asha" else ""
    confirm = (f", top {space.confirm_top_k} confirmed with {space.confirm_seeds} seeds"
               if space.confirm_seeds > 1 else "")
    warm = f", {'+'.join(space.warm_start)} first" if space.warm_start else ""
    ends = "".join([f", at most {space.time_budget_s:g} s" if space.time_budget_s else "",
                    f", until {space.score} reaches {space.stop:g}" if space.stop is not None
                    else ""])
    return (f"search {space.name!r}: {space.num_samples} trials of TPE (seed {space.seed}){warm}"
            f"{asha}{ends}{confirm}; {space.metric} ({space.mode}); executor "
            f"{choose_executor(space)}")


def search_folder(space: SearchConfig) -> str:
    """`storage_path/name`: an absolute local path or an object-store URI."""
    return storage.join(storage.resolve(space.storage_path), space.name)


def search(space: SearchConfig, options: SearchOptions,
               tracker: Tracker | None = None) -> SearchSummary:
    """Runs a whole search: checks, Tune, confirmation, results.

    Args:
        tracker: where the search is recorded; default MLflow at `options.tracking_uri`.
    """

    timer = Timer()
    check(space.base)
    folder = search_folder(space)
    storage.check_creatable(folder, f"{space.file}: storage_path")
    check_tracking_uri(resolve_tracking_uri(options.tracking_uri))
    if options.address is None:  # local Ray: its CPUs and GPUs are known before it starts
        import ray

        check_fits(space, ray.cluster_resources() if ray.is_initialized() else this_machine(),
                   space.file)
    else:  # Ray retries a head that does not answer for a minute or more
        check_answers(options.address, "--address")
    print(describe_search(space), file=sys.stderr, flush=True)  # once the input is known good
    if storage.exists(storage.join(folder, SEARCH_STATE)):
        raise ConfigError(f"{space.file}: name: a search named {space.name!r} exists in "
                          f"{folder}; continue it with `hk-tune resume {folder}` or set name=...")
    timer.lap("model and data check")

    def set_up_tracking() -> Tracker:
        chosen = tracker or mlflow_tracker(options.tracking_uri, space.experiment)
        chosen.check()
        storage.write_text(storage.join(folder, SPACE_COPY),
                           Path(options.space_file).read_text())
        parent = chosen.start_search(space.name, options.space_file, space.fixed, space.seed,
                                     tags={"hk_tune.space": Path(options.space_file).name})
        state = {"overrides": [*options.overrides, f"name={space.name}",
                               f"storage_path={storage.resolve(space.storage_path)}"],
                 "address": options.address, "tracking_uri": chosen.tracking_uri,
                 "experiment": space.experiment,
                 "parent_run_id": parent, "space_file": options.space_file,
                 "study": storage_address(space, folder)}  # for `hk-tune dashboard`
        storage.write_text(storage.join(folder, SEARCH_STATE), json.dumps(state, indent=1))
        return chosen

    # Bad input has failed by now, before Ray starts. The tracking store is checked while Ray
    # starts: a store that does not answer stops Ray again before the error is reported.
    import ray

    ray_was_running = ray.is_initialized()
    tracking = InBackground(set_up_tracking)
    try:
        start_ray(options.address, options.ray_dashboard)
        timer.lap("ray start (MLflow set-up meanwhile)")
        tracker = tracking.result()
    except BaseException as error:
        with contextlib.suppress(BaseException):  # Ray failed: let the set-up finish first
            abandon(tracking.result(), folder, error)
        if not ray_was_running and ray.is_initialized():
            ray.shutdown()
        raise
    timer.lap("MLflow set-up (rest)")
    with ended_if_unfinished(tracker, folder):
        grid = fit(build_tuner(space, folder, callbacks(space, tracker)))
        timer.lap("trials")
        return finish(space, folder, grid, tracker, timer,
                      stop_ray=not ray_was_running and options.address is None)


def resume_search(folder: str | Path, address: str | None = None,
                  ray_dashboard: bool = False, trust: bool = False,
                  overrides: Sequence[str] = ()) -> SearchSummary:
    """Continues an interrupted search: finished trials are kept, the searcher keeps its
    history (rebuilt from the saved trials), then confirmation and results run as usual.

    The folder's pickles must carry this user's signature (`hk_tune.search.trust`) unless
    `trust`, which signs them as they are. `overrides`: `num_samples=N` extends the search to N
    trials in all (`hk_tune.search.extend`).

    Raises:
        UntrustedFolder: an unsigned or altered pickle, before anything is unpickled.
    """
    import ray

    from hk_tune.search.tune_state import check_tune_state

    folder = storage.resolve(folder)
    state = read_search_state(folder)
    check_tune_state(folder)
    if trust:
        adopt_folder(folder)
    else:
        verify_folder(folder)
    extra = extension(overrides, folder)
    space = _load_space_copy(folder, [*state["overrides"], *extra])
    extend(folder, state, extra, space.num_samples)
    # The experiment the search began in, whatever MLFLOW_EXPERIMENT_NAME says now.
    tracker = mlflow_tracker(state["tracking_uri"], state.get("experiment", space.experiment))
    tracker.check()
    tracker.attach_search(state["parent_run_id"])
    address = address or state.get("address")
    if address is not None:
        check_answers(address, "--address")
    ray_was_running = ray.is_initialized()
    with ended_if_unfinished(tracker, folder):
        start_ray(address, ray_dashboard)
        if storage.exists(storage.join(folder, TUNER_FILE)):
            tuner = restore_tuner(space, folder, callbacks(space, tracker))
        else:  # interrupted before Tune wrote its state: nothing ran yet
            tuner = build_tuner(space, folder, callbacks(space, tracker))
        return finish(space, folder, fit(tuner), tracker,
                      stop_ray=not ray_was_running and address is None)


def read_search_state(folder: str) -> dict:
    """The search's `search.json`: what resume needs to continue it (and the dashboard, to
    find the study).

    Raises:
        ConfigError: `folder` has none (not a search folder), or it is empty, cut short, or not
            one hk_tune wrote.
    """
    path = storage.join(folder, SEARCH_STATE)
    if not storage.exists(path):
        raise ConfigError(f"{folder}: not a search folder (no {SEARCH_STATE}); give "
                          "storage_path/name of a search, e.g. hk_tune_runs/quickstart")
    try:
        state = json.loads(storage.read_text(path))
        if not isinstance(state, dict) or not isinstance(state.get("overrides"), list):
            raise ValueError("no overrides list")
        for key in ("tracking_uri", "parent_run_id"):
            if not isinstance(state.get(key), str):
                raise ValueError(f"no {key}")
    except ValueError as error:
        raise ConfigError(f"{path}: not a search state hk_tune wrote ({str(error)[:120]}), so "
                          "the search cannot be resumed; start it again under another name "
                          "(name=...)") from None
    return state


def mlflow_tracker(tracking_uri: str | None, experiment: str) -> Tracker:
    return SearchTracker(tracking_uri, experiment)


def callbacks(space: SearchConfig, tracker: Tracker) -> list:
    """Tune's callbacks of a search: its trials mirrored to the tracker."""
    from hk_tune.search.callback import TrackingCallback

    return [TrackingCallback(tracker, space)]


def _load_space_copy(folder: str, overrides: list[str]) -> SearchConfig:
    """The space file copied into the search folder; fetched first when the folder is remote,
    since the space loader reads local files."""
    copy = storage.join(folder, SPACE_COPY)
    if not storage.is_uri(copy):
        return load_space(copy, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp, SPACE_COPY)
        local.write_text(storage.read_text(copy))
        return load_space(local, overrides)


class Timer:
    """Wall time of a search's phases, printed to stderr at the end (where the time went)."""

    def __init__(self):
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 2)
        self._last = now


def finish(space: SearchConfig, folder: str, grid, tracker: Tracker, timer: Timer | None = None,
           stop_ray: bool = False) -> SearchSummary:
    """Ranks the trials, confirms the top-k with more seeds, writes the best configuration and
    the summary, and ends the tracker's search. `stop_ray`: shut down the local Ray this search
    started, once the confirmation is done, while the results are written. (A cluster the
    search connected to is left at the interpreter's exit: disconnecting is quick, and its
    workers' output reaches this process later than a local Ray's.)"""
    timer = timer or Timer()
    rows, histories = trial_rows(space, grid)
    if not rows or all(row.status == "errored" for row in rows):
        tracker.finish_search(results.public_rows(rows), {}, space.score, space.mode)
        errors = "; ".join(row.error or "" for row in rows)[-800:]
        raise RuntimeError(f"every trial failed: {errors}")
    baseline = next((row.trial_id for row in rows if row.name == "baseline"), None)
    summary_confirm = None
    best = rows[0]
    picked = confirmation.candidates(space, rows, baseline) if space.confirm_seeds > 1 else []
    if picked:
        print(f"confirming {len(picked)} configurations with {space.confirm_seeds} seeds",
              file=sys.stderr, flush=True)
        runs = confirmation.confirm(space, picked, folder)
        # Beside each confirmed trial's own history, for the curves' seed bands.
        histories.update({seed_history_key(run.confirms, run.seed): run.history for run in runs})
        for run in runs:
            row = next(r for r in picked if r.trial_id == run.confirms)
            tracker.confirmation_run(run.confirms, run.seed, row.params, run.history, run.final)
        summary_confirm = confirmation.summarize(space, picked, runs, baseline)
        timer.lap("confirmation")
        best = next(r for r in rows if r.trial_id == summary_confirm["winner"]["trial_id"])
    # Nothing below needs Ray. Its shutdown is mostly waiting (for its processes to exit), so it
    # runs beside the ranking, importances, plots and tracking instead of after them.
    stopping = InBackground(stop_local_ray) if stop_ray else None
    try:
        summary = _write_results(space, folder, rows, histories, best, baseline,
                                 summary_confirm, tracker)
        timer.lap("results and MLflow")
    finally:
        if stopping is not None:
            stopping.result()
            timer.lap("Ray shutdown (rest)")
    report_gaps(summary.tracking_gaps)
    summary.timings_s = timer.laps
    print("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timer.laps.items()),
          file=sys.stderr, flush=True)
    results.write_summary(folder, summary)
    return summary


def _write_results(space: SearchConfig, folder: str, rows: list[TrialRow], histories: dict,
                   best: TrialRow, baseline: str | None, summary_confirm: dict | None,
                   tracker: Tracker) -> SearchSummary:
    """Writes the best configuration and ends the tracker's search (ranked trials, importances,
    plots, the winner's adapter); returns the summary."""
    best_config = results.best_run_config(space, best.sampled, f"{space.name}_best")
    best_path = storage.join(folder, results.BEST_CONFIG)
    about = (f"The best configuration of search {space.name!r} ({best.name}: "
             f"{results.describe_score(space, best)}).")
    best_uri = None
    if storage.is_uri(folder):
        # `hk-tune train` reads a local file; the bucket keeps the search's own copy.
        results.write_best_config(best_path, best_config, about)
        best_uri, best_path = best_path, str(results.local_best_config_path(space.name))
    results.write_best_config(best_path, best_config,
                              f"{about} Train it with:\n\n  hk-tune train {best_path}")
    importances = results.importances(space, rows)
    completed = [row.trial_id for row in rows if row.status == "completed"]
    overfitting = overfit.overfitting(completed, histories, baseline)
    for line in overfit.describe(overfitting, space.metric):
        print(line, file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="hk_tune_adapter_") as tmp:
        adapter = export.copy_adapter(best, Path(tmp, "best_adapter"), space, best_config,
                                      folder)
        tracker.finish_search([row.public() for row in rows], best_config, space.score,
                              space.mode, importances=importances, histories=histories,
                              baseline_trial_id=baseline, best_trial_id=best.trial_id,
                              confirmation=summary_confirm, folders=[adapter] if adapter else [])
    return SearchSummary(
        name=space.name, path=str(folder), space_file=space.file, metric=space.metric,
        metric_scope=space.metric_scope, score=space.score, mode=space.mode,
        results=results.public_rows(rows), best=results.best_of(best), best_config=best_config,
        best_config_path=best_path, best_config_uri=best_uri, overfitting=overfitting,
        confirmation=summary_confirm, importances=importances,
        parent_run_id=tracker.parent_run_id, experiment_id=tracker.experiment_id,
        tracking_uri=tracker.tracking_uri, tracking_gaps=tracker.gaps())


def report_gaps(gaps: list[str]) -> None:
    """Says on stderr that the tracker missed calls while its store was away (or refused
    them): how many a retry delivered, and each one still missing. summary.json's
    tracking_gaps and the parent run's tracking_gaps.txt list them all."""
    if not gaps:
        return
    missing = [gap for gap in gaps if not gap.endswith("logged on retry")]
    print(f"MLflow: {len(gaps)} calls did not land when made; {len(gaps) - len(missing)} were "
          f"logged on retry, {len(missing)} are missing{':' if missing else ''} (see "
          "tracking_gaps in summary.json)", file=sys.stderr, flush=True)
    for gap in missing:
        print(f"  {gap}", file=sys.stderr, flush=True)
