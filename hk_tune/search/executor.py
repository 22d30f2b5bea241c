"""What runs one trial: the Ray Tune function trainable and the two executors behind it.

- `inprocess`: the per-worker loop runs inside the Tune trial's own process, through
  `hk_tune.train.session.TuneSession`. With `TuneConfig(reuse_actors=True)` the trial actor, its
  imports (torch, transformers, peft) and the cached tokenizer, data and base model serve every
  trial after the first: the trial costs its training and little else (docs/design.md 4).
- `train`: the trial is a driver on a tiny CPU share that fits a Ray Train `TorchTrainer` (new
  worker processes per trial): multi-worker DDP, GPUs, clusters. The Train run is named from the
  Tune trial id, so a retried or resumed trial continues from its checkpoint.
- `auto`: `inprocess` for one worker (its CPUs, or a whole or fractional GPU: the trial actor
  holds the GPU, the model moves onto it and leaves it when the trial ends), `train` for
  several workers (DDP: NCCL on GPUs, gloo on CPUs).

Either way a failed trial gets the run config's `max_failures` restarts from its latest
checkpoint, and no more (`tune_max_failures`).

A trial's config is what Optuna sampled (nested by Ray on `/`), or, for seed confirmation,
{"params": {...}, "seed": n}. Dicts cross the process boundary; the `SearchConfig` rebuilds the run.
"""

from __future__ import annotations

import math
import time
from typing import Any

from hk_tune.config.run import RunConfig
from hk_tune.config.space import SearchConfig
from hk_tune.train.loop import run_loop
from hk_tune.train.session import TuneSession, free_accelerator_memory
from hk_tune.train.trainer import build_trainer, fit_trainer

DRIVER_CPU = 0.01  # the Train driver's share: a whole CPU would deadlock a 2-core machine
REPORT_SETTLE_S = 0.5  # Train's last report can still be in flight when fit() returns


def choose_executor(space: SearchConfig) -> str:
    """The executor `space` asks for, with `auto` resolved."""
    if space.executor != "auto":
        return space.executor
    return "inprocess" if space.resources.get("num_workers", 1) == 1 else "train"


def trial_resources(space: SearchConfig) -> dict[str, float]:
    """What Tune reserves for one trial under `space`'s executor."""
    cpus = space.resources.get("cpus_per_worker", 1.0)
    if choose_executor(space) == "train":
        return {"cpu": DRIVER_CPU}
    resources = {"cpu": cpus}
    if space.resources.get("gpus_per_worker"):
        resources["gpu"] = space.resources["gpus_per_worker"]
    return resources


def cpus_per_trial(space: SearchConfig) -> float:
    """CPUs one trial occupies in all (the Train workers' own, for the `train` executor)."""
    workers = space.resources.get("num_workers", 1) if choose_executor(space) == "train" else 1
    return max(workers, 1) * space.resources.get("cpus_per_worker", 1.0)


def gpus_per_trial(space: SearchConfig) -> float:
    """GPUs one trial occupies in all: whole or fractional GPUs per worker, times its workers."""
    workers = space.resources.get("num_workers", 1) if choose_executor(space) == "train" else 1
    return max(workers, 1) * space.resources.get("gpus_per_worker", 0.0)


def trials_that_fit(space: SearchConfig, cluster: dict[str, float]) -> int:
    """How many trials `cluster`'s CPUs and GPUs (Ray's resource totals) hold at once, capped
    by the space's `max_concurrent`: adding GPU nodes adds concurrency."""
    fits = math.floor(cluster.get("CPU", 1.0) / cpus_per_trial(space) + 1e-9)
    if gpus_per_trial(space) > 0:
        fits = min(fits, math.floor(cluster.get("GPU", 0.0) / gpus_per_trial(space) + 1e-9))
    fits = max(1, fits)  # none fit yet: one waits for the autoscaler to add a node
    return min(fits, space.max_concurrent or fits)


def tune_max_failures(space: SearchConfig) -> int:
    """How many times Tune itself restarts a failed trial, from the trial's latest checkpoint.

    `inprocess`: the run config's `max_failures`. The trial's own process is the worker, and
    only Tune can restart it; the new process resumes through `TuneSession.get_checkpoint`.
    `train`: 0. The trial is a driver whose Ray Train run already restarts a failed worker group
    `max_failures` times from the run's latest checkpoint (`trainer.build_trainer`); were Tune to
    retry the driver as well, each retry's new Train run would get `max_failures` more, and a
    trial that keeps failing would run (max_failures + 1)² times.
    """
    if choose_executor(space) == "train":
        return 0
    return space.base.max_failures


def sampled_point(config: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """A trial config's parameters (`dropout/attn_logits.rate` -> value) and its seed: a
    confirmation's params and seed, or what Optuna sampled (nested by Ray on `/`) with the
    space's own seed (None)."""
    from ray.tune.utils import flatten_dict

    if "params" in config and "seed" in config:
        return config["params"], config["seed"]
    return flatten_dict(config, delimiter="/"), None


def trial_run_config(space: SearchConfig, config: dict[str, Any]) -> dict[str, Any]:
    """The `RunConfig` dict of a trial: sampled params, or a confirmation's params and seed."""
    params, seed = sampled_point(config)
    return space.trial_config(params, seed=seed).to_dict()


def run_trial(config: dict[str, Any], space: SearchConfig, executor: str,
              train_storage: str) -> None:
    """The Tune function trainable: trains one configuration and reports every evaluation."""
    import ray.tune

    raw = trial_run_config(space, config)
    raw["name"] = ray.tune.get_context().get_trial_id()
    raw["storage_path"] = train_storage
    if executor == "inprocess":
        raw["scaling"] = {**raw.get("scaling", {}), "num_workers": 1}
        try:
            run_loop(raw, TuneSession())
        finally:  # the next trial in this actor starts with the GPU as this one found it
            free_accelerator_memory()
        return

    from ray.tune.integration.ray_train import TuneReportCallback

    trainer = build_trainer(RunConfig.from_dict(raw, where="trial"),
                            callbacks=[TuneReportCallback()])
    fit_trainer(trainer)  # a diverged loss fails the trial as DivergedError, in one line
    time.sleep(REPORT_SETTLE_S)


def build_trainable(space: SearchConfig, train_storage: str):
    """`run_trial` bound to `space`, with the resources its executor needs."""
    import ray.tune

    fn = ray.tune.with_parameters(run_trial, space=space, executor=choose_executor(space),
                                  train_storage=train_storage)
    return ray.tune.with_resources(fn, trial_resources(space))
