"""bundled:snli_generation: SNLI premise -> an entailed hypothesis; multi-reference eval sets."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from importlib import resources

import pytest

from hk_tune.config.sources import source_task
from hk_tune.train.data import DataConfig, load_task, tokenize

SOURCE = "bundled:snli_generation"
SPLITS = {"train": 2000, "validation": 250, "test": 250}
# A validation premise with three entailed hypotheses in SNLI's test set.
PREMISE = ("A boy dressed for summer in a green shirt and kahki shorts extends food to a reindeer "
           "in a petting zoo.")
HYPOTHESES = {"A boy dressed for summer in a tight green shirt and kahki shorts",
              "A boy dressed for summer in a green shirt and kahki shorts",
              "A boy alien dressed for summer in a green shirt and kahki shorts"}


def raw_rows(split: str) -> list[dict]:
    """The shipped file itself, read without the project's loader."""
    path = resources.files("hk_tune") / "data" / "snli_generation" / f"{split}.jsonl.gz"
    with path.open("rb") as f:
        return [json.loads(line) for line in gzip.decompress(f.read()).decode().splitlines()]


def targets_by_prompt(rows) -> dict[str, set[str]]:
    grouped = defaultdict(set)
    for row in rows:
        grouped[row["prompt"]].add(row["target"])
    return grouped


def test_loads_as_causal_lm_with_its_sizes():
    assert source_task(SOURCE) == "causal_lm"
    data = load_task(DataConfig(source=SOURCE))
    assert (data.task, data.num_labels, data.label_names) == ("causal_lm", 0, ())
    assert data.train.column_names == data.eval.column_names == ["prompt", "target"]
    assert (len(data.train), len(data.eval)) == (SPLITS["train"], SPLITS["validation"])
    test = load_task(DataConfig(source=SOURCE, eval_split="test")).eval
    assert len(test) == SPLITS["test"]
    assert all(row["prompt"].strip() and row["target"].strip() for row in data.train)
    # The loader reads the shipped rows as they are, in order.
    assert data.eval["prompt"] == [r["prompt"] for r in raw_rows("validation")]
    assert test["target"] == [r["target"] for r in raw_rows("test")]


@pytest.mark.parametrize("split", ["validation", "test"])
def test_eval_references_hold_every_entailed_hypothesis(tiny_models, split):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    data = load_task(DataConfig(source=SOURCE, eval_split=split))
    _, encoded = tokenize(data, tokenizer, max_length=64)
    expected = targets_by_prompt(raw_rows(split))
    several = {p for p, targets in expected.items() if len(targets) > 1}
    assert len(several) >= 15  # the multi-reference premises: 24 in validation, 20 in test
    seen = set()
    for prompt, target, references in zip(data.eval["prompt"], encoded["target"],
                                          encoded["references"], strict=True):
        assert target in references and len(references) == len(set(references))
        assert set(references) == expected[prompt]
        seen.add(prompt)
    assert several <= seen
    if split == "validation":
        rows = [i for i, p in enumerate(data.eval["prompt"]) if p == PREMISE]
        assert len(rows) == 3
        assert all(set(encoded[i]["references"]) == HYPOTHESES for i in rows)


def test_splits_share_no_premise_and_no_pair():
    rows = {split: raw_rows(split) for split in SPLITS}
    assert {split: len(r) for split, r in rows.items()} == SPLITS
    prompts = {split: {r["prompt"] for r in split_rows} for split, split_rows in rows.items()}
    assert not prompts["train"] & prompts["validation"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["validation"] & prompts["test"]
    ids = [r["id"] for split_rows in rows.values() for r in split_rows]
    assert len(ids) == len(set(ids))
    # Nor does an eval premise's image (the Flickr30k file name before the pairID's "#") in train.
    images = {split: {r["id"].split("#")[0] for r in split_rows}
              for split, split_rows in rows.items()}
    assert not images["train"] & (images["validation"] | images["test"])
