"""The kinds of task a run trains, the metrics each one's evaluation reports, and the label that
marks a token no loss counts. One place, read by the config layer (which metric a space may
name), the dropout step (its consistency loss), the data pipeline and the metrics."""

TASKS = ("classification", "regression", "causal_lm")
# The label torch's cross-entropy skips: prompt tokens and padding of causal LM.
IGNORE_INDEX = -100


def target_tokens(labels):
    """Which next-token predictions of a causal-LM batch count: the logits at t predict the
    label at t + 1, and only target tokens (not IGNORE_INDEX) count. A bool tensor (batch,
    length - 1), the mask transformers' loss averages over."""
    return labels[:, 1:] != IGNORE_INDEX


# What a search optimizes per task (the paper's headline metric: accuracy on RTE/MRPC/SST-2,
# Pearson on STS-B, BLEU on E2E).
PRIMARY_METRIC = {"classification": "accuracy", "regression": "pearson", "causal_lm": "bleu"}

# What each task's evaluation reports besides `eval_loss` (as `eval_<name>`).
TASK_METRICS = {"classification": ("accuracy", "f1", "mcc"), "regression": ("pearson", "spearman"),
                "causal_lm": ("bleu", "rouge_l")}

HIGHER_IS_BETTER = {
    "accuracy": True, "f1": True, "mcc": True,
    "pearson": True, "spearman": True,
    "bleu": True, "rouge_l": True,
    "loss": False, "eval_loss": False, "train_loss": False,
}


def metric_mode(name: str) -> str:
    """Ray Tune / Optuna direction of a metric: "max" or "min".

    Args:
        name: a key of HIGHER_IS_BETTER, optionally prefixed "eval_" or "train_" as the training
            loop reports them ("eval_accuracy").
    """
    for key in (name, name.removeprefix("eval_"), name.removeprefix("train_")):
        if key in HIGHER_IS_BETTER:
            return "max" if HIGHER_IS_BETTER[key] else "min"
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(HIGHER_IS_BETTER)}, "
                     "optionally prefixed eval_ or train_")


def eval_metrics(task: str) -> list[str]:
    """Every metric an evaluation of `task` reports: `eval_loss` and `eval_<name>`."""
    return ["eval_loss", *(f"eval_{name}" for name in TASK_METRICS[task])]


def selection_metric(task: str, metric: str | None) -> str:
    """The metric a run of `task` tracks its best of: `metric`, else the task's primary one.

    Raises:
        ValueError: `metric` is not one an evaluation of `task` reports (listing those).
    """
    chosen = metric or f"eval_{PRIMARY_METRIC[task]}"
    if chosen not in eval_metrics(task):
        raise ValueError(f"{chosen!r} is not reported by a {task} evaluation; allowed: "
                         f"{eval_metrics(task)}")
    return chosen
