"""When a whole search may end before its budget of trials: a score target (`stop:` in the
space file). The time budget (`time_budget_s`) is Tune's own."""

from __future__ import annotations

from ray.tune.stopper import Stopper

from hk_tune.config.space import SearchConfig


class TargetReached(Stopper):
    """A Tune stopper: the whole search ends once a trial's score reaches the space's `stop`
    (at least it for mode max, at most for min); the trials so far are its results."""

    def __init__(self, space: SearchConfig):
        self.score, self.mode, self.target = space.score, space.mode, space.stop
        self.reached = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        value = result.get(self.score)
        if isinstance(value, (int, float)):
            self.reached |= value >= self.target if self.mode == "max" else value <= self.target
        return False

    def stop_all(self) -> bool:
        return self.reached
