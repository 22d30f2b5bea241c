"""Task metrics from well-kept libraries: scikit-learn, SciPy, sacrebleu, rouge-score.

Classification metrics are fractions (0..1); generation metrics are on 0..100, as E2E results are
reported. Eval loss is the training loop's, not computed here. Which metrics each task reports,
and their directions, are in `hk_tune.tasks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def classification_metrics(preds: Any, labels: Any, num_labels: int) -> dict[str, float]:
    """Accuracy, F1 and Matthews correlation.

    Args:
        preds: predicted class ids (N,), or logits (N, num_labels), whose argmax is taken.
        labels: true class ids (N,).
        num_labels: number of classes; 2 gives binary F1 of class 1, more give macro F1.

    Returns:
        {"accuracy", "f1", "mcc"}; F1 and MCC are 0 when undefined (a single predicted class).
    """
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    preds, labels = np.asarray(preds), np.asarray(labels).reshape(-1)
    if preds.ndim == 2:
        preds = preds.argmax(axis=-1)
    _check_lengths(preds.reshape(-1), labels)
    average = "binary" if num_labels == 2 else "macro"
    f1_labels = None if num_labels == 2 else list(range(num_labels))
    return {
        "accuracy": float(accuracy_score(labels, preds)),
        "f1": float(f1_score(labels, preds, average=average, labels=f1_labels, zero_division=0)),
        "mcc": float(matthews_corrcoef(labels, preds)),
    }


def regression_metrics(preds: Any, labels: Any) -> dict[str, float]:
    """Pearson and Spearman correlation (STS-B's metrics).

    Args:
        preds: predicted scores (N,) or (N, 1).
        labels: true scores (N,).

    Returns:
        {"pearson", "spearman"}; 0 when undefined (constant predictions or labels), as sklearn
        does for MCC, so that a search objective stays finite.
    """
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    preds = np.asarray(preds, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    _check_lengths(preds, labels)
    if len(preds) < 2 or np.ptp(preds) == 0 or np.ptp(labels) == 0:
        return {"pearson": 0.0, "spearman": 0.0}
    return {
        "pearson": float(pearsonr(preds, labels).statistic),
        "spearman": float(spearmanr(preds, labels).statistic),
    }


def generation_metrics(hypotheses: Sequence[str],
                       references: Sequence[str] | Sequence[Sequence[str]]) -> dict[str, float]:
    """Corpus BLEU (sacrebleu defaults: 13a tokenization, 4-grams) and mean ROUGE-L F-measure.

    Args:
        hypotheses: generated texts (N,).
        references: one reference per hypothesis (N,), or a list of references per hypothesis
            (N, R_i), as E2E has; counts may differ between hypotheses.

    Returns:
        {"bleu", "rouge_l"}, both 0..100. ROUGE-L takes, per hypothesis, the best reference
        (rouge-score's `score_multi`).
    """
    import sacrebleu
    from rouge_score import rouge_scorer

    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    _check_lengths(hypotheses, refs)
    if any(not r for r in refs):
        raise ValueError("every hypothesis needs at least one reference")
    # sacrebleu wants reference streams (R, N); None marks a missing reference.
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(max(map(len, refs)))]
    bleu = sacrebleu.corpus_bleu(list(hypotheses), streams).score
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [scorer.score_multi(r, h)["rougeL"].fmeasure
             for h, r in zip(hypotheses, refs, strict=True)]
    return {"bleu": float(bleu), "rouge_l": 100.0 * sum(rouge) / len(rouge)}


def compute_metrics(task: str, preds: Any, labels: Any, num_labels: int = 0) -> dict[str, float]:
    """The metrics of `task` (one of hk_tune.tasks.TASKS).

    For causal_lm, preds are generated texts and labels their references.
    """
    if task not in _BY_TASK:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(_BY_TASK)}")
    return _BY_TASK[task](preds, labels, num_labels)


_BY_TASK = {
    "classification": classification_metrics,
    "regression": lambda preds, labels, _: regression_metrics(preds, labels),
    "causal_lm": lambda hypotheses, references, _: generation_metrics(hypotheses, references),
}


def _check_lengths(preds: Sequence, labels: Sequence) -> None:
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    if len(preds) == 0:
        raise ValueError("no predictions to score")
