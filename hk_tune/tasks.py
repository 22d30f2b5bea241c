"""The kinds of task a run trains, and the label that marks a token no loss counts. One place,
read by the dropout step (its consistency loss), the data pipeline and the metrics."""

TASKS = ("classification", "regression", "causal_lm")
# The label torch's cross-entropy skips: prompt tokens and padding of causal LM.
IGNORE_INDEX = -100
