"""Did any trial overfit? Dropout is a regularizer: it pays off only once a run without it has
passed the minimum of its eval loss and starts to rise. A search whose trials all end before that
point can only find that dropout slows learning, which is the commonest way a regularization
search misleads; the search says so.

    found = overfitting(completed_trial_ids, histories, baseline_trial_id)
    for line in describe(found, "eval_accuracy"):
        print(line, file=sys.stderr)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# The last eval loss must exceed the minimum by this fraction of it to count as a turn: a
# flat curve wobbling in its last digits has not turned.
TOLERANCE = 0.01
HINT = ("no trial overfitted: dropout can only slow learning before that point; raise "
        "optim.epochs or lower data.max_train_samples")


@dataclass(frozen=True)
class Turn:
    """Where a run's eval loss was lowest, and where it ended."""

    min_loss: float
    min_step: int
    last_loss: float
    last_step: int

    @property
    def turned(self) -> bool:
        return self.min_step < self.last_step and self.last_loss > self.min_loss * (1 + TOLERANCE)


def turned_by(turn: Turn | None, fraction: float) -> bool:
    """Whether a run's eval loss had turned upward, with its minimum within the first
    `fraction` of its evaluated steps: there is room after the turn for dropout to show."""
    return turn is not None and turn.turned and turn.min_step <= fraction * turn.last_step


def eval_loss_turn(history: list[dict[str, Any]]) -> Turn | None:
    """The eval-loss minimum and end of a run's evaluations; None without a finite eval loss."""
    points = [(row["step"], row["eval_loss"]) for row in history
              if isinstance(row.get("eval_loss"), (int, float)) and math.isfinite(row["eval_loss"])
              and "step" in row]
    if not points:
        return None
    points.sort()
    min_step, min_loss = min(points, key=lambda point: (point[1], point[0]))
    last_step, last_loss = points[-1]
    return Turn(float(min_loss), int(min_step), float(last_loss), int(last_step))


def overfitting(completed: list[str], histories: dict[str, list[dict]],
                baseline_trial_id: str | None) -> dict[str, Any]:
    """Which completed trials' eval loss turned upward, and the baseline's curve. Trials a
    scheduler stopped early by design say nothing about the budget and are not given.

    Returns:
        {"completed": n, "turned": [trial ids], "baseline": the baseline's `Turn` as a dict
        (with `turned`) or None}.
    """
    turns = {trial_id: eval_loss_turn(histories.get(trial_id, [])) for trial_id in completed}
    baseline = eval_loss_turn(histories.get(baseline_trial_id, [])) if baseline_trial_id else None
    return {
        "completed": len(completed),
        "turned": [trial_id for trial_id, turn in turns.items() if turn and turn.turned],
        "baseline": None if baseline is None else {**asdict(baseline), "turned": baseline.turned},
    }


def describe(found: dict[str, Any], metric: str) -> list[str]:
    """The lines a search prints: the baseline's eval-loss turn, and the warning when no
    completed trial overfitted."""
    lines = []
    base = found.get("baseline")
    if base is not None:
        end = (f"rising to {base['last_loss']:.4f} at step {base['last_step']}: overfitting"
               if base["turned"] else f"{base['last_loss']:.4f} at step {base['last_step']}: "
               "no turn")
        lines.append(f"baseline eval loss: lowest {base['min_loss']:.4f} at step "
                     f"{base['min_step']}, {end}")
    if found["completed"] and not found["turned"]:
        lines.append(f"warning: {HINT} (ranking by {metric} compares learning speed only)")
    return lines
