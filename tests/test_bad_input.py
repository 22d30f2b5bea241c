"""Bad input, one row per mistake, through the real `hk-tune train CONFIG` and
`hk-tune search SPACE`: exit status 2, one line on stderr naming the file, the key and what is
allowed, and nothing started: no Ray, no model weights loaded, let alone trained.

Rows run in-process (`cli.main`) with `ray.init` and `load_model` replaced by recorders that
fail the test. Ray also looks not yet started to the code under test, so a Ray session an
earlier test left running cannot hide a call to `ray.init`. Two rows run again in a fresh
process, where `ray.is_initialized()` is the plain truth.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from model_folders import pickle_only_model, remote_code_model

from hk_tune import cli
from hk_tune.config.files import set_key

# Both malformed at line 4, where a tab starts a line.
MALFORMED = {
    "train": "seed: 0\noptim:\n  lr: 0.001\n\tbatch_size: 4\n",
    "search": "seed: 0\nfixed:\n  optim.lr: 0.001\n\toptim.batch_size: 4\n",
}


@dataclass(frozen=True)
class Row:
    """One mistake.

    Attributes:
        name: the case id.
        key, allowed: words the message must hold; a dict when they differ per command.
        train: dotted run-config keys set on the good config; None: the row is search-only.
        search: space settings merged into the good space (`fixed` and `search` replace their
            sections; a value None removes the setting); None: the row is train-only.
        text: the whole file, for both commands (malformed YAML).
    """

    name: str
    key: str | dict[str, str]
    allowed: str | dict[str, str]
    train: dict[str, Any] | None = None
    search: dict[str, Any] | None = None
    text: dict[str, str] = field(default_factory=dict)


def grid(*values) -> dict:
    return {"type": "grid", "values": list(values)}


def both(key: str, value: Any) -> dict[str, dict]:
    """The same run-config key, set in a run config and as a space's fixed value."""
    return {"train": {key: value}, "search": {"fixed": {key: value}}}


