"""The kinds of task a run trains, and the label that marks a token no loss counts. One place,
read by the dropout step (its consistency loss), the data pipeline and the metrics."""

TASKS = ("classification", "regression", "causal_lm")
# The label torch's cross-entropy skips: prompt tokens and padding of causal LM.
IGNORE_INDEX = -100


def target_tokens(labels):
    """Which next-token predictions of a causal-LM batch count: the logits at t predict the
    label at t + 1, and only target tokens (not IGNORE_INDEX) count. A bool tensor (batch,
    length - 1), the mask transformers' loss averages over."""
    return labels[:, 1:] != IGNORE_INDEX
