"""The end of a search in MLflow: the trials' runs settled, the report logged to the parent run
(results.csv, best_config.yaml, confirmation.yaml, the plots, the winner's adapter), the parent's
closing tags and metrics, and what an outage kept out.

Called through `SearchTracker.finish_search`; every MLflow call goes through the tracker's
`OutageGuard`, so nothing here raises into the search.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from hk_tune.config.files import write_yaml
from hk_tune.tracking import entities, reports
from hk_tune.tracking.entities import now_ms
from hk_tune.tracking.outage import OutageGuard, one_line
from hk_tune.tracking.plots import draw_search_plots

log = logging.getLogger(__name__)


class SearchTracker(Protocol):
    """What the report uses of `hk_tune.tracking.search_run.SearchTracker`."""

    parent_run_id: str | None
    guard: OutageGuard  # every MLflow call goes through it
    runs: dict[str, str]  # trial id -> child run id
    names: dict[str, str]  # trial id -> run name

    def client(self) -> Any: ...

    def parent(self) -> str: ...

    def children(self, tags: dict[str, str] | None = None, trials_only: bool = False) -> list: ...


def finish_search(
    tracker: SearchTracker,
    results: list[dict[str, Any]],
    best_config: dict[str, Any],
    metric: str,
    mode: str,
    importances: dict[str, float] | None = None,
    histories: dict[str, list[dict[str, Any]]] | None = None,
    baseline_trial_id: str | None = None,
    best_trial_id: str | None = None,
    confirmation: dict[str, Any] | None = None,
    folders: list[Path] = (),
) -> list[str]:
    """Logs the search's artifacts and summary to the parent run and ends it.

    Calls that failed during the search are retried once here, first.

    Args:
        results: one dict per trial, best first (trial_id, name, status, params..., metric,
            steps, time_s).
        best_config: the winning configuration, written as best_config.yaml.
        metric: the metric's name; mode: "max" or "min".
        importances: parameter -> importance (PED-ANOVA), plotted as importances.png/.html.
        histories: trial id -> per-step metric dicts, for curves.png/.html.
        baseline_trial_id: the trial with every dropout off, drawn in the plots.
        best_trial_id: the winner; default the first of `results`.
        confirmation: the seed-confirmation summary, written as confirmation.yaml.
        folders: folders logged whole under their own names (the best trial's adapter).

    Returns:
        The artifact paths that reached the parent run.
    """
    parent = tracker.parent()
    tracker.guard.retry()
    tracker.guard.call("settling the trials' runs", lambda: _settle_trials(tracker, results))
    names = {**tracker.names, **{r["trial_id"]: r["name"] for r in results if r.get("name")}}
    # Rows without a name get the run's, so the table reads like the UI.
    results = [{**r, "name": r.get("name") or names.get(r.get("trial_id"), "")}
               for r in results]
    best_trial_id = best_trial_id or (results[0].get("trial_id") if results else None)
    best = next((r for r in results if r.get("trial_id") == best_trial_id), None)
    logged: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hk_tune_artifacts_") as tmp:
        folder = Path(tmp)
        files = [reports.write_results(folder / "results.csv", results, metric, tracker.runs),
                 reports.write_best_config(folder / "best_config.yaml", best_config, best,
                                           metric, mode, tracker.runs)]
        if confirmation:
            write_yaml(folder / "confirmation.yaml", confirmation)
            files.append(folder / "confirmation.yaml")
        drawn, failed = draw_search_plots(
            folder, results, metric, mode, importances or {}, histories or {},
            best_trial_id, baseline_trial_id, names,
        )
        files += drawn
        for plot, error in failed.items():  # a plot never costs the search its results
            tracker.guard.lost(f"plot {plot}", one_line(error))
        for path in files:
            tracker.guard.call(f"artifact {path.name}", _artifact(tracker, parent, path, logged))
        for path in folders:
            tracker.guard.call(f"artifact folder {path.name}",
                             _artifact(tracker, parent, path, logged, folder=True))
        summary = reports.summary(results, best, metric, mode, tracker.runs, confirmation,
                                  [path.name for path in files])
        tracker.guard.call("summary of the search", lambda: _summarize(tracker, parent, *summary))
        for row in (confirmation or {}).get("configurations", []):
            run_id = tracker.runs.get(row["trial_id"])
            if run_id is not None:  # each confirmed trial's run carries its own median
                tracker.guard.call(f"confirmation of {row['trial_id']}",
                                   _confirmation_metrics(tracker, run_id, row))
        tracker.guard.retry()  # the end's own failures get their one retry too
        lines = tracker.guard.lines()
        if lines:
            _report_gaps(tracker, parent, folder, lines, logged)
    return logged


def log_files(tracker: SearchTracker, paths: list[Path]) -> list[str]:
    """Logs extra files (a report, a figure) to the search's parent run, finished or not.

    Returns:
        The names of the files that reached it; the others are in `gaps()`.
    """
    parent = tracker.parent()
    logged: list[str] = []
    for path in paths:
        tracker.guard.call(f"artifact {Path(path).name}",
                         _artifact(tracker, parent, Path(path), logged))
    return logged


def _settle_trials(tracker: SearchTracker, results: list[dict[str, Any]]) -> None:
    """Makes the child runs agree with the search's trials, which matters after a resume.

    A search killed after a trial's run was created and before Tune saved that trial (or its
    end) in its state resumes without it: the searcher suggests another point, so that run is
    an orphan, deleted (MLflow keeps deleted runs restorable) and, if it never ended, ended as
    KILLED; a run that did finish keeps FINISHED. A trial whose end never reached MLflow
    before the kill (or was recorded as an interruption) is ended with its final status.
    """
    statuses = {row["trial_id"]: row["status"] for row in results if row.get("trial_id")}
    client = tracker.client()
    for run in tracker.children(trials_only=True):
        trial_id, run_id = run.data.tags["hk_tune.trial_id"], run.info.run_id
        if trial_id not in statuses:
            client.set_tag(run_id, "hk_tune.status", "orphaned")
            if run.info.status == "RUNNING":
                client.set_terminated(run_id, status="KILLED")
            client.delete_run(run_id)
            tracker.runs.pop(trial_id, None)
        elif (run.info.status == "RUNNING" or run.data.tags.get("hk_tune.status") ==
              "interrupted") and statuses[trial_id] in entities.STATUSES:
            # Never ended, or ended by an interruption (`end_search`) that Tune's state outlived.
            client.set_tag(run_id, "hk_tune.status", statuses[trial_id])
            if statuses[trial_id] != "errored" and "hk_tune.error" in run.data.tags:
                client.delete_tag(run_id, "hk_tune.error")
            client.set_terminated(run_id, status=entities.STATUSES[statuses[trial_id]])


def _artifact(tracker: SearchTracker, run_id: str, path: Path, logged: list[str],
              folder: bool = False) -> Callable[[], None]:
    def log_one() -> None:
        if folder:
            tracker.client().log_artifacts(run_id, str(path), artifact_path=path.name)
        else:
            tracker.client().log_artifact(run_id, str(path))
        logged.append(path.name)

    return log_one


def _summarize(tracker: SearchTracker, parent: str, tags: dict[str, str],
               metrics: dict[str, Any]) -> None:
    client = tracker.client()
    for chunk in entities.chunks(entities.tags(tags), entities.BATCH):
        client.log_batch(parent, tags=chunk)
    client.log_batch(parent, metrics=entities.metrics(metrics, 0, now_ms()))
    if "hk_tune.status" in client.get_run(parent).data.tags:  # a resumed search's, "running"
        client.set_tag(parent, "hk_tune.status", "completed")
    client.set_terminated(parent, status="FINISHED")


def _confirmation_metrics(tracker: SearchTracker, run_id: str,
                          row: dict[str, Any]) -> Callable[[], None]:
    def log() -> None:
        metrics = reports.confirmation_metrics(row)
        tracker.client().log_batch(run_id, metrics=entities.metrics(metrics, 0, now_ms()))

    return log


def _report_gaps(tracker: SearchTracker, parent: str, folder: Path, lines: list[str],
                 logged: list[str]) -> None:
    # Best effort and not queued: this is the report of what the queue could not do.
    path = folder / "tracking_gaps.txt"
    path.write_text("\n".join(lines) + "\n")
    try:
        tracker.client().set_tag(parent, "hk_tune.tracking_gaps", str(len(lines)))
        tracker.client().log_artifact(parent, str(path))
        logged.append(path.name)
    except Exception as error:
        log.warning("could not log the tracking gaps: %s", one_line(error))

