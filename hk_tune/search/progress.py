"""What a search prints while it runs, on stderr: one line per evaluation and per trial end, each
with the trial's readable name, and a count of the trials so far. It replaces Tune's status
tables, so stdout keeps hk_tune's results only (the ranked table and the `--json` line).

    start    hiddenkey r=0.1/0.1 λ=1 (trial 1c0f0187)
    eval     hiddenkey r=0.1/0.1 λ=1: step 40/120  eval_accuracy 0.7433  best 0.7433
    stopped  hiddenkey r=0.1/0.1 λ=1: best_eval_accuracy 0.7433 at step 40  [1 running, 2 stopped]
"""

from __future__ import annotations

import math
import sys
from typing import Any

from ray.tune import Callback

from hk_tune.config.space import SearchConfig
from hk_tune.search.executor import sampled_point
from hk_tune.search.rows import trial_status
from hk_tune.tracking.names import run_name


class ProgressCallback(Callback):
    """Prints a search's (or its confirmation's) trials as they run; see the module docstring."""

    def __init__(self, space: SearchConfig):
        self.space = space
        self.names: dict[str, str] = {}
        self.ended: dict[str, str] = {}  # trial id -> completed / stopped / errored

    def __getstate__(self) -> dict:  # pickled into Tune's state: the counts start afresh
        return {"space": self.space, "names": {}, "ended": {}}

    def on_trial_start(self, iteration: int, trials: list, trial, **info: Any) -> None:
        name = self.name(trial)
        self.ended.pop(trial.trial_id, None)
        say(f"start    {name} (trial {trial.trial_id})")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict,
                        **info: Any) -> None:
        metric = self.space.metric
        if metric not in result:
            return
        total = result.get("total_steps")
        step = f"step {result.get('step')}" + (f"/{total}" if total else "")
        best = result.get(f"best_{metric}")
        say(f"eval     {self.name(trial)}: {step}  {metric} {number(result[metric])}"
            + (f"  best {number(best)}" if best is not None else ""))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.end(trials, trial, trial_status(trial.last_result or {}))

    def on_trial_error(self, iteration: int, trials: list, trial, **info: Any) -> None:
        self.end(trials, trial, "errored")

    def end(self, trials: list, trial, status: str) -> None:
        self.ended[trial.trial_id] = status
        last = trial.last_result or {}
        score = last.get(self.space.score)
        at = f" at step {last['best_step']}" if last.get("best_step") not in (None, -1) else ""
        about = f": {self.space.score} {number(score)}{at}" if score is not None else ""
        say(f"{status:<8} {self.name(trial)}{about}  [{self.counts(trials)}]")

    def counts(self, trials: list) -> str:
        running = sum(1 for t in trials if t.status == "RUNNING")
        parts = [f"{running} running"] if running else []
        for status in ("completed", "stopped", "errored"):
            n = sum(1 for s in self.ended.values() if s == status)
            if n:
                parts.append(f"{n} {status}")
        return ", ".join(parts) or "none ended"

    def name(self, trial) -> str:
        """The readable name of a search trial, or of a confirmation run with its seed."""
        if trial.trial_id not in self.names:
            params, seed = sampled_point(trial.config or {})
            suffix = f" seed {seed}" if seed is not None else ""
            try:
                label = run_name(self.space.trial_params(params)) + suffix
            except Exception:  # a name is never worth failing the search over
                label = f"trial {trial.trial_id}"
            self.names[trial.trial_id] = label
        return self.names[trial.trial_id]


def number(value: Any) -> str:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{value:.4f}"
    return str(value)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
