"""Fuzzing the input from its schema: run configs and space files built from the config layer's
own field table, each with one mutation (a wrong type, a number out of range or in another
YAML spelling, an unknown key, nested junk), in the file or as an override. For each, the
command either passes its checks and reaches the point where Ray would start, or exits 2 with
one line naming the file and the key; never a traceback, never Ray started, never slow.

Bounded (a fixed number of examples, derandomized so that CI sees the same ones every run):
the default suite's time budget holds it.
"""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hk_tune import cli
from hk_tune.config.files import set_key
from hk_tune.config.run import SCALARS, SECTIONS

# Keys whose valid values need a real model, data or cluster (set by the base config), or
# that only the dropout spec knows (its own tests walk it).
SKIPPED = {"model.name", "model.revision", "data.source", "data.text", "data.text_pair",
           "data.label", "data.prompt", "data.target", "data.task", "data.label_names",
           "storage_path", "name"}
# Bad values of every kind, as YAML text: a wrong type, out of range, junk.
JUNK = ["fast", "[1, 2]", "{a: 1}", "null", "true", "-1", "-1e9", "1e30", "1180591620717411303424",
        ".nan", ".inf", "-.inf", "0", "''", "[[[]]]", "{optim: {lr: 1}}"]
# One number in the spellings YAML 1.2, JSON and Python write.
SPELLINGS = ["5e-2", "5E-2", "0.05", ".05", "+5.0e-2"]
MAX_SECONDS = 10  # a check that takes longer is a hang in waiting


def schema_keys() -> list[tuple[str, typing.Any]]:
    """Every dotted run-config key the config layer declares, with its type."""
    keys = [(name, hint) for name, hint in SCALARS.items()]
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        keys += [(f"{section}.{f.name}", hints[f.name]) for f in dataclasses.fields(cls)]
    return [(key, hint) for key, hint in keys if key not in SKIPPED]


KEYS = schema_keys()


def is_number(hint) -> bool:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(a in (int, float) for a in args)
    return hint in (int, float)


@st.composite
def mutations(draw) -> tuple[str, str]:
    """(dotted key, YAML text of its value): one mutation of a good config."""
    kind = draw(st.sampled_from(["junk", "spelling", "unknown key", "unknown section key"]))
    key, hint = draw(st.sampled_from(KEYS))
    if kind == "spelling" and is_number(hint):
        return key, draw(st.sampled_from(SPELLINGS))
    if kind == "unknown key":
        return key + draw(st.sampled_from(["x", "_", "s"])), "1"
    if kind == "unknown section key":
        return draw(st.sampled_from(["optimm.lr", "lora.rank.x", "dat.seed"])), "1"
    return key, draw(st.sampled_from(JUNK))


def good_run(paths: dict, tmp_path: Path) -> dict:
    return {"model": paths["bert"], "data": {"source": paths["reviews"],
                                             "task": "classification", "max_length": 16},
            "optim": {"max_steps": 2, "batch_size": 4}, "scaling": {"num_workers": 0},
            "storage_path": str(tmp_path / "runs")}


@pytest.fixture(scope="module")
def paths(tiny_models, toy_data) -> dict:
    return {"bert": tiny_models["bert"], "reviews": toy_data["classification"]["source"]}


class RayStarted(Exception):
    """The input passed every check: the command would start Ray now."""


@pytest.fixture
def no_ray(monkeypatch):
    import ray

    def started(*args, **kwargs):
        raise RayStarted

    monkeypatch.setattr(ray, "init", started)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr("hk_tune.train.model.load_model", started)
    monkeypatch.setattr("hk_tune.train.loop.load_model", started)


def run_checked(argv: list[str], path: Path, key: str, capsys) -> None:
    """Runs the command; asserts it passed its checks, or refused in one line naming `path`
    and the key (or, for a value YAML cannot hold, the line it is on)."""
    capsys.readouterr()
    started = time.monotonic()
    try:
        status = cli.main(argv)
    except RayStarted:
        status = None
    except SystemExit as error:  # argparse: a bad option, never a bad config
        pytest.fail(f"{argv}: exited {error.code}")
    took = time.monotonic() - started
    assert took < MAX_SECONDS, f"{argv}: {took:.1f} s"
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("hk-tune:")]
    if status is None:
        assert not lines, lines
        return
    assert status == 2 and len(lines) == 1, (argv, lines)
    message = lines[0]
    assert message.startswith(f"hk-tune: error: {path}: "), message
    named = [part for part in key.split(".") if part in message]
    assert named or "line " in message, (key, message)


settings_ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings_
@given(mutation=mutations(), in_file=st.booleans())
def test_a_mutated_run_config_passes_or_is_refused_in_one_line(
        mutation, in_file, paths, tmp_path, no_ray, capsys):
    key, text = mutation
    path = tmp_path / "run.yaml"
    raw = good_run(paths, tmp_path)
    if in_file:
        set_key(raw, key, "@@VALUE@@", str(path))
        path.write_text(yaml.safe_dump(raw).replace("'@@VALUE@@'", text))
        argv = ["train", str(path)]
    else:
        path.write_text(yaml.safe_dump(raw))
        argv = ["train", str(path), f"{key}={text}"]
    run_checked(argv, path, key, capsys)


SPACE_SETTINGS = ["num_samples", "max_concurrent", "seed", "metric", "mode", "metric_scope",
                  "executor", "scheduler.grace_period", "scheduler.reduction_factor",
                  "confirm.top_k", "confirm.seeds", "warm_start", "time_budget_s", "stop",
                  "search.dropout.attn_logits.rate.low", "search.dropout.attn_logits.rate.high",
                  "search.dropout.attn_logits.rate.step", "search.dropout.attn_logits.rate.type"]


@st.composite
def space_mutations(draw) -> tuple[str, str]:
    if draw(st.booleans()):  # a fixed run-config key
        key, text = draw(mutations())
        return f"fixed.{key}", text
    key = draw(st.sampled_from(SPACE_SETTINGS))
    return key, draw(st.sampled_from(JUNK + SPELLINGS))


@settings_
@given(mutation=space_mutations())
def test_a_mutated_space_passes_or_is_refused_in_one_line(mutation, paths, tmp_path, no_ray,
                                                          capsys):
    key, text = mutation
    path = tmp_path / "space.yaml"
    run = good_run(paths, tmp_path)
    fixed = {"model": run["model"], "data.source": paths["reviews"],
             "data.task": "classification", "data.max_length": 16, "optim.max_steps": 2,
             "optim.batch_size": 4}
    raw = {"fixed": fixed, "num_samples": 2, "storage_path": run["storage_path"],
           "search": {"dropout.attn_logits.rate": {"type": "float", "low": 0.0, "high": 0.3}}}
    if key.startswith("fixed."):
        raw["fixed"][key.removeprefix("fixed.")] = "@@VALUE@@"
    elif key.startswith("search."):
        raw["search"]["dropout.attn_logits.rate"][key.rsplit(".", 1)[-1]] = "@@VALUE@@"
    else:
        set_key(raw, key, "@@VALUE@@", str(path))
    path.write_text(yaml.safe_dump(raw).replace("'@@VALUE@@'", text))
    run_checked(["search", str(path), f"--tracking-uri=sqlite:///{tmp_path / 'm.db'}"], path,
                key, capsys)
