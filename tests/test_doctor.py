"""`hk-tune doctor` through the real CLI: a healthy setup on a tiny model, broken ones (storage
that cannot be written, a tracking server that does not answer, a missing data file, a Ray
address with nothing behind it), bad input, and a real connection to a running Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hk_tune import cli

CHECKS = ["packages", "ray", "resources", "storage", "tracking", "model", "data"]


@pytest.fixture
def no_ray_started(monkeypatch):
    """Doctor without --address must not start Ray: any ray.init fails the test. Ray also looks
    not yet started, so a session an earlier test left running cannot hide a call."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("doctor started Ray without --address")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)


def run_config(tiny_models, toy_data, tmp_path: Path, **changes) -> Path:
    raw = {"model": tiny_models["bert"], "data": {**toy_data["classification"], "max_length": 16},
           "optim": {"max_steps": 2, "batch_size": 4}, "scaling": {"num_workers": 1},
           "storage_path": str(tmp_path / "runs")}
    raw.update(changes)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def space_file(tiny_models, toy_data, tmp_path: Path, **settings) -> Path:
    data = toy_data["classification"]
    raw = {"fixed": {"model": tiny_models["bert"], "data.source": data["source"],
                     "data.task": data["task"], "optim.max_steps": 2},
           "search": {"dropout.attn_logits.rate": {"type": "grid", "values": [0.0, 0.1]}},
           "num_samples": 4, "max_concurrent": 2, "storage_path": str(tmp_path / "runs"),
           **settings}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def doctor(capsys, *args: str) -> tuple[int, dict[str, str]]:
    """The exit status and each check's line, by check name."""
    status = cli.main(["doctor", *args])
    lines = capsys.readouterr().out.strip().splitlines()
    checks = {}
    for line in lines[1:]:
        status_word, rest = line.split(maxsplit=1)
        name = rest.split(":", 1)[0]
        checks[name] = line
        assert status_word in ("ok", "problem"), line
    return status, checks


