"""A real search on local Ray (the shared session): a tiny model, 4 trials with ASHA, MLflow in a
local sqlite store; then `hk-tune train` on the best configuration, and `hk-tune best`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from hk_tune import cli

pytestmark = pytest.mark.usefixtures("ray_session")


def tiny_space(tmp_path, tiny_models, toy_data, **settings) -> str:
    raw = {
        "fixed": {"model": tiny_models["bert"], "data.source": toy_data["pair"]["source"],
                  "data.task": "classification", "data.text_pair": "other",
                  "data.max_length": 32, "optim.lr": 5e-3, "optim.batch_size": 4,
                  "optim.max_steps": 4, "optim.eval_every": 2},
        "search": {
            "dropout.attn_logits": {"type": "categorical", "choices": {
                "off": {}, "column": {"dropout.attn_logits.rate": {
                    "type": "float", "low": 0.05, "high": 0.3}}}},
            "dropout.ffn_hidden": {"type": "categorical", "choices": {
                "off": {}, "element": {"dropout.ffn_hidden.rate": {
                    "type": "grid", "values": [0.05, 0.1]}}}},
            "dropout.consistency.loss": {"type": "categorical", "choices": {
                "none": {}, "kl": {"dropout.consistency.weight": {
                    "type": "log_float", "low": 0.01, "high": 10}}}},
        },
        "num_samples": 4, "warm_start": ["baseline", "hiddenkey"],
        "scheduler": {"type": "asha", "grace_period": 1},
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
        "storage_path": str(tmp_path / "runs"), **settings,
    }
    path = tmp_path / "tiny.yaml"
    path.write_text("# a tiny search\n" + yaml.safe_dump(raw))
    return str(path)


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory, tiny_models, toy_data):
    tmp_path = tmp_path_factory.mktemp("search")
    # One trial at a time: ASHA's decisions then do not depend on which of two concurrent
    # trials reports first, so the Python API's run below can find the same trials.
    space = tiny_space(tmp_path, tiny_models, toy_data, confirm={"top_k": 1, "seeds": 2},
                       max_concurrent=1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import io
    from contextlib import redirect_stderr, redirect_stdout

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = cli.main(["search", space, "--tracking-uri", uri, "--json"])
    sys.stderr.write(err.getvalue()[-5000:])  # shown when a test fails
    (tmp_path / "search.err").write_text(err.getvalue())
    return status, out.getvalue(), tmp_path, uri


def test_search_ranks_trials_and_writes_a_best_config(finished_search):
    status, out, tmp_path, _ = finished_search
    assert status == 0, out
    final = json.loads(out.strip().splitlines()[-1])
    assert final["num_trials"] == 4
    assert final["metric"] == "eval_accuracy" and 0.0 <= final["value"] <= 1.0
    assert final["median"] is not None
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    names = [row["name"] for row in summary["results"]]
    assert "baseline" in names and any(n.startswith("hiddenkey") for n in names)
    statuses = {row["status"] for row in summary["results"]}
    assert statuses <= {"completed", "stopped"}
    assert "configuration" in out and "eval_accuracy" in out


def test_best_config_trains_to_the_winning_trials_numbers(finished_search, capsys):
    """`hk-tune train` of the written best configuration is the winning trial again: the same
    final numbers, best evaluation and its step as the trial logged in MLflow."""
    from mlflow import MlflowClient

    _, out, tmp_path, uri = finished_search
    best_path = json.loads(out.strip().splitlines()[-1])["best_config_path"]
    assert cli.main(["train", best_path, "--json"]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["step"] == 4

    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    best = summary["best"]
    assert (final["best_eval_accuracy"], final["best_step"]) == (best["metric"],
                                                                 best["best_step"])
    assert final["eval_accuracy"] == best["last"]
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(
        [summary["experiment_id"]], f"tags.`hk_tune.trial_id` = '{best['trial_id']}'")
    for key in ("train_loss", "train_consistency_loss", "eval_loss", "eval_accuracy",
                "eval_f1", "best_eval_accuracy", "best_step"):
        assert run.data.metrics[key] == final[key], key


def test_the_best_trials_adapter_exports_and_loads_with_peft(finished_search, tmp_path,
                                                              tiny_models, capsys):
    """`hk-tune export` writes the winner's adapter at its best step; peft loads it onto the
    base model, and evaluating it gives the trial's best value again."""
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from hk_tune.config.run import RunConfig
    from hk_tune.train.data import load_task, tokenize
    from hk_tune.train.evaluate import evaluate
    from hk_tune.train.model import load_tokenizer

    _, _, search_tmp, _ = finished_search
    folder = search_tmp / "runs" / "tiny"
    summary = json.loads((folder / "summary.json").read_text())
    destination = tmp_path / "exported"
    assert cli.main(["export", str(folder), str(destination)]) == 0
    assert f"at step {summary['best']['best_step']}" in capsys.readouterr().out
    assert {p.name for p in destination.iterdir()} == {
        "adapter_model.safetensors", "adapter_config.json", "export.json"}
    about = json.loads((destination / "export.json").read_text())
    assert about["step"] == summary["best"]["best_step"]

    cfg = RunConfig.from_dict(summary["best_config"])
    tokenizer = load_tokenizer(cfg.model)
    data = load_task(cfg.data)
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_models["bert"], num_labels=data.num_labels)
    model = PeftModel.from_pretrained(base, str(destination))
    _, eval_ds = tokenize(data, tokenizer, cfg.data.max_length)
    metrics = evaluate(model, eval_ds, data.task, data.num_labels, tokenizer, 4,
                       cfg.generation, rank=0, world_size=1)
    assert metrics["eval_accuracy"] == summary["best"]["metric"]

    # Exporting again over it is refused: nothing already written is replaced.
    assert cli.main(["export", str(folder), str(destination)]) == 2
    assert "not an empty folder" in capsys.readouterr().err


