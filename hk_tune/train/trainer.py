"""Running a `RunConfig` on Ray Train: check it, build the `TorchTrainer`, fit, collect results.

This is the driver side; `loop.train_fn_per_worker` is what the workers run. A worker that dies
(killed, out of memory, its node lost) is restarted up to `max_failures` times, and the new
worker group continues from the run's latest checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hk_tune import storage
from hk_tune.config.run import RunConfig
from hk_tune.config.sources import source_task
from hk_tune.errors import CheckpointError, ConfigError, DivergedError, TrainingFailedError
from hk_tune.tasks import metric_mode, selection_metric
from hk_tune.train.data import load_task
from hk_tune.train.loop import train_fn_per_worker
from hk_tune.train.model import check_model

if TYPE_CHECKING:
    from ray.train import Result
    from ray.train.torch import TorchTrainer

# Errors a worker raises that say what the user must change; shown as themselves (one line),
# not inside Ray's WorkerGroupError with the worker's traceback.
OWN_ERRORS = (CheckpointError, DivergedError)


@dataclass(frozen=True)
class RunResult:
    """What a finished run left behind.

    Attributes:
        metrics: the last reported metrics (step, train_loss, eval_*, lr, tokens_per_s, ...).
        history: every evaluation's metrics in step order (the train/eval curves).
        path: the run's folder under storage_path.
        checkpoint: the latest checkpoint's folder (LoRA adapter + trainer state), if persisted.
        best_checkpoint: the checkpoint of the best evaluation (`best_step`), if persisted.
    """

    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    path: str | None = None
    checkpoint: str | None = None
    best_checkpoint: str | None = None


def check(cfg: RunConfig) -> None:
    """Fails fast, before Ray starts: the storage folder can be made, the model loads its config
    and has the LoRA targets and positions asked for, and the data source loads and matches the
    task.

    Raises:
        ConfigError: naming the key and what is wrong.
    """

    folder = storage.join(storage_folder(cfg), cfg.name)
    storage.check_creatable(folder, "storage_path")
    if storage.exists(storage.join(folder, storage.SEARCH_STATE)):
        raise ConfigError(f"name: {folder} is a search's folder; its trials and state would mix "
                          "with this run's; allowed: another name (name=...)")
    check_model(cfg.model, cfg.lora, cfg.data.max_length)
    task = load_task(cfg.data).task
    try:
        selection_metric(task, cfg.metric)
    except ValueError as error:
        raise ConfigError(f"metric: {error}") from None


def storage_folder(cfg: RunConfig) -> str:
    """An absolute local path (Ray workers run in their own working directories) or the
    object-store URI as given, which Ray Train opens itself (`hk_tune.storage`)."""
    return storage.resolve(cfg.storage_path)


def build_trainer(cfg: RunConfig, callbacks: list | None = None) -> TorchTrainer:
    """The `TorchTrainer` for `cfg`: its workers run `train_fn_per_worker(cfg.to_dict())`.

    The run is named by `cfg.name` (never a timestamp), so fitting the same name again resumes
    from that run's latest checkpoint. `callbacks` are Ray Train callbacks (a search passes
    Tune's `TuneReportCallback`).
    """
    import ray.train
    from ray.train.torch import TorchTrainer


    # Ray Train routes workers' print() through its logger, which also leaks text that libraries
    # capture from stdout (dill's disassembly inside `datasets` fingerprinting) and prints each
    # line twice; plain stdout/stderr forwarding is enough. Ray propagates this to the workers.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    scaling = cfg.scaling
    metric = selection_metric(source_task(cfg.data.source, cfg.data.task), cfg.metric)
    resources = {"CPU": scaling.cpus_per_worker}
    if scaling.use_gpu:
        resources["GPU"] = scaling.gpus_per_worker or 1
    return TorchTrainer(
        train_fn_per_worker,
        train_loop_config=cfg.to_dict(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers,
            use_gpu=scaling.use_gpu,
            resources_per_worker=resources if scaling.num_workers > 0 else None,
        ),
        run_config=ray.train.RunConfig(
            name=cfg.name,
            storage_path=storage_folder(cfg),
            # Any worker error counts, ours too: a damaged checkpoint or a diverging loss is
            # then met again max_failures times (from the same checkpoint) before it is raised.
            failure_config=ray.train.FailureConfig(max_failures=cfg.max_failures),
            # Every checkpoint is kept: Ray Train's results (the run's curves) are its kept
            # checkpoints' metrics. Scored, so the best evaluation's checkpoint is known.
            checkpoint_config=ray.train.CheckpointConfig(
                checkpoint_score_attribute=metric, checkpoint_score_order=metric_mode(metric)),
            # The loop prints one line per evaluation; Ray Train's INFO lines repeat each
            # report's metrics and checkpoint path. Warnings and errors still show.
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
            callbacks=callbacks,
        ),
    )


def fit_trainer(trainer: TorchTrainer) -> Result:
    """`trainer.fit()`, with a worker's `CheckpointError` or `DivergedError` raised as itself.

    Raises:
        CheckpointError: the run's latest checkpoint cannot be resumed from.
        DivergedError: the loss became NaN or infinite.
        ray.train.TrainingFailedError: any other failure, once `max_failures` is spent.
    """
    import ray.train

    try:
        return trainer.fit()
    except ray.train.WorkerGroupError as error:
        for failure in error.worker_failures.values():
            if isinstance(failure, OWN_ERRORS):
                raise failure from None
        raise


def fit(cfg: RunConfig) -> RunResult:
    """Trains `cfg` on Ray Train and returns the final metrics and the curves.

    With `scaling.num_workers: 0` the loop runs in this process (Ray Train's local mode):
    nothing is persisted, so only the last metrics come back and there is no resume.

    Raises:
        CheckpointError: as `fit_trainer`; a `ConfigError`, so `hk-tune train` reports it as
            one line with exit status 2.
        TrainingFailedError: the run failed, a diverged loss included, with the cause in one
            line (`hk-tune train`: exit status 1).
    """
    import ray.train

    try:
        result = fit_trainer(build_trainer(cfg))
    except DivergedError as error:
        raise TrainingFailedError(str(error)) from error
    except ray.train.TrainingFailedError as error:
        raise TrainingFailedError(" ".join(str(error).split())[:500]) from error
    history = []
    if result.metrics_dataframe is not None:
        rows = result.metrics_dataframe.to_dict("records")
        history = sorted((_clean(row) for row in rows), key=lambda row: row.get("step", 0))
    metrics = _clean(result.metrics or (history[-1] if history else {}))
    checkpoint = result.checkpoint.path if result.checkpoint and result.path else None
    best = [saved.path for saved, saved_metrics in (result.best_checkpoints or [])
            if saved_metrics.get("step") == metrics.get("best_step")] if result.path else []
    return RunResult(metrics=metrics, history=history or ([metrics] if metrics else []),
                     path=result.path, checkpoint=checkpoint,
                     best_checkpoint=best[0] if best else None)


def _clean(metrics: dict[str, Any]) -> dict[str, Any]:
    """Plain Python numbers: the metrics dataframe gives numpy scalars."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in metrics.items()}
