"""A one-process trial trains on its GPU when Tune gave it one, and leaves nothing of its run
behind for the next trial in the same actor (no live model, no GPU memory held)."""

from __future__ import annotations

import gc

import torch

from hk_tune.train.loop import run_loop
from hk_tune.train.session import LocalSession, free_accelerator_memory, trial_device


def test_a_trial_without_a_gpu_trains_on_the_cpu_even_where_cuda_exists():
    assert trial_device(False) == "cpu"
    assert trial_device(True) == ("cuda" if torch.cuda.is_available() else "cpu")


def live_peft_models() -> int:
    from peft import PeftModel

    gc.collect()
    return sum(isinstance(obj, PeftModel) for obj in gc.get_objects())


def test_runs_in_one_process_release_their_models(tiny_run):
    """The reused-actor path: the cached base model stays, each run's LoRA model (and on a GPU
    its memory) is gone once the run returns and `free_accelerator_memory` ran."""
    session = LocalSession(cache=True, device=trial_device(True))
    before = live_peft_models()
    allocated = []
    for seed in (0, 1, 2):
        run_loop(tiny_run("llama", "causal_lm", dropout="hiddenkey", seed=seed,
                          optim={"max_steps": 2}), session)
        free_accelerator_memory()
        assert live_peft_models() == before
        if torch.cuda.is_available():
            allocated.append(torch.cuda.memory_allocated())
    assert [row["step"] for row in session.history] == [2, 2, 2]
    assert len(set(allocated)) <= 1  # on a GPU: the same bytes held after every run