def test_best_prints_the_finished_search(finished_search, capsys):
    _, _, tmp_path, _ = finished_search
    assert cli.main(["best", str(tmp_path / "runs" / "tiny"), "--json"]) == 0
    out = capsys.readouterr().out
    assert "seed confirmation" in out
    assert json.loads(out.strip().splitlines()[-1])["num_trials"] == 4


def test_mlflow_holds_one_parent_and_a_child_per_trial(finished_search):
    from mlflow import MlflowClient

    _, _, tmp_path, uri = finished_search
    client = MlflowClient(tracking_uri=uri)
    (experiment,) = [e for e in client.search_experiments() if e.name == "hk_tune"]
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parents = [r for r in runs if r.data.tags.get("hk_tune.kind") == "search"]
    trials = [r for r in runs if r.data.tags.get("hk_tune.kind") == "trial"]
    confirmations = [r for r in runs if r.data.tags.get("hk_tune.kind") == "confirmation"]
    assert len(parents) == 1 and len(trials) == 4
    assert len(confirmations) >= 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    for trial in trials:
        assert trial.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert trial.data.tags["hk_tune.status"] in ("completed", "stopped")
        assert "attn_logits.rate" in trial.data.params
        history = client.get_metric_history(trial.info.run_id, "eval_accuracy")
        assert [m.step for m in history][:1] == [2]
    for run in confirmations:  # the confirmation's curve comes from Tune's per-trial history
        assert client.get_metric_history(run.info.run_id, "eval_accuracy")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "best_config.yaml", "confirmation.yaml", "curves.png",
            "best_adapter"} <= artifacts
    adapter = {a.path for a in client.list_artifacts(parent.info.run_id, "best_adapter")}
    assert "best_adapter/adapter_model.safetensors" in adapter

    # The number the winner is chosen by: the confirmation median, on the parent and on the
    # confirmed trial's own run.
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    winner = summary["confirmation"]["winner"]
    assert parent.data.metrics["confirmation.median"] == winner["median"]
    assert parent.data.metrics["confirmation.seeds"] == 2
    (confirmed,) = [t for t in trials if t.data.tags["hk_tune.trial_id"] == winner["trial_id"]]
    assert confirmed.data.metrics["confirmation.median"] == winner["median"]
    assert confirmed.data.metrics["confirmation.min"] == min(winner["values"])


