"""The per-worker loop on tiny models of every architecture and task type.

These run `train_fn_per_worker` through `TorchTrainer` with `num_workers=0`, Ray Train's local
mode: the real `ray.train` API (get_context, prepare_model, prepare_data_loader, report) in this
process, without starting Ray. Multi-worker runs, persisted checkpoints and resume are in
test_trainer.py.
"""

from __future__ import annotations

import math

import pytest
import torch

from hk_tune.config.run import RunConfig
from hk_tune.config.sections import OptimSettings
from hk_tune.errors import CheckpointError
from hk_tune.train.checkpoint import load_checkpoint, save_checkpoint
from hk_tune.train.loop import is_eval_step, step_budget
from hk_tune.train.trainer import fit

EVAL_METRICS = {
    "classification": {"eval_loss", "eval_accuracy", "eval_f1", "eval_mcc"},
    "pair": {"eval_loss", "eval_accuracy", "eval_f1", "eval_mcc"},
    "regression": {"eval_loss", "eval_pearson", "eval_spearman"},
    "causal_lm": {"eval_loss", "eval_bleu", "eval_rouge_l"},
}

# Each architecture and each task type at least once; half of them with HiddenKey, so the
# two-pass consistency step runs through the loop too.
CASES = [
    ("bert", "pair", "hiddenkey"),
    ("bert", "regression", "baseline"),
    ("roberta", "classification", "hiddenkey"),
    ("gpt2", "causal_lm", "hiddenkey"),
    ("gpt2", "classification", "baseline"),
    ("llama", "regression", "hiddenkey"),
    ("llama", "causal_lm", "baseline"),
]


def run(raw: dict) -> dict:
    return fit(RunConfig.from_dict(raw)).metrics


def test_step_budget():
    assert step_budget(OptimSettings(max_steps=7), steps_per_epoch=100) == 7
    assert step_budget(OptimSettings(epochs=2), steps_per_epoch=10) == 20
    assert step_budget(OptimSettings(epochs=0.25), steps_per_epoch=10) == 3
    assert step_budget(OptimSettings(), steps_per_epoch=10) == 10  # one epoch by default


def test_eval_steps():
    every_3 = [s for s in range(1, 11) if is_eval_step(s, 10, 4, eval_every=3)]
    assert every_3 == [3, 6, 9, 10]  # and always the last step
    per_epoch = [s for s in range(1, 11) if is_eval_step(s, 10, 4, eval_every=None)]
    assert per_epoch == [4, 8, 10]


@pytest.mark.parametrize("architecture, task, dropout", CASES)
def test_a_few_steps(tiny_run, architecture, task, dropout):
    metrics = run(tiny_run(architecture, task, dropout=dropout))
    assert metrics["step"] == 4 and metrics["world_size"] == 1
    assert EVAL_METRICS[task] <= set(metrics)
    for key in ("train_loss", "train_consistency_loss", "eval_loss", "tokens_per_s"):
        assert math.isfinite(metrics[key]), key
    assert metrics["tokens_per_s"] > 0
    assert metrics["lr"] == 0.0  # the linear schedule ends at zero on the last step
    # The running best of the task's primary metric, and where it was reached.
    primary = "eval_pearson" if task == "regression" else (
        "eval_bleu" if task == "causal_lm" else "eval_accuracy")
    assert metrics[f"best_{primary}"] >= metrics[primary] and metrics["best_step"] in (2, 4)
    if dropout == "hiddenkey":
        assert metrics["train_consistency_loss"] >= 0.0
        assert 0.0 <= metrics["train_consistency_share"] < 1.0
    else:
        assert metrics["train_consistency_share"] == 0.0


def test_the_best_evaluation_is_tracked_by_the_chosen_metric(tiny_run):
    """`metric` picks what the run tracks the best of; for a loss, lower is better."""
    from hk_tune.train.loop import run_loop
    from hk_tune.train.session import LocalSession

    session = LocalSession(cache=False)
    run_loop(tiny_run("bert", "classification", metric="eval_loss",
                      optim={"max_steps": 6, "eval_every": 1}), session)
    losses = [row["eval_loss"] for row in session.history]
    final = session.history[-1]
    assert final["best_eval_loss"] == min(losses)
    assert final["best_step"] == max(i + 1 for i, loss in enumerate(losses)
                                     if loss == min(losses))  # ties go to the later one


def test_beam_search_generation(tiny_run):
    metrics = run(tiny_run("llama", "causal_lm", generation={"num_beams": 3, "max_new_tokens": 3}))
    assert 0.0 <= metrics["eval_bleu"] <= 100.0 and 0.0 <= metrics["eval_rouge_l"] <= 100.0


def test_same_seed_same_metrics(tiny_run):
    raw = tiny_run("roberta", "classification", dropout="hiddenkey", optim={"max_steps": 6})
    first, second = run(raw), run(raw)
    other_seed = run({**raw, "seed": 1})
    for metrics in (first, second, other_seed):
        metrics.pop("tokens_per_s")
    assert first == second
    assert other_seed["train_loss"] != first["train_loss"]


def test_real_minilm_learns_an_easy_task(tiny_run):
    """The words carry the label; the real MiniLM must get every eval row right within ~3 epochs.
    (Random tiny models have too little signal in their [CLS] vector to show learning.)"""
    raw = tiny_run("bert", "classification", model="minilm",
                   optim={"max_steps": 30, "eval_every": 30, "batch_size": 8, "lr": 2e-3})
    metrics = run(raw)
    assert metrics["eval_accuracy"] == 1.0
    assert metrics["train_loss"] < 0.5


