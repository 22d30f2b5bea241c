"""Where the training loop runs: on a Ray Train worker, or inside a Ray Tune trial's own process.

`run_loop` touches Ray only through a session, so the same loop serves both executors:

- `TrainSession`: a Ray Train worker (`train_fn_per_worker`); DDP, GPUs, clusters.
- `TuneSession`: one process inside a Tune trial, the search's fast path for single-worker
  trials (docs/design.md 4), on the trial's GPU when Tune gave it one. With actor reuse, the
  tokenizer, the tokenized data and the base model stay in a module-level cache across trials
  (the model on the CPU, or on its GPU when its weights are 4-bit, which are quantized as they
  load there); each trial gets a deep copy of the base model, moved to its device, with its new
  task head initialized afresh from the trial's seed.
- `LocalSession`: the loop in this process with no Ray at all (benchmarks, notebooks, a GPU
  check), on the device it is given: its reports are kept in `history`, nothing is persisted.

Which session a run had never changes its numbers: the loop seeds the head and LoRA init itself
(`hk_tune.train.loop.build_inputs`), so a cached base model and a freshly loaded one start the
same run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

# Key -> built object, shared by the trials that a reused Tune actor runs one after another.
_CACHE: dict[Hashable, Any] = {}


class TrainSession:
    """The loop on a Ray Train worker: rank and world from Train, DDP model and sharded loader."""

    cache_models = False
    # One line per evaluation on stderr; a search's trials print their own, with their names
    # (hk_tune.search.progress), so a Tune trial's loop stays quiet.
    prints_progress = True

    def world(self) -> tuple[int, int]:
        import ray.train

        context = ray.train.get_context()
        return context.get_world_rank(), context.get_world_size()

    def prepare_model(self, model):
        import ray.train.torch

        return ray.train.torch.prepare_model(model)

    def device(self) -> str:
        """This worker's device, as Ray Train assigned it (`cuda:<local rank>` or `cpu`)."""
        import ray.train.torch

        return str(ray.train.torch.get_device())

    def prepare_data_loader(self, loader):
        import ray.train.torch

        return ray.train.torch.prepare_data_loader(loader)

    def get_checkpoint(self):
        import ray.train

        return ray.train.get_checkpoint()

    def report(self, metrics: dict[str, Any], folder: Path, name: str) -> None:
        import ray.train

        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder),
                         checkpoint_dir_name=name)

    def reuse(self, key: Hashable, build: Callable[[], Any]) -> Any:
        return build()


class TuneSession(TrainSession):
    """The loop inside a Ray Tune trial: one process, rank 0 of 1, reports to Tune."""

    cache_models = True
    prints_progress = False

    def world(self) -> tuple[int, int]:
        return 0, 1

    def prepare_model(self, model):
        return model.to(self.device())

    def device(self) -> str:
        """`cuda` when Tune gave the trial a GPU: Ray then shows the actor only its own GPUs
        (CUDA_VISIBLE_DEVICES), so device 0 is the trial's; `cpu` otherwise, even on a GPU node."""
        import ray

        return trial_device(bool(ray.get_gpu_ids()))

    def prepare_data_loader(self, loader):
        return loader

    def get_checkpoint(self):
        import ray.tune

        return ray.tune.get_checkpoint()

    def report(self, metrics: dict[str, Any], folder: Path, name: str) -> None:
        import ray.tune

        ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(folder))

    def reuse(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """`build()`'s result, built once per process for each key."""
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def trial_device(has_gpu: bool) -> str:
    """The device of a one-process trial: its GPU if it was given one and CUDA works."""
    import torch

    return "cuda" if has_gpu and torch.cuda.is_available() else "cpu"


def free_accelerator_memory() -> None:
    """Returns what a finished run left on the GPU to the driver: its model and optimizer are
    garbage once the loop returns, but PEFT's modules hold reference cycles (collected only by
    gc) and torch's caching allocator keeps freed blocks reserved for this process."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def fresh_copy(value: Any) -> Any:
    """A deep copy, so a trial's changes (LoRA layers, attached dropout) never reach the cache."""
    return copy.deepcopy(value)


class LocalSession(TuneSession):
    """The loop in this process without Ray: rank 0 of 1, every report kept in `history`.

    Args:
        cache: keep the tokenizer, data and base model for the next run in this process, as a
            reused Tune actor does; False loads them afresh, as a Ray Train worker does.
        device: where the run's model trains ("cpu", "cuda", "cuda:1").
    """

    prints_progress = True

    def __init__(self, cache: bool = True, device: str = "cpu"):
        self.cache_models = cache
        self._device = device
        self.history: list[dict[str, Any]] = []

    def device(self) -> str:
        return self._device

    def get_checkpoint(self):
        return None

    def report(self, metrics: dict[str, Any], folder: Path, name: str) -> None:
        self.history.append(dict(metrics))

    def reuse(self, key: Hashable, build: Callable[[], Any]) -> Any:
        return super().reuse(key, build) if self.cache_models else build()
