"""The overfitting check at the end of a search: a run whose eval loss has not turned upward can
only show dropout slowing learning, and a search where no completed trial turned says so."""

from __future__ import annotations

from hk_tune.search.overfit import HINT, describe, eval_loss_turn, overfitting

# Eval losses per evaluation: a short run still learning, and the MiniLM baseline on 320 bundled
# sentiment sentences over 5 epochs as measured here (the quick start's budget).
SHORT = [0.69, 0.62, 0.55]
LONG = [0.651, 0.511, 0.538, 0.593, 0.599]


def history(losses: list[float], every: int = 20) -> list[dict]:
    return [{"step": every * (i + 1), "eval_loss": loss} for i, loss in enumerate(losses)]


def completed(*statuses: str) -> list[str]:
    """The trial ids t0, t1, ... of the completed ones among trials of these statuses."""
    return [f"t{i}" for i, status in enumerate(statuses) if status == "completed"]


def test_a_run_still_learning_has_not_turned():
    turn = eval_loss_turn(history(SHORT))
    assert (turn.min_step, turn.last_step, turn.turned) == (60, 60, False)


def test_a_run_past_its_minimum_has_turned():
    turn = eval_loss_turn(history(LONG))
    assert (turn.min_loss, turn.min_step, turn.last_loss, turn.turned) == (0.511, 40, 0.599, True)


def test_a_flat_end_within_the_tolerance_is_no_turn():
    assert not eval_loss_turn(history([0.6, 0.5, 0.502])).turned
    assert eval_loss_turn([{"step": 1, "eval_accuracy": 0.5}]) is None


def test_the_warning_fires_on_short_runs_and_not_on_long_ones():
    short = overfitting(completed("completed", "completed"),
                        {"t0": history(SHORT), "t1": history(SHORT)}, "t0")
    assert short["turned"] == [] and short["completed"] == 2
    lines = describe(short, "eval_accuracy")
    assert lines[0] == "baseline eval loss: lowest 0.5500 at step 60, 0.5500 at step 60: no turn"
    assert HINT in lines[1] and "raise optim.epochs or lower data.max_train_samples" in lines[1]

    long = overfitting(completed("completed", "completed"),
                       {"t0": history(LONG), "t1": history(SHORT)}, "t0")
    assert long["turned"] == ["t0"]
    lines = describe(long, "eval_accuracy")
    assert lines == ["baseline eval loss: lowest 0.5110 at step 40, rising to 0.5990 at step "
                     "100: overfitting"]


def test_stopped_trials_do_not_count():
    """An ASHA-stopped trial ended early by design: its curve says nothing about the budget."""
    found = overfitting(completed("stopped", "completed"),
                        {"t0": history(LONG), "t1": history(SHORT)}, None)
    assert found == {"completed": 1, "turned": [], "baseline": None}
    assert HINT in describe(found, "eval_accuracy")[0]