ROWS = [
    Row("malformed YAML", "line 4", "YAML", text=MALFORMED),
    # Trials local Ray can never hold: Tune would wait for them forever.
    Row("trial needs more CPUs than local Ray", "resources", "cpus_per_worker of at most",
        search={"resources": {"num_workers": 1, "cpus_per_worker": 4096}, "executor": "train"}),
    Row("trial needs more GPUs than local Ray", "resources", "gpus_per_worker: 0",
        search={"resources": {"num_workers": 1, "gpus_per_worker": 64}}),
    Row("storage under a regular file", "storage_path", "is a file",
        search={"storage_path": "{reviews}/runs"}),
    Row("over-long name", "name", "at most 128 bytes", train={"name": "x" * 300},
        search={"name": "x" * 300}),
    Row("unknown key", "optim.lrr", {"train": "'lr'", "search": "'optim.lr'"},
        train={"optim.lrr": 0.1}, search={"fixed": {"optim.lrr": 0.1}}),
    Row("unknown setting", "'num_sample'", "'num_samples'", search={"num_sample": 3}),
    Row("wrong type", "optim.lr", "expected a number", train={"optim.lr": "fast"},
        search={"fixed": {"optim.lr": "fast"}}),
    Row("rate outside [0, 1)", "dropout.attn_logits.rate", "[0, 1)",
        train={"dropout.attn_logits.rate": 1.5},
        search={"search": {"dropout.attn_logits.rate": grid(0.1, 1.5)}}),
    Row("pattern not defined", "dropout.attn_logits.pattern", "['element', 'column', 'span']",
        train={"dropout.attn_logits.pattern": "diagonal"},
        search={"search": {"dropout.attn_logits.pattern": {
            "type": "categorical", "choices": ["column", "diagonal"]}}}),
    Row("pattern not defined for a position switch", "dropout.ffn_hidden",
        "['off', 'element', 'column', 'span']",
        search={"search": {"dropout.ffn_hidden": {
            "type": "categorical", "choices": {"off": {}, "row": {}}}}}),
    Row("rescale not defined for the position", "dropout.attn_logits.rescale", "['none']",
        train={"dropout.attn_logits.rescale": "inverted"},
        search={"fixed": {"dropout.attn_logits.rescale": "inverted"}}),
    Row("negative consistency weight", "dropout.consistency.weight", "a number >= 0",
        train={"dropout.consistency.loss": "kl", "dropout.consistency.weight": -1.0},
        search={"search": {"dropout.consistency.weight": grid(1.0, -1.0)}}),
    Row("no search entries", "search", "allowed types", search={"search": None}),
    Row("empty search mapping", "search", "allowed types", search={"search": {}}),
    Row("missing dataset file", "data.source", "allowed sources: bundled:",
        train={"data.source": "{files}/nope.jsonl"},
        search={"fixed": {"data.source": "{files}/nope.jsonl"}}),
    Row("missing column", "data.text='review'", "columns: text, other, label",
        train={"data.text": "review"}, search={"fixed": {"data.text": "review"}}),
    Row("label outside num_labels", "data.label='label'", "0..1 (num_labels=2)",
        train={"data.source": "{files}/three_classes.jsonl", "data.label_names": ["a", "b"]},
        search={"fixed": {"data.source": "{files}/three_classes.jsonl",
                          "data.label_names": ["a", "b"]}}),
    Row("empty split", "data.source", "at least one row",
        train={"data.source": "{files}/{{split}}.jsonl"},
        search={"fixed": {"data.source": "{files}/{{split}}.jsonl"}}),
    Row("unknown model path", "model.name", "an embedded name ['minilm', 'smollm2']",
        train={"model": "{files}/no_such_model"},
        search={"fixed": {"model": "{files}/no_such_model"}}),
    Row("unknown hub name, offline", "model.name", "a Hugging Face hub name",
        train={"model": "no-such-org/no-such-model"},
        search={"fixed": {"model": "no-such-org/no-such-model"}}),
    Row("model folder without a tokenizer", "model.name", "its tokenizer files",
        train={"model": "{files}/no_tokenizer"},
        search={"fixed": {"model": "{files}/no_tokenizer"}}),
    Row("model that needs remote code", "model.trust_remote_code",
        "set model.trust_remote_code: true", train={"model": "{remote}"},
        search={"fixed": {"model": "{remote}"}}),
    Row("model with only pickle weights", "model.allow_pickle_weights",
        "set model.allow_pickle_weights: true", train={"model": "{pickled}"},
        search={"fixed": {"model": "{pickled}"}}),
    Row("a metric the task's evaluation does not report", "metric",
        "allowed: ['eval_loss', 'eval_accuracy', 'eval_f1', 'eval_mcc']",
        train={"metric": "eval_bleu"}, search={"metric": "eval_bleu"}),
    Row("a mode against the metric's direction", "mode", "allowed: 'min'",
        search={"metric": "eval_loss", "mode": "max"}),
    Row("an unknown metric scope", "metric_scope", "['best', 'last']",
        search={"metric_scope": "median"}),
    Row("an unknown head setting", "lora.head", "['full', 'last_linear']",
        train={"lora.head": "everything"}, search={"fixed": {"lora.head": "everything"}}),
    # Checks that used to come only once Ray ran, or never.
    Row("LoRA target the model does not have", "lora.target_modules", "its linear layers",
        **both("lora.target_modules", ["nope_proj"])),
    Row("max_length beyond the model's positions", "data.max_length", "at most 256",
        **both("data.max_length", 100_000)),
    Row("truncated weights", "model.name", "a complete safetensors file",
        **both("model", "{files}/truncated")),
    Row("seed outside what the generators take", "seed", "an integer from 0 to 4294967295",
        train={"seed": -5}, search={"seed": 2**40}),
    Row("negative data seed", "data.seed", "an integer from 0 to 4294967295",
        **both("data.seed", -1)),
    Row("retry forever", "max_failures", "an integer >= 0", **both("max_failures", -1)),
    Row("a one-class classification set", "data.label='label'", "at least two classes",
        **both("data.source", "{files}/one_class.jsonl")),
    Row("a label that is a list", "data.label='label'", "class ids 0, 1",
        **both("data.source", "{files}/list_label.jsonl")),
    Row("a plain file named .gz", "data.source", "BadGzipFile",
        **both("data.source", "{files}/plain.jsonl.gz")),
    Row("a storage scheme no store opens", "storage_path", "s3, gs",
        train={"storage_path": "ftp://host/runs"}, search={"storage_path": "ftp://host/runs"}),
    # A space file's own structure.
    Row("a step of 0", "step", "a step above 0", search={"search": {
        "dropout.attn_logits.rate": {"type": "float", "low": 0.0, "high": 0.3, "step": 0}}}),
    Row("a fractional int step", "step", "an integer >= 1", search={"search": {
        "optim.batch_size": {"type": "int", "low": 2, "high": 8, "step": 0.5}}}),
    Row("a nested warm_start", "warm_start", "a list of preset names",
        search={"warm_start": [["baseline"]]}),
    Row("a choice given twice", "choices", "distinct choices", search={"search": {
        "dropout.ffn_hidden.pattern": {"type": "categorical",
                                       "choices": ["element", "element"]}}}),
    Row("an empty name", "name", "expected a string", train={"name": None}),
    Row("an unknown quantization", "model.quantization", "['none', 'nf4', 'fp4']",
        **both("model.quantization", "int4")),
    Row("4-bit weights without a GPU", "model.quantization", "CUDA GPUs only",
        **both("model.quantization", "nf4")),
]
# Whole files for the rows a dict of keys cannot express.
ROWS += [
    Row("a key given twice", "'optim' is given twice", "a YAML mapping", text={
        "train": "seed: 0\noptim: {lr: 0.001}\noptim: {lr: 0.1}\n",
        "search": "search: {dropout.attn_logits.rate: {type: grid, values: [0.1]}}\n"
                  "optim: 1\noptim: 2\n"}),
    Row("fixed that is not a mapping", "fixed", "a mapping", text={
        "search": "fixed: [model, data.source]\n"
                  "search: {dropout.attn_logits.rate: {type: grid, values: [0.1]}}\n"}),
]

