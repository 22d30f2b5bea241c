"""RunConfig: shipped configs load, overrides apply, every malformed input is a ConfigError that
names the file and the key, and the dict form round-trips (it is what Ray workers receive)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hk_tune
from hk_tune.config.files import apply_overrides
from hk_tune.config.run import RunConfig, load_run_config
from hk_tune.dropout import PRESETS, DropoutSpec
from hk_tune.errors import ConfigError

CONFIGS = sorted((Path(hk_tune.__file__).parent / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_round_trip(path):
    cfg = load_run_config(path)
    assert cfg.name == path.stem  # the run is named after its file, never a timestamp
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert f"hk-tune train hk_tune/configs/{path.name}" in path.read_text()  # header command
    assert cfg.optim.epochs is not None and cfg.optim.max_steps is None  # budgets in epochs


def test_defaults_are_the_paper_baseline(tmp_path):
    cfg = load_run_config(write(tmp_path, "data: {source: bundled:sentiment}\n"))
    assert cfg.dropout == PRESETS["baseline"]
    assert (cfg.lora.rank, cfg.lora.alpha, cfg.optim.warmup_ratio) == (8, 16.0, 0.06)
    assert cfg.model.name == "minilm" and cfg.model.trust_remote_code is False
    assert cfg.scaling.num_workers == 1 and cfg.scaling.cpus_per_worker == 1.0


def test_empty_file_is_all_defaults(tmp_path):
    assert load_run_config(write(tmp_path, "")) == RunConfig(name="run")


def test_overrides_are_parsed_as_yaml(tmp_path):
    path = write(tmp_path, "model: minilm\noptim: {max_steps: 10}\n")
    cfg = load_run_config(path, [
        "optim.lr=1e-4",  # PyYAML alone would leave this a string
        "optim.max_steps=20",
        "model.trust_remote_code=true",
        "lora.target_modules=[query,key,value]",
        "seed=3",
        "name=other",
        "data.max_train_samples=100",
    ])
    assert cfg.optim.lr == 1e-4 and cfg.optim.max_steps == 20
    assert cfg.model == cfg.model.__class__(name="minilm", trust_remote_code=True)
    assert cfg.lora.target_modules == ("query", "key", "value")
    assert (cfg.seed, cfg.name, cfg.data.max_train_samples) == (3, "other", 100)


@pytest.mark.parametrize(
    "section",
    [
        "dropout: hiddenkey\n",
        "dropout: {preset: hiddenkey}\n",
        "dropout: {preset: hiddenkey_minus, consistency.loss: kl}\n",
        "dropout: {preset: hiddenkey_minus, consistency: {loss: kl}}\n",
    ],
)
def test_dropout_section_forms(tmp_path, section):
    assert load_run_config(write(tmp_path, section)).dropout == PRESETS["hiddenkey"]


def test_dropout_overrides_keep_their_dots(tmp_path):
    cfg = load_run_config(write(tmp_path, "dropout: hiddenkey\n"), [
        "dropout.attn_logits.rate=0.2", "dropout.consistency.weight=0.5",
    ])
    expected = DropoutSpec.from_dict(
        {"preset": "hiddenkey", "attn_logits.rate": 0.2, "consistency.weight": 0.5}
    )
    assert cfg.dropout == expected


def test_apply_overrides_leaves_the_input_alone():
    raw = {"optim": {"lr": 1.0}}
    assert apply_overrides(raw, ["optim.lr=2"], "x.yaml") == {"optim": {"lr": 2}}
    assert raw == {"optim": {"lr": 1.0}}


@pytest.mark.parametrize(
    "text, overrides, key, allowed",
    [
        ("optim: {lrr: 0.1}\n", [], "optim.lrr", "batch_size"),
        ("optimizer: {lr: 0.1}\n", [], "optimizer", "optim"),
        ("lora: {rank: 8, dropout_rate: 0.1}\n", [], "lora.dropout_rate", "target_modules"),
        ("optim: {lr: fast}\n", [], "optim.lr", "a number"),
        ("optim: {max_steps: 1.5}\n", [], "optim.max_steps", "an integer"),
        ("optim: {max_steps: true}\n", [], "optim.max_steps", "an integer"),
        ("scaling: {use_gpu: 1}\n", [], "scaling.use_gpu", "true or false"),
        ("lora: {target_modules: [1, 2]}\n", [], "lora.target_modules", "list of str"),
        ("optim: {max_steps: 5, epochs: 1}\n", [], "max_steps", "one budget"),
        ("optim: {lr: -1}\n", [], "optim.lr", "> 0"),
        ("optim: {warmup_ratio: 1.5}\n", [], "optim.warmup_ratio", "[0, 1)"),
        ("model: {dtype: float8}\n", [], "model.dtype", "bfloat16"),
        ("dropout: hiddenkeyy\n", [], "preset", "hiddenkey"),
        ("dropout: {attn_logits.pattern: diagonal}\n", [], "attn_logits.pattern", "column"),
        ("dropout: {attn_logits.rate: 1.5}\n", [], "attn_logits.rate", "[0, 1)"),
        ("dropout: {attn_logit.rate: 0.1}\n", [], "attn_logit.rate", "attn_logits.rate"),
        ("data: {sorce: bundled:snli}\n", [], "sorce", "source"),
        ("data: {max_length: many}\n", [], "max_length", "int"),
        ("name: a/b\n", [], "name", "folder name"),
        ("", ["optim.lr"], "optim.lr", "key=value"),
        ("", ["optim.lrr=1"], "optim.lrr", "batch_size"),
        ("", ["seed=abc"], "seed", "an integer"),
        ("model: minilm\n", ["model.nme=x"], "model.nme", "trust_remote_code"),
        ("- a list\n", [], "run.yaml", "mapping"),
        ("optim: {lr: [\n", [], "run.yaml", "YAML"),
    ],
)
def test_bad_input_names_file_key_and_allowed(tmp_path, text, overrides, key, allowed):
    with pytest.raises(ConfigError) as caught:
        load_run_config(write(tmp_path, text), overrides)
    message = str(caught.value)
    assert "run.yaml" in message and key in message and allowed in message
    assert "\n" not in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_run_config(tmp_path / "nope.yaml")


def test_to_dict_is_plain_data(tmp_path):
    cfg = load_run_config(write(tmp_path, "dropout: hiddenkey\nlora: {target_modules: [query]}\n"))
    plain = cfg.to_dict()
    assert plain["lora"]["target_modules"] == ["query"]
    assert plain["dropout"]["consistency.loss"] == "kl"

    def leaves(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from leaves(v)
        elif isinstance(value, list):
            for v in value:
                yield from leaves(v)
        else:
            yield value

    assert all(v is None or isinstance(v, (str, int, float, bool)) for v in leaves(plain))