def build_adapter_run(tiny_models):
    """A tiny BERT + LoRA with AdamW and the linear schedule, from seed 0."""
    from transformers import get_linear_schedule_with_warmup

    from hk_tune.train.model import LoraSettings, ModelSettings, build_model

    torch.manual_seed(0)
    model = build_model(ModelSettings(name=tiny_models["bert"]), LoraSettings(),
                        "classification", 2, 0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    return model, optimizer, get_linear_schedule_with_warmup(optimizer, 1, 10)


@pytest.fixture
def saved_checkpoint(tiny_models, tmp_path):
    """A checkpoint after 3 steps of a tiny BERT, in tmp_path / "checkpoint"."""
    model, optimizer, scheduler = build_adapter_run(tiny_models)
    batch = {"input_ids": torch.tensor([[101, 2000, 102]]), "labels": torch.tensor([1])}
    for _ in range(3):
        model(**batch).loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    save_checkpoint(folder, model, optimizer, scheduler, step=3, rank=0)
    return folder, model, optimizer


def test_checkpoint_holds_only_the_adapter_and_restores_it(saved_checkpoint, tiny_models):
    import random

    import numpy as np
    from safetensors.torch import load_file

    folder, model, optimizer = saved_checkpoint
    saved = load_file(folder / "adapter_model.safetensors")
    # LoRA and the whole task head (BERT's pooler and classifier), no other base weights.
    assert saved and all("lora_" in k or "classifier" in k or "pooler" in k for k in saved)
    n_saved = sum(t.numel() for t in saved.values())
    assert n_saved == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert {p.name for p in folder.iterdir()} >= {
        "adapter_model.safetensors", "adapter_config.json", "trainer_state.pt", "rng_rank0.pt"
    }

    # What every generator gives right after the checkpoint.
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    fresh, fresh_optimizer, fresh_scheduler = build_adapter_run(tiny_models)
    assert load_checkpoint(folder, fresh, fresh_optimizer, fresh_scheduler, rank=0) == (3, None,
                                                                                        None)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert fresh_scheduler.last_epoch == 3
    restored = fresh_optimizer.state_dict()["state"]
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(restored[index][key]), torch.as_tensor(value))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_checkpoint_files_load_without_unpickling(saved_checkpoint):
    """weights_only loading refuses any object but tensors and plain containers: if the files
    needed more, this load would raise."""
    folder, _, _ = saved_checkpoint
    for name in ("trainer_state.pt", "rng_rank0.pt"):
        assert torch.load(folder / name, weights_only=True), name


class Payload:
    """An object a tampered checkpoint could carry; unpickling it would run its class's code."""


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def foreign_adapter(path):
    from safetensors.torch import save_file

    save_file({"lora_A.weight": torch.zeros(2, 2)}, path)


# What is done to the checkpoint, and the file the error must name.
DAMAGE = {
    "adapter missing": (lambda f: (f / "adapter_model.safetensors").unlink(),
                        "adapter_model.safetensors is missing"),
    "adapter truncated": (lambda f: truncate(f / "adapter_model.safetensors"),
                          "adapter_model.safetensors is damaged"),
    "adapter of another model": (lambda f: foreign_adapter(f / "adapter_model.safetensors"),
                                 "adapter_model.safetensors is damaged"),
    "trainer state garbage": (lambda f: (f / "trainer_state.pt").write_bytes(b"\x00garbage" * 9),
                              "trainer_state.pt is damaged"),
    "trainer state missing": (lambda f: (f / "trainer_state.pt").unlink(),
                              "trainer_state.pt is missing"),
    "trainer state holds an object": (
        lambda f: torch.save({"step": 3, "optimizer": Payload(), "scheduler": {}},
                             f / "trainer_state.pt"),
        "trainer_state.pt is damaged"),
    "rng state truncated": (lambda f: truncate(f / "rng_rank0.pt"), "rng_rank0.pt is damaged"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_names_its_folder_and_file(saved_checkpoint, tiny_models, damage):
    folder, _, _ = saved_checkpoint
    spoil, message = DAMAGE[damage]
    spoil(folder)
    model, optimizer, scheduler = build_adapter_run(tiny_models)
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(folder, model, optimizer, scheduler, rank=0)
    text = str(raised.value)
    assert f"checkpoint {folder}: {message}" in text
    assert "\n" not in text and "name=" in text  # one line that says what to do


def test_a_new_head_is_drawn_the_same_whatever_order_the_loading_report_lists_it(tiny_models):
    """transformers lists missing keys from a set, in an order that changes between processes
    (a Tune actor, a Ray Train worker): the head must not depend on it."""
    from hk_tune.train.loop import reset_new_weights
    from hk_tune.train.model import ModelSettings, load_model

    heads = []
    for order in (sorted, lambda keys: sorted(keys, reverse=True)):
        model, new_keys = load_model(ModelSettings(name=tiny_models["roberta"]),
                                     "classification", 2, 0, new_keys=True)
        assert len([k for k in new_keys if k.endswith("weight")]) == 2  # dense and out_proj
        torch.manual_seed(0)
        reset_new_weights(model, order(new_keys))
        heads.append({k: v.clone() for k, v in model.state_dict().items() if "classifier" in k})
    assert heads[0].keys() == heads[1].keys()
    for key in heads[0]:
        assert torch.equal(heads[0][key], heads[1][key]), key
