"""The README's Python examples, run as written (in a scratch folder): the Trainer example in
the default suite, the SFT and search examples (a real SmolLM2 and a real search) in the slow
one."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def example(name: str) -> str:
    found = re.findall(rf"```python\n# example: {name}\n(.*?)```", (ROOT / "README.md").read_text(),
                       flags=re.S)
    assert len(found) == 1, f"one README example named {name}"
    return found[0]


def run_example(name: str, folder: Path, capsys) -> tuple[dict, str]:
    shutil.copytree(ROOT / "search_spaces", folder / "search_spaces")
    here = os.getcwd()
    os.chdir(folder)
    try:
        scope: dict = {}
        exec(compile(example(name), f"README.md example {name}", "exec"), scope)
    finally:
        os.chdir(here)
    return scope, capsys.readouterr().out


def test_the_trainer_example(tmp_path, capsys):
    scope, out = run_example("trainer", tmp_path, capsys)
    logged = [row for row in scope["trainer"].state.log_history if "consistency_loss" in row]
    assert len(logged) == 2 and all(row["consistency_loss"] > 0 for row in logged)
    assert "'consistency_loss'" in out  # the Trainer's own log lines carry it
    assert out.strip().splitlines()[-1].startswith("[")  # the example's print


@pytest.mark.slow
def test_the_sft_example(tmp_path, capsys):
    scope, _ = run_example("sft", tmp_path, capsys)
    logged = [row for row in scope["trainer"].state.log_history if "consistency_loss" in row]
    assert len(logged) == 2 and all(row["consistency_loss"] > 0 for row in logged)


@pytest.mark.slow
def test_the_search_example(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    scope, out = run_example("search", tmp_path, capsys)
    result, same = scope["result"], scope["same"]
    assert same == result and len(result.trials) == 2
    assert result.best.name in out and Path(result.adapter_path).is_dir()
