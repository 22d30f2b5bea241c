"""The search's plots compare like with like: rate lines through completed trials only, trials
stopped early apart; the curves say when the baseline itself won."""

from __future__ import annotations

from hk_tune.tracking.figures import curves, metric_vs_rate, seed_history_key
from hk_tune.tracking.plots import render


def row(trial_id, rate, metric, status="completed", steps=120):
    return {"trial_id": trial_id, "name": trial_id, "status": status, "steps": steps,
            "metric": metric, "attn_logits.rate": rate, "attn_logits.pattern": "column"}


def test_rate_lines_join_completed_trials_and_stopped_ones_stand_apart(tmp_path):
    results = [row("base", 0.0, 0.78), row("a", 0.1, 0.80), row("b", 0.2, 0.76),
               row("c", 0.1, 0.52, status="stopped", steps=40), row("d", 0.3, 0.9, "errored")]
    results[-1]["metric"] = float("nan")  # an errored trial has no score
    figure = metric_vs_rate(results, "best_eval_accuracy", "max", "base")
    (panel,) = figure.panels
    by_kind = {s.kind: s for s in panel.series}
    assert (by_kind["line"].x, by_kind["line"].y) == ([0.1, 0.2], [0.80, 0.76])
    assert (by_kind["points"].x, by_kind["points"].y) == ([0.1], [0.52])
    assert by_kind["points"].hover == ["c (step 40)"]
    assert by_kind["hline"].y == [0.78]
    assert "completed" in figure.title
    written = render(figure, tmp_path)
    assert [p.suffix for p in written] == [".png", ".html"]
    assert "stopped early" in written[1].read_text()


def history(values):
    return [{"step": 40 * (i + 1), "train_loss": 1.0 / (i + 1), "eval_loss": 0.6,
             "eval_accuracy": v} for i, v in enumerate(values)]


def test_the_curves_say_when_the_baseline_won():
    histories = {"base": history([0.7, 0.8]), "hk": history([0.6, 0.75])}
    won = curves(histories, "best_eval_accuracy", "base", "base", {"base": "baseline"})
    assert won.title.startswith("The baseline won")
    assert [s.label for s in won.panels[0].series] == ["best = baseline: baseline"]
    lost = curves(histories, "best_eval_accuracy", "hk", "base", {"base": "baseline",
                                                                   "hk": "hiddenkey"})
    assert lost.title == "Best trial against the baseline"
    assert [s.label for s in lost.panels[0].series] == ["best: hiddenkey", "baseline"]


def test_confirmed_trials_are_drawn_as_a_median_in_a_band_over_their_seeds(tmp_path):
    histories = {"base": history([0.70, 0.80]), "hk": history([0.60, 0.75]),
                 seed_history_key("hk", 1): history([0.64, 0.79]),
                 seed_history_key("hk", 2): history([0.62, 0.77])}
    figure = curves(histories, "best_eval_accuracy", "hk", "base",
                    {"base": "baseline", "hk": "hiddenkey"})
    accuracy = next(panel for panel in figure.panels if panel.title == "eval_accuracy")
    best, baseline = accuracy.series
    assert best.label == "best: hiddenkey (median of 3 seeds)"
    assert best.y == [0.62, 0.77] and best.low == [0.60, 0.75] and best.high == [0.64, 0.79]
    assert baseline.label == "baseline" and not baseline.low  # one seed: a plain line
    written = render(figure, tmp_path)
    assert "median of 3 seeds" in written[1].read_text()