CASES = [pytest.param(row, command, id=f"{command}: {row.name}")
         for row in ROWS for command in ("train", "search")
         if getattr(row, command) is not None or command in row.text]


@pytest.fixture(scope="module")
def paths(tiny_models, toy_data, tmp_path_factory) -> dict[str, str]:
    """The files the rows name: a tiny model, the toy reviews, and the broken variants."""
    root = tmp_path_factory.mktemp("bad_input")
    rows = [{"text": "good", "label": i % 3} for i in range(12)]
    (root / "three_classes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    reviews = Path(toy_data["classification"]["source"]).read_text()
    (root / "train.jsonl").write_text(reviews)
    (root / "validation.jsonl").write_text("")
    (root / "one_class.jsonl").write_text("".join(
        json.dumps({"text": f"good {i}", "label": 1}) + "\n" for i in range(12)))
    (root / "list_label.jsonl").write_text("".join(
        json.dumps({"text": f"good {i}", "label": [i % 2]}) + "\n" for i in range(12)))
    (root / "plain.jsonl.gz").write_text(reviews)
    (root / "truncated").mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        if Path(tiny_models["bert"], name).exists():
            shutil.copy(Path(tiny_models["bert"], name), root / "truncated" / name)
    weights = Path(tiny_models["bert"], "model.safetensors").read_bytes()
    (root / "truncated" / "model.safetensors").write_bytes(weights[:len(weights) // 2])
    (root / "no_tokenizer").mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_models["bert"], name), root / "no_tokenizer" / name)
    return {
        "files": str(root),
        "bert": tiny_models["bert"],
        "reviews": toy_data["classification"]["source"],
        "remote": str(remote_code_model(tiny_models["bert"], root / "remote_code")),
        "pickled": str(pickle_only_model(tiny_models["bert"], root / "pickled")),
    }


def good_keys(paths: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """A run that would train: the tiny BERT on the toy reviews, two in-process steps."""
    return {"model": paths["bert"], "data.source": paths["reviews"],
            "data.task": "classification", "data.max_length": 16, "optim.max_steps": 2,
            "optim.batch_size": 4, "scaling.num_workers": 0,
            "storage_path": str(tmp_path / "runs")}


def write_case(row: Row, command: str, paths: dict[str, str], tmp_path: Path) -> Path:
    path = tmp_path / f"{command}.yaml"
    if command in row.text:
        path.write_text(row.text[command])
        return path
    good = good_keys(paths, tmp_path)
    if command == "train":
        raw: dict[str, Any] = {}
        for key, value in {**good, **row.train}.items():
            set_key(raw, key, _filled(value, paths), str(path))
    else:
        storage = good.pop("storage_path")
        raw = {"fixed": good, "search": {"dropout.attn_logits.rate": grid(0.0, 0.1)},
               "num_samples": 2, "storage_path": storage}
        for key, value in row.search.items():
            if value is None:
                raw.pop(key)
            elif key == "fixed":
                raw["fixed"] = {**raw["fixed"], **value}
            else:
                raw[key] = value
        raw = _filled(raw, paths)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _filled(value: Any, paths: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**paths)
    if isinstance(value, dict):
        return {k: _filled(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, paths) for v in value]
    return value


@pytest.fixture
def nothing_starts(monkeypatch):
    """Fails the test if Ray is started or connected to, or model weights are loaded."""
    import ray

    was_running = ray.is_initialized()
    calls: list[str] = []

    def refuse(what: str):
        def record(*args, **kwargs):
            calls.append(what)
            raise AssertionError(f"{what} was called on bad input")
        return record

    with monkeypatch.context() as patch:
        patch.setattr(ray, "init", refuse("ray.init"))
        patch.setattr(ray, "is_initialized", lambda: False)
        patch.setattr("hk_tune.train.model.load_model", refuse("load_model"))
        patch.setattr("hk_tune.train.loop.load_model", refuse("load_model"))
        yield calls
    assert ray.is_initialized() == was_running


@pytest.mark.parametrize("row, command", CASES)
def test_bad_input_exits_2_with_one_line_before_anything_starts(
        row, command, paths, tmp_path, capsys, nothing_starts):
    path = write_case(row, command, paths, tmp_path)
    assert cli.main([command, str(path)]) == 2
    assert nothing_starts == []
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    message = lines[0]
    assert message.startswith(f"hk-tune: error: {path}: "), message
    for words in (row.key, row.allowed):
        words = words[command] if isinstance(words, dict) else words
        assert words in message, f"{words!r} not in {message!r}"


@pytest.mark.parametrize("uri", ["foo://bar", "s3://bucket/mlflow"])
def test_a_tracking_uri_no_mlflow_store_takes_is_refused_before_ray(
        uri, paths, tmp_path, capsys, nothing_starts):
    path = write_case(Row("good", "", "", search={}), "search", paths, tmp_path)
    assert cli.main(["search", str(path), "--tracking-uri", uri]) == 2
    assert nothing_starts == []
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert uri in line and "allowed: file://, sqlite://" in line


def test_remote_code_runs_when_allowed(paths, tmp_path, capsys, monkeypatch):
    """With trust_remote_code: true the same folder passes the checks and training starts."""

    class TrainingStarted(Exception):
        pass

    def started(cfg):
        raise TrainingStarted(cfg.model.name)

    monkeypatch.setattr("hk_tune.cli.train.fit", started)
    row = Row("allowed", "", "", train={
        "model.name": "{remote}", "model.trust_remote_code": True,
        "lora.target_modules": ["query", "value"]})
    path = write_case(row, "train", paths, tmp_path)
    with pytest.raises(TrainingStarted):
        cli.main(["train", str(path)])
    assert capsys.readouterr().err == ""


SHELL = ("import sys, ray; from hk_tune.cli import main; status = main(sys.argv[1:]); "
         "print('ray started' if ray.is_initialized() else 'no ray', file=sys.stderr); "
         "sys.exit(status)")


@pytest.mark.parametrize("row, command", [
    (ROWS[[r.name for r in ROWS].index("missing dataset file")], "search"),
    (ROWS[[r.name for r in ROWS].index("model that needs remote code")], "train"),
], ids=["search: missing dataset file", "train: model that needs remote code"])
def test_from_the_shell_no_ray_is_started(row, command, paths, tmp_path):
    """The real command in a fresh process: no Ray instance exists after the error."""
    path = write_case(row, command, paths, tmp_path)
    done = subprocess.run([sys.executable, "-c", SHELL, command, str(path)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr
    error, ray_state = done.stderr.splitlines()
    assert error.startswith(f"hk-tune: error: {path}: ") and row.key in error
    assert ray_state == "no ray"
