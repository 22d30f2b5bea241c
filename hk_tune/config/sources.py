"""The sources a `data:` section can name, and the task each defines, without reading any rows:
bundled demo sets, GLUE tasks and E2E NLG from the hub, or local files and folders.

`hk_tune.train.sources` reads them; the search uses `source_task` to know, before anything
runs, which metrics a task's evaluations report.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Schema:
    """A task definition over a source's columns.

    Attributes:
        task: one of `hk_tune.tasks.TASKS`.
        columns: role -> source column; roles are text, text_pair, label (classification and
            regression) or prompt, target (causal_lm).
        label_names: class names in id order; () when inferred or not a classification task.
    """

    task: str
    columns: dict[str, str] = field(default_factory=dict)
    label_names: tuple[str, ...] = ()


def _pair(a: str, b: str, label: str = "label") -> dict[str, str]:
    return {"text": a, "text_pair": b, "label": label}


# Shipped under hk_tune/data/<name>/<split>.jsonl.gz by hk_tune/data/build.py (see its README).
BUNDLED: dict[str, Schema] = {
    "snli": Schema(
        "classification", _pair("premise", "hypothesis"), ("entailment", "neutral", "contradiction")
    ),
    "sentiment": Schema(
        "classification", {"text": "text", "label": "label"}, ("negative", "positive")
    ),
    "sentiment_regression": Schema("regression", {"text": "text", "label": "rating"}),
    "snli_generation": Schema("causal_lm", {"prompt": "prompt", "target": "target"}),
}

# The GLUE tasks of the paper and its neighbours, as `datasets.load_dataset("nyu-mll/glue", name)`
# defines them; label names in the hub's ClassLabel order.
GLUE: dict[str, Schema] = {
    "rte": Schema(
        "classification", _pair("sentence1", "sentence2"), ("entailment", "not_entailment")
    ),
    "mrpc": Schema(
        "classification", _pair("sentence1", "sentence2"), ("not_equivalent", "equivalent")
    ),
    "stsb": Schema("regression", _pair("sentence1", "sentence2")),
    "cola": Schema(
        "classification", {"text": "sentence", "label": "label"}, ("unacceptable", "acceptable")
    ),
    "sst2": Schema(
        "classification", {"text": "sentence", "label": "label"}, ("negative", "positive")
    ),
    "qnli": Schema(
        "classification", _pair("question", "sentence"), ("entailment", "not_entailment")
    ),
}

# E2E NLG (Novikova et al. 2017): meaning representation -> restaurant description. The canonical
# hub copy names the reference `human_reference`, GEM's copy `target`; tried in this order.
E2E_NLG: tuple[tuple[str, Schema], ...] = tuple(
    (path, Schema("causal_lm", {"prompt": "meaning_representation", "target": target}))
    for path, target in (("e2e_nlg", "human_reference"), ("GEM/e2e_nlg", "target"))
)

# Local file extensions -> `datasets` builder; ".gz" on any of the text formats is also read.
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                 ".parquet": "parquet"}

SOURCE_FORMS = (
    "bundled:<" + "|".join(BUNDLED) + ">, glue:<" + "|".join(GLUE) + ">, e2e_nlg, "
    "a local " + "/".join(FILE_BUILDERS) + " file (may contain {split}), or a save_to_disk folder"
)


def source_task(source: str, task: str | None = None) -> str | None:
    """The task a data section defines without reading any rows: its own `task`, or the one
    its bundled or hub `source` has; None for a local source that names none."""
    kind, _, name = source.partition(":")
    if task is not None:
        return task
    if source == "e2e_nlg":
        return "causal_lm"
    schema = {"bundled": BUNDLED, "glue": GLUE}.get(kind, {}).get(name)
    return schema.task if schema is not None else None


def is_local(source: str) -> bool:
    """Whether `source` names a local file or folder (which needs `task` and a column mapping)."""
    return not source.startswith(("bundled:", "glue:")) and source != "e2e_nlg"