def test_a_search_leaves_running_the_ray_it_found(finished_search):
    import ray

    _, _, tmp_path, _ = finished_search
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    assert ray.is_initialized()
    assert "Ray shutdown (rest)" not in summary["timings_s"]


SEARCH_IN_A_FRESH_PROCESS = """
import sys, ray
from hk_tune.cli import main
init = ray.init
def spy(*args, **kwargs):  # the real ray.init; what it was given is printed at the end
    print("dashboard", kwargs.get("include_dashboard"))
    return init(*args, **kwargs)
ray.init = spy
status = main(sys.argv[1:])
print("ray running" if ray.is_initialized() else "ray stopped")
sys.exit(status)
"""


@pytest.mark.parametrize("flags", [[], ["--ray-dashboard"]])
def test_a_search_that_started_ray_stops_it_before_returning(tmp_path, tiny_models, toy_data,
                                                             flags):
    """In a fresh process the search starts local Ray, without its dashboard unless asked, and
    shuts it down while the results are written (not at the interpreter's exit); the results
    are whole."""
    import subprocess
    import sys

    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=1, scheduler="none",
                       warm_start=[])
    done = subprocess.run([sys.executable, "-c", SEARCH_IN_A_FRESH_PROCESS, "search", space,
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", *flags],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_ADDRESS": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert f"dashboard {bool(flags)}" in lines
    assert lines[-1] == "ray stopped"
    summary = json.loads((tmp_path / "runs" / "tiny" / "summary.json").read_text())
    assert "Ray shutdown (rest)" in summary["timings_s"]
    assert len(summary["results"]) == 1 and summary["best_config_path"]


def test_unreachable_tracking_server_fails_before_any_trial(tmp_path, tiny_models, toy_data,
                                                            capsys):
    """The store is checked while Ray starts: a server that does not answer is a one-line error
    naming it, exit status 2, and no search is left behind."""
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    space = tiny_space(tmp_path, tiny_models, toy_data)
    uri = f"http://127.0.0.1:{port}"
    assert cli.main(["search", space, "--tracking-uri", uri]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("hk-tune: error:") and uri in last
    assert not (tmp_path / "runs" / "tiny" / "search.json").exists()


def test_older_checkpoints_are_deleted_once_tunes_saved_state_stops_naming_them(
        tmp_path, tiny_models, toy_data, monkeypatch):
    # Four evaluations a trial, two checkpoints kept: Tune deletes the first two of each trial
    # through the search's filesystem, which holds each until a saved state no longer names it.
    from hk_tune.search import tune_state

    released = []
    release = tune_state.release_checkpoints

    def spy(search, state):
        before = {p for paths in tune_state._WAITING.values() for p in paths}
        release(search, state)
        released.extend(before - {p for paths in tune_state._WAITING.values() for p in paths})

    monkeypatch.setattr(tune_state, "release_checkpoints", spy)
    # Scored by the last evaluation, Tune keeps the latest two checkpoints (scored by the best,
    # it would keep the best ones instead: test_trial_scores.py).
    space = tiny_space(tmp_path, tiny_models, toy_data, num_samples=2, scheduler="none",
                       warm_start=[], metric_scope="last")
    raw = yaml.safe_load(Path(space).read_text())
    raw["fixed"]["optim.eval_every"] = 1
    Path(space).write_text(yaml.safe_dump(raw))
    assert cli.main(["search", space, "--tracking-uri",
                     f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 0
    folder = tmp_path / "runs" / "tiny"
    trials = sorted(folder.glob("trial_*"))
    assert len(trials) == 2
    for trial in trials:
        assert sorted(p.name for p in trial.glob("checkpoint_*")) == [
            "checkpoint_000002", "checkpoint_000003"]
    assert sorted(released) == sorted(str(t / f"checkpoint_00000{i}") for t in trials
                                      for i in (0, 1))
    (state,) = folder.glob("experiment_state-*.json")
    assert all(str(t / "checkpoint_000003").encode().hex() in state.read_text() for t in trials)


def test_load_result_reads_the_finished_search_as_typed_results(finished_search):
    from hk_tune.search import SearchResult, load_result

    _, out, tmp_path, uri = finished_search
    final = json.loads(out.strip().splitlines()[-1])
    result = load_result(tmp_path / "runs" / "tiny")
    assert isinstance(result, SearchResult)
    assert result.best_config == final["best_config"]
    assert str(result.best_config_path) == final["best_config_path"]
    assert (result.best.name, result.best.score) == (final["name"], final["value"])
    assert len(result.trials) == 4 and result.best in result.trials
    completed = [t.score for t in result.trials if t.status == "completed"]
    assert completed == sorted(completed, reverse=True)  # ranked, best first (mode max)
    assert result.confirmation is not None
    assert result.confirmation.winner.median == final["median"]
    assert result.confirmation.winner.trial_id == result.best.trial_id
    assert len(result.confirmation.winner.values) == 2  # the trial and one more seed
    adapter = Path(result.adapter_path)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()
    assert result.tracking_uri == uri and result.parent_run_id
    with pytest.raises(Exception, match="no finished search here"):
        load_result(tmp_path)


def test_run_search_from_python_finds_what_the_command_line_found(finished_search, tmp_path,
                                                                  tiny_models, toy_data):
    """The same space (a new folder and name) through `run_search`: the same trials, the same
    ranking and the same best configuration as `hk-tune search`."""
    from hk_tune.search import load_result, run_search

    _, _, cli_path, _ = finished_search
    space = tiny_space(tmp_path, tiny_models, toy_data, confirm={"top_k": 1, "seeds": 2},
                       max_concurrent=1)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = run_search(space, overrides=["name=from_python", "experiment=dropout study"],
                        tracking_uri=uri)
    found = load_result(cli_path / "runs" / "tiny")
    assert result.name == "from_python"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dropout study")  # the space's `experiment`
    assert client.get_run(result.parent_run_id).info.experiment_id == experiment.experiment_id
    assert client.get_experiment_by_name("hk_tune") is None
    assert [(t.name, t.score, t.status) for t in result.trials] == [
        (t.name, t.score, t.status) for t in found.trials]
    ignore = ("name", "storage_path")
    assert ({k: v for k, v in result.best_config.items() if k not in ignore}
            == {k: v for k, v in found.best_config.items() if k not in ignore})
    assert result.confirmation.winner.median == found.confirmation.winner.median


def test_stdout_is_the_results_and_stderr_the_progress(finished_search):
    """`hk-tune search --json`: stdout is the ranked table and the JSON line, nothing of Tune's;
    the progress (one line per evaluation, with the trial's readable name) is on stderr."""
    from hk_tune.cli.search import format_best
    from hk_tune.search.results import json_line, read_summary

    _, out, tmp_path, _ = finished_search
    summary = read_summary(str(tmp_path / "runs" / "tiny"))
    lines = out.splitlines()
    assert lines[-2].startswith("wall time ")
    expected = (format_best(summary) + "\n" + json_line(summary)).splitlines()
    assert lines[:-2] + lines[-1:] == expected
    err = (tmp_path / "search.err").read_text()
    assert "eval     baseline: step 2/4  eval_accuracy" in err
    ended = [line for line in err.splitlines() if line.startswith(("completed", "stopped"))]
    assert len(ended) >= 4  # the four trials, and the confirmation runs
    assert "Trial status" not in err and "╭" not in out
