"""Fitting on real Ray Train workers (one local Ray for the module): one worker, two workers with
DDP over gloo, persisted adapter-only checkpoints, and resuming a run at its saved step."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hk_tune.config.run import RunConfig
from hk_tune.train.trainer import build_trainer, fit

pytestmark = pytest.mark.usefixtures("ray_session")

ONE_WORKER = {"num_workers": 1, "cpus_per_worker": 1}


def without_speed(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "tokens_per_s"}


def test_trainer_is_built_from_the_config(tiny_run):
    cfg = RunConfig.from_dict(tiny_run(scaling={"num_workers": 2, "cpus_per_worker": 0.5},
                                       name="named_run", max_failures=2))
    trainer = build_trainer(cfg)
    assert trainer.run_config.name == "named_run"  # never a timestamp: same name, same run
    assert Path(trainer.run_config.storage_path).is_absolute()
    assert trainer.run_config.failure_config.max_failures == 2
    assert trainer.scaling_config.num_workers == 2
    assert trainer.scaling_config.resources_per_worker == {"CPU": 0.5}
    assert RunConfig.from_dict(trainer.train_loop_config) == cfg


def test_gpu_workers_reserve_gpus(tiny_run):
    scaling = {"num_workers": 2, "use_gpu": True, "gpus_per_worker": 0.5}
    trainer = build_trainer(RunConfig.from_dict(tiny_run(scaling=scaling)))
    assert trainer.scaling_config.use_gpu
    assert trainer.scaling_config.resources_per_worker == {"CPU": 1.0, "GPU": 0.5}


def test_one_worker_matches_in_process_and_checkpoints_the_adapter(tiny_run):
    raw = tiny_run("bert", "pair", dropout="hiddenkey", scaling=ONE_WORKER, name="one")
    result = fit(RunConfig.from_dict(raw))
    assert [row["step"] for row in result.history] == [2, 4]
    assert result.metrics["world_size"] == 1

    # The Ray worker and Ray Train's in-process mode compute the same run.
    local = fit(RunConfig.from_dict({**raw, "scaling": {"num_workers": 0}}))
    assert without_speed(local.metrics) == without_speed(result.metrics)

    files = {p.name for p in Path(result.checkpoint).iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "trainer_state.pt",
            "rng_rank0.pt"} <= files
    assert not files & {"model.safetensors", "pytorch_model.bin"}  # never the base model
    adapter = Path(result.checkpoint) / "adapter_model.safetensors"
    assert adapter.stat().st_size < 100_000  # the tiny model itself is ~4 MB


def test_two_workers_train_one_model(tiny_run):
    raw = tiny_run("bert", "classification", dropout="hiddenkey", name="two",
                   scaling={"num_workers": 2, "cpus_per_worker": 1})
    result = fit(RunConfig.from_dict(raw))
    metrics = result.metrics
    assert metrics["world_size"] == 2 and metrics["step"] == 4
    for key in ("train_loss", "eval_loss", "eval_accuracy", "tokens_per_s"):
        assert math.isfinite(metrics[key]), key
    # Each rank wrote its own RNG state into the merged checkpoint: both took part in it.
    files = {p.name for p in Path(result.checkpoint).iterdir()}
    assert {"rng_rank0.pt", "rng_rank1.pt", "adapter_model.safetensors"} <= files


def test_resume_continues_at_the_saved_step(tiny_run):
    raw = tiny_run("gpt2", "classification", dropout="hiddenkey", name="resumed",
                   scaling=ONE_WORKER)
    first = fit(RunConfig.from_dict(raw))
    assert [row["step"] for row in first.history] == [2, 4]

    longer = {**raw, "optim": {**raw["optim"], "max_steps": 8}}
    second = fit(RunConfig.from_dict(longer))  # same name: Ray hands the worker its checkpoint
    steps = [row["step"] for row in second.history]
    assert steps == [2, 4, 6, 8]  # continued at 4; a restart from 0 would report 2 and 4 again
    assert second.history[:2] == first.history
    assert second.metrics["step"] == 8 and math.isfinite(second.metrics["eval_loss"])
    # The best evaluation so far came back with the checkpoint: it spans both halves.
    best = max(row["eval_accuracy"] for row in second.history)
    assert second.metrics["best_eval_accuracy"] == best
    assert second.metrics["best_step"] == max(row["step"] for row in second.history
                                              if row["eval_accuracy"] == best)


def test_refitting_a_finished_run_trains_nothing(tiny_run):
    raw = tiny_run("llama", "regression", name="finished", scaling=ONE_WORKER)
    first = fit(RunConfig.from_dict(raw))
    again = fit(RunConfig.from_dict(raw))  # the checkpoint is at the budget: no new reports
    assert again.history == first.history and again.metrics == first.metrics


def test_one_seed_gives_one_result_however_the_base_model_was_loaded(tiny_run, tmp_path,
                                                                     capsys):
    """A run's numbers depend on its configuration and seed alone: the same with a base model
    loaded for it, taken from a reused actor's cache, or trained by `hk-tune train`.
    Loading draws the new head from the global generator, so without seeding the head and
    LoRA init after it, the first run of a fresh cache would differ from the later ones."""
    import json

    import yaml

    from hk_tune import cli
    from hk_tune.train import session as sessions
    from hk_tune.train.loop import run_loop

    raw = tiny_run("roberta", "classification", dropout="hiddenkey", name="one_seed",
                   scaling=ONE_WORKER, optim={"max_steps": 6})
    sessions._CACHE.clear()  # the first cached run loads the model: a cache miss
    runs = []
    for session in (sessions.LocalSession(cache=True), sessions.LocalSession(cache=True),
                    sessions.LocalSession(cache=False)):
        run_loop(raw, session)
        runs.append([without_speed(row) for row in session.history])
    assert runs[0] == runs[1] == runs[2]
    assert [row["step"] for row in runs[0]] == [2, 4, 6]

    config = tmp_path / "one_seed.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert cli.main(["train", str(config), "--json"]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert without_speed(final) == runs[0][-1]
    trained = fit(RunConfig.from_dict(raw))  # the same run folder: continued, nothing trained
    assert [without_speed(row) for row in trained.history] == runs[0]
