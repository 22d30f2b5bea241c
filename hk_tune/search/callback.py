"""The Ray Tune callback that mirrors a search's trials into MLflow through `SearchTracker`.

It runs in the Tune driver: a child run when a trial starts, its metrics at every evaluation,
and its end as completed, stopped (by ASHA) or errored with the reason.

A restarted trial (its process died, or the search was resumed) continues from its latest
checkpoint that Tune had registered, which can be older than its latest logged evaluation: Tune
registers a function trial's checkpoint after its result, once the trial's actor answers a save
request. The evaluations in between are reported again, with the same numbers (resuming is
exact); each trial's steps are logged once, so its MLflow curves have no duplicates.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ray.tune import Callback

from hk_tune.config.space import SearchConfig
from hk_tune.search.rows import trial_status


class TrackingCallback(Callback):
    """Logs each trial of a search to the tracker's parent run.

    Args:
        tracker: a started (or attached) `hk_tune.tracking.SearchTracker`.
        space: the search space, which turns a trial's sampled config into flat params.
    """

    def __init__(self, tracker, space: SearchConfig):
        self.tracker = tracker
        self.space = space
        self.logged_steps: dict[str, int] = {}  # trial id -> its latest step logged

    def __getstate__(self) -> dict:
        # Tune pickles its run config (and so its callbacks) into the experiment's state; the
        # tracker holds a live MLflow client, and `hk-tune resume` attaches a fresh one.
        return {"tracker": None, "space": self.space, "logged_steps": {}}

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        from ray.tune.utils import flatten_dict

        # After `hk-tune resume`, the trial's run in MLflow says how far it was logged: Tune's
        # restored state can lag behind it (a kill between the two writes).
        before = self.tracker.logged_before(trial.trial_id, "step")
        logged = [self.logged_steps.get(trial.trial_id, -1), -1 if before is None else int(before)]
        self.logged_steps[trial.trial_id] = max(logged)
        params = self.space.trial_params(flatten_dict(trial.config, delimiter="/"))
        self.tracker.trial_started(trial.trial_id, params)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict,
                        **info: Any) -> None:
        step = _step(result)
        if step <= self.logged_steps.get(trial.trial_id, -1):
            return  # reported again after a restart: logged already (see the module docstring)
        self.logged_steps[trial.trial_id] = step
        self.tracker.trial_metrics(trial.trial_id, result, step)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.tracker.trial_finished(trial.trial_id, trial_status(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.tracker.trial_finished(trial.trial_id, "errored", error_reason(trial))


def _step(result: dict) -> int:
    return int(result.get("step", result.get("training_iteration", 0)))


def error_reason(trial) -> str:
    """Why a trial failed, in one line: the exception its trainable raised, e.g.
    `DivergedError: step 3: loss is nan; ...`, else the last line of Tune's error file.

    Tune has written the error beside the trial before this callback runs: pickled, as the
    RayTaskError of the trial's actor (its `cause` is the trial's own exception), and as text.
    """
    import cloudpickle
    from ray.exceptions import RayTaskError

    error = None
    with contextlib.suppress(Exception):  # absent or unreadable: the text file has it
        error = cloudpickle.loads(Path(trial.pickled_error_file).read_bytes())
    if isinstance(error, RayTaskError) and error.cause is not None:
        error = error.cause
    if error is not None and not isinstance(error, RayTaskError):
        return f"{type(error).__name__}: {' '.join(str(error).split())}"
    text = ""
    with contextlib.suppress(Exception):
        text = Path(trial.error_file).read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "error (no message)"
