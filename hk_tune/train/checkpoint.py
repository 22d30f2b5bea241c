"""A run's checkpoint: the LoRA adapter, the optimizer, schedule and step, each worker's RNG state.

    checkpoint_step0000040/
      adapter_model.safetensors   the adapter and new task head (never the base model), rank 0
      adapter_config.json         peft's config of the adapter
      trainer_state.pt            step, optimizer and scheduler state dicts, the run's best
                                  evaluation so far (value, step), rank 0
      rng_rank{r}.pt              python, numpy, torch (and CUDA) generators of worker r

Nothing in a checkpoint is unpickled: the adapter is safetensors and the `.pt` files hold only
tensors, numbers, strings and lists/dicts of them, read with `torch.load(weights_only=True)`,
which refuses anything else. So a checkpoint folder from elsewhere cannot run code. A checkpoint
that cannot be read raises `CheckpointError` naming the folder and the file: a run never quietly
restarts from scratch under its old name.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hk_tune.errors import CheckpointError

TRAINER_STATE = "trainer_state.pt"  # optimizer, scheduler and step, written by rank 0
ADAPTER = "adapter_model.safetensors"  # peft's file name for the adapter weights
ADAPTER_CONFIG = "adapter_config.json"  # peft's config of the adapter, beside it
RNG_STATE = "rng_rank{rank}.pt"  # each worker's generators: python, numpy, torch (and CUDA)
RESUME_HINT = "delete the run's folder, or set name=... to start a new run"


def save_checkpoint(folder: Path, peft_model, optimizer, scheduler, step: int, rank: int,
                    best: tuple[float | None, int | None] = (None, None),
                    scaler=None) -> None:
    """Rank 0 writes the adapter and the trainer state; every rank writes its RNG state.

    Ray Train merges the workers' folders into one checkpoint. The state dicts of AdamW and the
    LambdaLR schedule are tensors, numbers and lists, which `weights_only` loading accepts.

    Args:
        best: the run's best evaluation so far, (value, step), so a resumed run keeps it.
        scaler: fp16's GradScaler, whose loss scale a resumed run continues from.
    """
    import torch

    if rank == 0:
        peft_model.save_pretrained(folder)  # the adapter (and the task head) only
        state = {"step": step, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(), "best_value": best[0],
                 "best_step": best[1]}
        if scaler is not None and scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        torch.save(state, folder / TRAINER_STATE)
    torch.save(rng_state(), folder / RNG_STATE.format(rank=rank))


def rng_state() -> dict[str, Any]:
    """Every generator the loop draws from, as tensors and plain numbers (no numpy arrays or
    tuples to unpickle)."""
    import numpy as np
    import torch

    version, python_state, gauss_next = random.getstate()
    numpy = np.random.get_state(legacy=False)
    state = {
        "python_version": version, "python_state": torch.tensor(python_state, dtype=torch.int64),
        "python_gauss_next": gauss_next,
        "numpy_key": torch.from_numpy(numpy["state"]["key"].astype(np.int64)),
        "numpy_pos": numpy["state"]["pos"], "numpy_has_gauss": numpy["has_gauss"],
        "numpy_gauss": numpy["gauss"],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():  # dropout masks on a GPU come from its own generator
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what `rng_state` returned."""
    import numpy as np
    import torch

    random.setstate((state["python_version"], tuple(state["python_state"].tolist()),
                     state["python_gauss_next"]))
    np.random.set_state(("MT19937", state["numpy_key"].numpy().astype(np.uint32),
                         state["numpy_pos"], state["numpy_has_gauss"], state["numpy_gauss"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def read_checkpoint_file(folder: Path, name: str, read, where: str | None = None):
    """`read(folder / name)`, or `CheckpointError` naming the folder and the file.

    Args:
        folder: the checkpoint's local folder.
        name: the file's name in it.
        read: reads the file; any exception it raises means the file is damaged.
        where: the checkpoint as the user knows it (its storage path), default `folder`.
    """
    where = where or str(folder)
    path = folder / name
    if not path.is_file():
        raise CheckpointError(f"checkpoint {where}: {name} is missing, so the run cannot resume "
                              f"from it; {RESUME_HINT}")
    try:
        return read(path)
    except Exception as error:
        raise CheckpointError(f"checkpoint {where}: {name} is damaged ({_reason(error)}); "
                              f"{RESUME_HINT}") from None


def _reason(error: Exception) -> str:
    """The cause in a few words. torch's refusal to unpickle explains how to load the file
    anyway (weights_only=False), which is exactly what must not be done: keep only its cause."""
    import pickle
    import re

    if isinstance(error, pickle.UnpicklingError):
        found = re.search(r"WeightsUnpickler error:\s*(.+?)(?: was not an allowed global|\n|$)",
                          str(error))
        cause = found.group(1).strip() if found else "not a torch.save file"
        return f"refused by weights-only loading: {cause}"
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def load_checkpoint(folder: Path, peft_model, optimizer, scheduler, rank: int,
                    where: str | None = None,
                    scaler=None) -> tuple[int, float | None, int | None]:
    """Restores what `save_checkpoint` wrote.

    Returns:
        The step to continue from, and the run's best evaluation so far (value, step).

    Raises:
        CheckpointError: a file is missing or damaged, or does not fit this run's model.
    """
    import torch
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    def load_adapter(path: Path) -> None:
        weights = load_file(path)
        expected = set(get_peft_model_state_dict(peft_model))
        if set(weights) != expected:
            missing, extra = sorted(expected - set(weights)), sorted(set(weights) - expected)
            example = (missing or extra)[0]
            raise ValueError(f"not this model's adapter: {len(missing)} tensors missing, "
                             f"{len(extra)} unexpected, e.g. {example}")
        set_peft_model_state_dict(peft_model, weights)

    def load_trainer_state(path: Path) -> tuple[int, float | None, int | None]:
        # On the CPU first: the optimizer moves its state to its parameters' device, so a run
        # saved on a GPU resumes on another GPU, or on a machine without one.
        state = torch.load(path, weights_only=True, map_location="cpu")
        missing = [key for key in ("step", "optimizer", "scheduler") if key not in state]
        if missing:
            raise ValueError(f"no {missing} in it")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and scaler.is_enabled() and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        return int(state["step"]), state.get("best_value"), state.get("best_step")

    read_checkpoint_file(folder, ADAPTER, load_adapter, where)
    step, best_value, best_step = read_checkpoint_file(folder, TRAINER_STATE, load_trainer_state,
                                                       where)
    rng_file = RNG_STATE.format(rank=rank)
    if (folder / rng_file).exists():  # absent when the run had fewer workers before
        read_checkpoint_file(folder, rng_file,
                             lambda path: set_rng_state(torch.load(path, weights_only=True,
                                                                  map_location="cpu")),
                             where)
    return step, best_value, best_step