def test_healthy_run_config(tiny_models, toy_data, tmp_path, capsys, no_ray_started):
    path = run_config(tiny_models, toy_data, tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    status, checks = doctor(capsys, str(path), "--tracking-uri", uri)
    assert status == 0, checks
    assert list(checks) == CHECKS
    assert all(line.startswith("ok ") for line in checks.values()), checks
    assert "not started now" in checks["ray"] and "CPU" in checks["ray"]
    assert "the run needs 1 CPU" in checks["resources"]
    assert f"{tmp_path / 'runs'} will be created in {tmp_path}" in checks["storage"]
    assert "does not exist yet" in checks["tracking"]
    assert "(bert): config and tokenizer load" in checks["model"]
    assert "labels ['negative', 'positive']" in checks["data"]
    # Checked, not made: no store, no run folder.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()


def test_healthy_space_with_an_existing_store(tiny_models, toy_data, tmp_path, capsys,
                                              no_ray_started):
    from hk_tune.tracking import SearchTracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    SearchTracker(uri).check()  # makes the store, as a first search would
    (tmp_path / "runs").mkdir()
    path = space_file(tiny_models, toy_data, tmp_path)
    status, checks = doctor(capsys, str(path), "--tracking-uri", uri)
    assert status == 0, checks
    assert f"MLflow store {uri} answers" in checks["tracking"]
    assert f"storage_path {tmp_path / 'runs'} is writable" in checks["storage"]
    assert "a trial needs 1 CPU;" in checks["resources"] and "(4 trials in all)" in checks[
        "resources"]


def test_broken_environment_is_one_problem_line_each(tiny_models, toy_data, tmp_path, capsys,
                                                     no_ray_started):
    (tmp_path / "a_file").write_text("not a folder")
    path = run_config(tiny_models, toy_data, tmp_path)
    status, checks = doctor(
        capsys, str(path), f"storage_path={tmp_path / 'a_file' / 'runs'}",
        f"data.source={tmp_path / 'nope.jsonl'}", "--tracking-uri", "http://127.0.0.1:1")
    assert status == 1
    assert [name for name, line in checks.items() if line.startswith("problem")] == [
        "storage", "tracking", "data"]
    assert "is a file, so no folder can be made under it" in checks["storage"]
    assert "fix: set storage_path=" in checks["storage"]
    assert "http://127.0.0.1:1 is unreachable" in checks["tracking"]
    assert "--tracking-uri" in checks["tracking"]
    assert "nope.jsonl': no such file or folder; allowed sources:" in checks["data"]
    assert f"fix: change that key in {path}" in checks["data"]
    assert checks["model"].startswith("ok ")


def test_a_trial_that_cannot_fit_is_a_problem(tiny_models, toy_data, tmp_path, capsys,
                                              no_ray_started):
    path = space_file(tiny_models, toy_data, tmp_path,
                      resources={"num_workers": 1, "cpus_per_worker": 4096})
    status, checks = doctor(capsys, str(path))
    assert status == 1
    assert "a trial needs 4096 CPUs;" in checks["resources"] and "none can start" in checks[
        "resources"]
    assert "fix: lower resources.cpus_per_worker" in checks["resources"]


def test_gpu_trials_need_a_torch_that_can_use_the_gpu(tiny_models, toy_data, tmp_path, capsys,
                                                      no_ray_started, monkeypatch):
    import torch

    path = space_file(tiny_models, toy_data, tmp_path,
                      resources={"num_workers": 1, "gpus_per_worker": 1})
    if torch.cuda.is_available():
        pytest.skip("torch here can use a GPU")
    status, checks = doctor(capsys, str(path))
    assert status == 1 and "so none can start" in checks["resources"]
    # A GPU machine with this CPU-only torch: Ray would schedule GPU trials torch cannot run.
    # (The driver's GPU count is replaced; this machine has no GPU to count.)
    monkeypatch.setattr("hk_tune.search.resources.local_ray_gpus", lambda: 1)
    status, checks = doctor(capsys, str(path))
    assert status == 1
    assert f"Ray sees 1 GPU here but torch {torch.__version__} can use 0" in checks["resources"]
    assert "fix: install a CUDA build of the pinned torch" in checks["resources"]


def test_an_sqlite_file_of_something_else_is_left_as_it_is(tmp_path, capsys, monkeypatch,
                                                           no_ray_started):
    import sqlite3

    monkeypatch.chdir(tmp_path)
    other = tmp_path / "notes.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (text)")
    uri = f"sqlite:///{other}"
    status, checks = doctor(capsys, "--tracking-uri", uri)
    assert status == 1
    assert "is an SQLite database of something else (tables ['notes'])" in checks["tracking"]
    with sqlite3.connect(other) as connection:  # MLflow's tables were not made in it
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    assert tables == ["notes"]


def test_unreachable_ray_address(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default tracking store and storage path live here
    status, checks = doctor(capsys, "--address", "127.0.0.1:1")
    assert status == 1
    assert checks["ray"].startswith("problem  ray: Ray at 127.0.0.1:1 does not answer")
    assert "resources" not in checks  # no file given: nothing to fit


@pytest.mark.parametrize("text, words", [
    ("fixed: {model: x}\nsearch: {}\n", "search: empty"),
    ("optim:\n  lrr: 1\n", "unknown key 'optim.lrr'"),
    ("seed: 0\n\tname: x\n", "not valid YAML (line 2"),
])
def test_bad_input_exits_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert cli.main(["doctor", str(path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"hk-tune: error: {path}: ") and words in error


def test_connects_to_a_running_cluster(ray_session, tmp_path):
    """A real connection, from a fresh process, to the Ray instance the tests run."""
    import ray

    address = ray.get_runtime_context().gcs_address
    done = subprocess.run([sys.executable, "-m", "hk_tune.cli", "doctor", "--address", address,
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    ray_line = next(line for line in done.stdout.splitlines() if " ray: " in line)
    assert ray_line.startswith(f"ok       ray: connected to {address}: 1 node(s), 2 CPUs"), (
        done.stdout + done.stderr)
