"""Metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from hk_tune.tasks import HIGHER_IS_BETTER, PRIMARY_METRIC, TASKS, metric_mode
from hk_tune.train.metrics import (
    classification_metrics,
    compute_metrics,
    generation_metrics,
    regression_metrics,
)


def test_binary_classification():
    # TP 2, TN 1, FP 1, FN 0: precision 2/3, recall 1, F1 0.8; MCC (2·1 − 1·0)/√(3·2·1·2).
    got = classification_metrics([1, 0, 1, 1], [1, 0, 0, 1], num_labels=2)
    assert got == pytest.approx({"accuracy": 0.75, "f1": 0.8, "mcc": 2 / math.sqrt(12)})


def test_multiclass_f1_is_macro():
    # Per class F1: class 0 = 1, class 1 = 2/3 (P 1, R 1/2), class 2 = 2/3 (P 1/2, R 1).
    got = classification_metrics([0, 1, 2, 2], [0, 1, 1, 2], num_labels=3)
    assert got["accuracy"] == 0.75 and got["f1"] == pytest.approx(7 / 9)


def test_logits_are_argmaxed():
    logits = [[2.0, -1.0], [0.1, 0.3], [-5.0, 5.0]]
    got = classification_metrics(logits, [0, 1, 0], num_labels=2)
    assert got["accuracy"] == pytest.approx(2 / 3)


def test_a_single_predicted_class_scores_zero_f1_and_mcc():
    got = classification_metrics([0, 0, 0, 0], [0, 1, 0, 1], num_labels=2)
    assert got == {"accuracy": 0.5, "f1": 0.0, "mcc": 0.0}


def test_regression():
    # x = 1..4, y = x²: Σdxdy = 25, Σdx² = 5, Σdy² = 129, so r = 25/√645; ranks agree exactly.
    got = regression_metrics([[1.0], [2.0], [3.0], [4.0]], [1, 4, 9, 16])
    assert got == pytest.approx({"pearson": 25 / math.sqrt(645), "spearman": 1.0})
    assert regression_metrics([3, 2, 1], [1, 2, 3]) == pytest.approx(
        {"pearson": -1.0, "spearman": -1.0})


def test_constant_predictions_score_zero_not_nan():
    assert regression_metrics([0.5, 0.5, 0.5], [1.0, 2.0, 3.0]) == {"pearson": 0.0, "spearman": 0.0}


def test_generation_identical_and_disjoint():
    text = ["the eagle is a coffee shop near the river", "it serves cheap french food"]
    assert generation_metrics(text, text) == pytest.approx({"bleu": 100.0, "rouge_l": 100.0})
    disjoint = generation_metrics(["red green blue"], ["one two three"])
    assert disjoint == {"bleu": 0.0, "rouge_l": 0.0}


def test_rouge_l_of_a_known_pair():
    # LCS "the cat on the mat" = 5 of 6 tokens on each side: P = R = F = 5/6.
    got = generation_metrics(["the cat sat on the mat"], ["the cat was on the mat"])
    assert got["rouge_l"] == pytest.approx(100 * 5 / 6)


def test_multiple_references_per_hypothesis():
    # Each hypothesis matches one of its references exactly, whatever the count per row.
    hyps = ["the eagle is a coffee shop near the river", "it serves cheap french food"]
    refs = [["a pub by the river", "the eagle is a coffee shop near the river"],
            ["it serves cheap french food"]]
    assert generation_metrics(hyps, refs) == pytest.approx({"bleu": 100.0, "rouge_l": 100.0})


def test_length_mismatch_and_empty_input_raise():
    with pytest.raises(ValueError, match="2 predictions for 1 labels"):
        classification_metrics([0, 1], [0], num_labels=2)
    with pytest.raises(ValueError, match="no predictions"):
        generation_metrics([], [])


def test_primary_metric_per_task_and_direction():
    assert set(PRIMARY_METRIC) == set(TASKS)
    assert all(HIGHER_IS_BETTER[m] for m in PRIMARY_METRIC.values())
    assert metric_mode("bleu") == "max" and metric_mode("eval_loss") == "min"
    assert metric_mode("eval_accuracy") == "max" and metric_mode("train_loss") == "min"
    with pytest.raises(ValueError, match="unknown metric"):
        metric_mode("perplexity_of_vibes")


@pytest.mark.parametrize("task, preds, labels, primary", [
    ("classification", [1, 0], [1, 0], 1.0),
    ("regression", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0], 1.0),
    ("causal_lm", ["a b c d e"], [["a b c d e"]], 100.0),
])
def test_compute_metrics_dispatches_on_task(task, preds, labels, primary):
    got = compute_metrics(task, preds, labels, num_labels=2)
    assert got[PRIMARY_METRIC[task]] == pytest.approx(primary)
