"""What a search tells its tracker, as a protocol: the search depends on this, not on MLflow, so
another tracker can stand in without a change to the search. `hk_tune.tracking.SearchTracker`
(MLflow: a parent run per search, a child run per trial) is the one hk_tune ships.

After `check`, no method may raise into the search: a tracker queues what it cannot deliver and
reports it through `gaps`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    tracking_uri: str
    parent_run_id: str | None

    @property
    def experiment_id(self) -> str | None: ...

    def check(self) -> None:
        """Raises (a `TrackingError`, exit status 2) if the store does not answer."""

    def start_search(self, name: str, space_file: str | None, fixed: dict[str, Any],
                     seed: int, tags: dict[str, str] | None = None) -> str:
        """Records a new search; returns its id."""

    def attach_search(self, parent_run_id: str) -> None:
        """Continues the search `parent_run_id` (`hk-tune resume`)."""

    def logged_before(self, trial_id: str, key: str) -> float | None:
        """The latest value of `key` a resumed search's trial had logged."""

    def trial_started(self, trial_id: str, params: dict[str, Any],
                      name: str | None = None) -> str: ...

    def trial_metrics(self, trial_id: str, metrics: dict[str, Any], step: int) -> None: ...

    def trial_finished(self, trial_id: str, status: str, reason: str | None = None) -> None: ...

    def confirmation_run(self, confirms_trial_id: str, seed: int, params: dict[str, Any],
                         history: list[dict[str, Any]], final: dict[str, Any]) -> str: ...

    def finish_search(self, results: list[dict[str, Any]], best_config: dict[str, Any],
                      metric: str, mode: str, importances: dict[str, float] | None = None,
                      histories: dict[str, list[dict[str, Any]]] | None = None,
                      baseline_trial_id: str | None = None, best_trial_id: str | None = None,
                      confirmation: dict[str, Any] | None = None,
                      folders: list[Path] = ()) -> list[str]:
        """Records the end of the search: results, best configuration, plots, folders."""

    def end_search(self, status: str, reason: str) -> None:
        """Records that the search did not finish: `status` "interrupted" or "errored"."""

    def gaps(self) -> list[str]:
        """What could not be recorded when it happened, one line each."""
