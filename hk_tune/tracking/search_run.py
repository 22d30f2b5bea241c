"""One search as MLflow runs: a parent run per search, a child run per trial (docs/design.md 3).

The search calls `SearchTracker` from its Ray Tune callback:

    tracker = SearchTracker(tracking_uri)         # default: ./mlflow.db + ./mlartifacts
    tracker.check()                               # TrackingError before any training
    tracker.start_search(name, space_file, fixed, seed)
    tracker.trial_started(trial_id, params)       # child run, named `hiddenkey r=0.1/0.05 λ=1`
    tracker.trial_metrics(trial_id, metrics, step)
    tracker.trial_finished(trial_id, "completed" | "stopped" | "errored", reason)
    tracker.confirmation_run(trial_id, seed, params, history, final)
    tracker.finish_search(results, best_config, metric, mode, importances, histories, ...)
    tracker.gaps()                                # what an outage kept out, one line each

After `check`, no method raises into the search: each MLflow call goes through an
`OutageGuard`, which records what failed and retries it once in `finish_search`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from hk_tune.tracking import entities, search_report
from hk_tune.tracking.entities import flat, now_ms
from hk_tune.tracking.names import run_name
from hk_tune.tracking.outage import OutageGuard, one_line
from hk_tune.tracking.provenance import provenance_tags
from hk_tune.tracking.store import (
    TrackingError,
    check_reachable,
    experiment_for,
    is_remote,
    resolve_tracking_uri,
    use_short_http_timeouts,
)

log = logging.getLogger(__name__)

PARENT = "mlflow.parentRunId"


class SearchTracker:
    """Logs one search to MLflow; see the module docstring for the call order.

    Args:
        tracking_uri: where to log; None picks `MLFLOW_TRACKING_URI` or the local sqlite store.
        experiment: the MLflow experiment holding the search's runs (created when missing).
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str = "hk_tune"):
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        if is_remote(self.tracking_uri):
            use_short_http_timeouts()
        self.parent_run_id: str | None = None
        self.guard = OutageGuard(self.tracking_uri)
        self._client_: Any = None
        self._experiment_id: str | None = None
        self._fixed: dict[str, str] = {}
        self.runs: dict[str, str] = {}  # trial id -> child run id
        self.names: dict[str, str] = {}  # trial id -> run name
        self._waiting: set[str] = set()  # trials whose child run is queued, not yet created
        self._logged: dict[str, dict[str, float]] = {}  # trial id -> latest metrics, on attach

    # -- start -------------------------------------------------------------------------------

    def check(self) -> None:
        """Raises `TrackingError` naming the URI, within seconds, if the store does not answer."""
        check_reachable(self.tracking_uri)

    def start_search(
        self,
        name: str,
        space_file: str | None,
        fixed: dict[str, Any],
        seed: int,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Creates the parent run of a search; raises `TrackingError` if that fails.

        Args:
            name: the run name of the search.
            space_file: the search-space YAML, logged as an artifact.
            fixed: settings every trial shares, logged as params (nested keys dotted) and
                added to every child's params.
            seed: the search seed, tag `hk_tune.seed`.
            tags: extra tags for the parent run.

        Returns:
            The parent run id.
        """
        run_tags = {"hk_tune.kind": "search", **provenance_tags(seed), **(tags or {})}
        self._fixed = dict(flat(fixed))
        client = self.client()
        try:
            run = client.create_run(self._experiment(), tags=run_tags, run_name=name)
            self.parent_run_id = run.info.run_id
            self._log_params(self.parent_run_id, self._fixed)
            if space_file:
                client.log_artifact(self.parent_run_id, space_file)
        except TrackingError:
            raise
        except Exception as error:
            if self.parent_run_id is not None:  # no half-made search left RUNNING in the UI
                with contextlib.suppress(Exception):
                    client.set_terminated(self.parent_run_id, status="FAILED")
            raise TrackingError(f"could not start the search's MLflow run in "
                                f"{self.tracking_uri}: {one_line(error)}") from None
        return self.parent_run_id

    def attach_search(self, parent_run_id: str) -> None:
        """Continues an existing parent run (for `hk-tune resume`): its children are reused."""
        try:
            client = self.client()
            parent = client.get_run(parent_run_id)
            self._experiment_id = parent.info.experiment_id
            self.parent_run_id = parent_run_id
            self._fixed = dict(parent.data.params)
            for child in self.children(trials_only=True):
                trial_id = child.data.tags["hk_tune.trial_id"]
                self.runs[trial_id] = child.info.run_id
                self.names[trial_id] = child.info.run_name
                self._logged[trial_id] = dict(child.data.metrics)
            client.update_run(parent_run_id, status="RUNNING")
            if "hk_tune.status" in parent.data.tags:  # ended by an interruption or an error
                client.set_tag(parent_run_id, "hk_tune.status", "running")
            if "hk_tune.error" in parent.data.tags:
                client.delete_tag(parent_run_id, "hk_tune.error")
        except Exception as error:
            raise TrackingError(f"could not resume MLflow run {parent_run_id} in "
                                f"{self.tracking_uri}: {one_line(error)}") from None

    def end_search(self, status: str, reason: str) -> None:
        """Ends a search that did not finish, and its trials' runs still running: `status`
        "interrupted" (runs KILLED) or "errored" (FAILED), `reason` in tag `hk_tune.error`.
        `hk-tune resume` reopens them (`attach_search`, `trial_started`)."""
        mlflow_status = {"interrupted": "KILLED", "errored": "FAILED"}[status]
        tags = entities.tags({"hk_tune.status": status,
                              "hk_tune.error": reason[-entities.MAX_VALUE:]})

        def end() -> None:
            client = self.client()
            for child in self.children(trials_only=True):
                if child.info.status == "RUNNING":
                    client.log_batch(child.info.run_id, tags=tags)
                    client.set_terminated(child.info.run_id, status=mlflow_status)
            client.log_batch(self.parent(), tags=tags)
            client.set_terminated(self.parent(), status=mlflow_status)

        self.guard.call(f"end of the search ({status})", end)

    # -- trials ------------------------------------------------------------------------------

    def trial_started(self, trial_id: str, params: dict[str, Any], name: str | None = None) -> str:
        """Creates the trial's child run, or reuses the one a resumed or retried trial made.

        Args:
            trial_id: Tune's trial id, tag `hk_tune.trial_id`.
            params: the trial's flat dropout keys and training settings, logged as params on
                top of the search's fixed settings.
            name: the run name; default `run_name(params)`.

        Returns:
            The child run id, or "" when the store is unreachable (the run is created on retry).
        """
        self.parent()
        self.names[trial_id] = name or run_name(params)
        values = {**self._fixed, **dict(flat(params))}
        run_id = self.guard.call(f"start of trial {trial_id}",
                                  lambda: self._open_trial(trial_id, values))
        if run_id is None:
            self._waiting.add(trial_id)
        return run_id or ""

    def logged_before(self, trial_id: str, key: str) -> float | None:
        """The latest value of metric `key` that the trial's run held when this tracker attached
        to the search (`attach_search`), or None: what a resumed trial has logged already."""
        return self._logged.get(trial_id, {}).get(key)

    def trial_metrics(self, trial_id: str, metrics: dict[str, Any], step: int) -> None:
        """Logs a trial's metrics at `step`; values that are not numbers are ignored."""
        batch = entities.metrics(metrics, step, now_ms())
        if batch:
            self._on_trial(trial_id, f"metrics of trial {trial_id} at step {step}",
                           lambda run_id: self.client().log_batch(run_id, metrics=batch))

    def trial_finished(self, trial_id: str, status: str, reason: str | None = None) -> None:
        """Ends a trial's run.

        Args:
            trial_id: Tune's trial id.
            status: "completed" (run FINISHED), "stopped" (early-stopped by the scheduler, run
                KILLED) or "errored" (run FAILED, `reason` in tag `hk_tune.error`).
            reason: why it errored.
        """
        if status not in entities.STATUSES:
            raise ValueError(f"status {status!r} is not one of {sorted(entities.STATUSES)}")
        tags = {"hk_tune.status": status}
        if reason:
            tags["hk_tune.error"] = reason[-entities.MAX_VALUE:]  # a traceback's end says most
        end_ms = now_ms()

        def end(run_id: str) -> None:
            self.client().log_batch(run_id, tags=entities.tags(tags))
            self.client().set_terminated(run_id, status=entities.STATUSES[status], end_time=end_ms)

        self._on_trial(trial_id, f"end of trial {trial_id} ({status})", end)

    def confirmation_run(
        self,
        confirms_trial_id: str,
        seed: int,
        params: dict[str, Any],
        history: list[dict[str, Any]],
        final: dict[str, Any],
    ) -> str:
        """Logs one seed-confirmation run of a trial as a child of the search.

        Args:
            confirms_trial_id: the trial it repeats (tags `hk_tune.confirms`, `.confirms_run`).
            seed: the seed of this repetition (tag `hk_tune.seed`, param `seed`).
            params: the configuration, as for `trial_started`.
            history: one dict of metrics per evaluation, with the step in `step` (or
                `training_iteration`; else its position, from 1).
            final: the final metrics, logged at the last step.

        Returns:
            The run id, or "" when the store is unreachable (logged on retry).
        """
        self.parent()
        name = f"{run_name(params)} seed={seed}"
        values = {**self._fixed, **dict(flat(params)), "seed": str(seed)}
        now = now_ms()
        rows = [(entities.step_of(row, index), row) for index, row in enumerate(history)]
        batch = [m for step, row in rows
                 for m in entities.metrics(row, step, now, skip=entities.STEP_KEYS)]
        # One millisecond later, so that where the history has the same key at the same step,
        # MLflow shows the final value as the run's latest.
        batch += entities.metrics(final, max((step for step, _ in rows), default=0), now + 1)

        def log() -> str:
            client = self.client()
            found = self.children(
                {"hk_tune.confirms": confirms_trial_id, "hk_tune.seed": str(seed)}
            )
            if found and found[0].info.status == "FINISHED":
                return found[0].info.run_id  # logged in full before a resume
            tags = {PARENT: self.parent(), "hk_tune.kind": "confirmation",
                    "hk_tune.confirms": confirms_trial_id, "hk_tune.seed": str(seed),
                    "hk_tune.status": "completed"}
            if confirms_trial_id in self.runs:
                tags["hk_tune.confirms_run"] = self.runs[confirms_trial_id]
            run_id = (found[0].info.run_id if found
                      else client.create_run(self._experiment(), tags=tags,
                                             run_name=name).info.run_id)
            self._log_params(run_id, values)
            for chunk in entities.chunks(batch, entities.METRIC_BATCH):
                client.log_batch(run_id, metrics=chunk)
            client.set_terminated(run_id, status="FINISHED")
            return run_id

        return self.guard.call(f"confirmation of {confirms_trial_id} seed {seed}", log) or ""

    # -- end ---------------------------------------------------------------------------------

    # The report at the end is a room of its own (search_report.py); its functions take the
    # tracker first, so they serve as its methods.
    finish_search = search_report.finish_search
    log_files = search_report.log_files

    @property
    def experiment_id(self) -> str | None:
        """The id of the experiment holding the search, once a search is started or attached."""
        return self._experiment_id

    @property
    def parent_url(self) -> str | None:
        """The parent run's page on a remote server's UI (None for a local store or no search)."""
        if self.parent_run_id is None or not is_remote(self.tracking_uri):
            return None
        base = self.tracking_uri.rstrip("/")
        return f"{base}/#/experiments/{self._experiment_id}/runs/{self.parent_run_id}"

    def gaps(self) -> list[str]:
        """What could not be logged when it happened (outage), one line each, with its fate."""
        return self.guard.lines()

    # -- internals ---------------------------------------------------------------------------

    def client(self) -> Any:
        if self._client_ is None:
            from mlflow import MlflowClient

            self._client_ = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client_

    def parent(self) -> str:
        if self.parent_run_id is None:
            raise RuntimeError("call start_search or attach_search first")
        return self.parent_run_id

    def _experiment(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = experiment_for(self.client(), self.experiment,
                                                 self.tracking_uri)
        return self._experiment_id

    def children(self, tags: Mapping[str, str] | None = None, trials_only: bool = False) -> list:
        terms = [f"tags.`{PARENT}` = '{self.parent()}'"]
        terms += [f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items()]
        runs, token = [], None
        while True:
            page = self.client().search_runs(
                [self._experiment()], " AND ".join(terms), max_results=1000, page_token=token
            )
            runs += [r for r in page if not trials_only or "hk_tune.trial_id" in r.data.tags]
            token = page.token
            if not token:
                return runs

    def _open_trial(self, trial_id: str, params: dict[str, str]) -> str:
        client = self.client()
        run_id = self.runs.get(trial_id)
        if run_id is None:
            found = self.children({"hk_tune.trial_id": trial_id})
            run_id = found[0].info.run_id if found else None
        if run_id is None:
            tags = {PARENT: self.parent(), "hk_tune.kind": "trial", "hk_tune.trial_id": trial_id,
                    "hk_tune.status": "running"}
            run_id = client.create_run(self._experiment(), tags=tags,
                                       run_name=self.names[trial_id]).info.run_id
            self._log_params(run_id, params)
        else:  # a resumed or retried trial: same run, running again, only new params added
            run = client.get_run(run_id)
            client.update_run(run_id, status="RUNNING")
            client.set_tag(run_id, "hk_tune.status", "running")
            if "hk_tune.error" in run.data.tags:
                client.delete_tag(run_id, "hk_tune.error")
            self._log_params(run_id, {k: v for k, v in params.items() if k not in run.data.params})
        self.runs[trial_id] = run_id
        self._waiting.discard(trial_id)
        return run_id

    def _on_trial(self, trial_id: str, what: str, fn: Callable[[str], object]) -> None:
        """Runs `fn(run_id)` for a trial; queues it while the trial's run is still queued."""
        if trial_id not in self.runs and trial_id not in self._waiting:
            # Never started here (e.g. it failed before Tune reported its start): a bare run.
            self.trial_started(trial_id, {}, name=trial_id)
        if trial_id in self.runs:
            self.guard.call(what, lambda: fn(self.runs[trial_id]))
        else:
            self.guard.defer(what, "its trial's run is not created yet",
                              lambda: fn(self.runs[trial_id]))

    def _log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        for chunk in entities.chunks(entities.params(params), entities.BATCH):
            self.client().log_batch(run_id, params=chunk)

