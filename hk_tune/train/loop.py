"""The per-worker training loop: build -> fit -> evaluate, in one function with its helpers above.

`train_fn_per_worker` is what every Ray Train worker runs; `run_loop` is the loop itself, which a
search also runs inside a Ray Tune trial (see `hk_tune.train.session`). It takes a plain dict
(`RunConfig.to_dict()`), builds typed objects at the edge, and touches Ray through its session's
`prepare_model`, `prepare_data_loader`, `world`, `get_checkpoint` and `report` only.
Each evaluation reports metrics with a checkpoint holding the LoRA adapter (never the base
model) plus optimizer, scheduler, step and RNG state, so a run with the same name continues at
the saved step with the same data order and dropout masks (`hk_tune.train.checkpoint`). A loss
that turns NaN or infinite stops the run with `DivergedError`.
"""

from __future__ import annotations

import functools
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hk_tune.config.run import RunConfig
from hk_tune.tasks import metric_mode, selection_metric
from hk_tune.train.checkpoint import load_checkpoint, save_checkpoint
from hk_tune.train.data import collate, load_task, tokenize
from hk_tune.train.evaluate import evaluate, sum_across_workers
from hk_tune.train.model import (
    add_lora,
    enable_gradient_checkpointing,
    load_model,
    load_tokenizer,
    trainable_counts,
)
from hk_tune.train.session import TrainSession, fresh_copy

if TYPE_CHECKING:

    from hk_tune.config.sections import OptimSettings



def seed_everything(seed: int) -> None:
    """Seeds every generator the loop draws from: Python, NumPy and torch."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def step_budget(optim: OptimSettings, steps_per_epoch: int) -> int:
    """The run's length in optimizer steps: max_steps, else epochs (default 1) of batches."""
    if optim.max_steps is not None:
        return optim.max_steps
    return max(1, math.ceil((optim.epochs or 1.0) * steps_per_epoch))


def is_eval_step(step: int, total: int, steps_per_epoch: int, eval_every: int | None) -> bool:
    """Evaluate every `eval_every` steps (else at each epoch's end), and always at the end."""
    every = eval_every or steps_per_epoch
    return step % every == 0 or step == total


def build_train_loader(dataset, batch_size: int, pad_token_id: int, seed: int, rank: int,
                       world_size: int, session=None):
    """A shuffled loader over this worker's shard of the training set.

    The order comes from a DistributedSampler seeded with the run's seed and reseeded per epoch
    with `set_epoch`, on one worker as on many: it depends on (seed, epoch) alone, so a resumed
    run sees the same batches as an uninterrupted one.
    """
    from torch.utils.data import DataLoader, DistributedSampler


    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler,
                        collate_fn=functools.partial(collate, pad_token_id=pad_token_id))
    return (session or TrainSession()).prepare_data_loader(loader), sampler


@dataclass
class RunningBest:
    """The best value of one evaluation metric so far, and the step of that evaluation.

    The LoRA paper takes each run's result from its best epoch (Hu et al. 2021, appendix D.1):
    dropout pays off after the baseline has overfitted, which a run's last evaluation hides.
    Ties go to the later evaluation, the one Tune's checkpoint scoring keeps of equal scores.
    """

    metric: str
    mode: str  # "max" or "min"
    value: float | None = None
    step: int | None = None

    def update(self, value: float, step: int) -> None:
        if not math.isfinite(value):
            return
        better = self.value is None or (value >= self.value if self.mode == "max"
                                        else value <= self.value)
        if better:
            self.value, self.step = value, step

    def metrics(self) -> dict[str, float | int]:
        """`best_<metric>` and `best_step`, as every evaluation reports them."""
        return {f"best_{self.metric}": math.nan if self.value is None else self.value,
                "best_step": -1 if self.step is None else self.step}


def consistency_share(weighted_consistency: float, total: float) -> float:
    """λ·consistency as a fraction of the whole loss; 0 when the loss is 0."""
    return weighted_consistency / total if total > 0 else 0.0


def format_progress(metrics: dict[str, Any], total: int) -> str:
    """One line per evaluation: step, losses, eval metrics, learning rate, throughput."""
    shown = [f"step {metrics['step']}/{total}", f"epoch {metrics['epoch']:.2f}"]
    for key, value in metrics.items():
        if key.startswith(("train_loss", "eval_")):
            shown.append(f"{key} {value:.4f}")
    shown += [f"lr {metrics['lr']:.2e}", f"tokens/s {metrics['tokens_per_s']:.0f}"]
    return "  ".join(shown)


def build_inputs(cfg, session):
    """Tokenizer, task data, tokenized splits and the LoRA model for `cfg`.

    A session that caches (a reused Tune actor) loads the tokenizer, data and base model once
    per process and hands each run a deep copy. Either way the new task head and the LoRA
    weights are drawn right after `seed_everything(cfg.seed)`: `from_pretrained` draws a new
    head from the global generator while loading, so a run's numbers would otherwise depend on
    whether its base model was loaded or taken from the cache.
    """

    tokenizer = session.reuse(("tokenizer", cfg.model), lambda: load_tokenizer(cfg.model))
    data = session.reuse(("data", cfg.data), lambda: load_task(cfg.data))
    train_ds, eval_ds = session.reuse(
        ("tokenized", cfg.model, cfg.data),
        lambda: tokenize(data, tokenizer, cfg.data.max_length))
    # 4-bit weights are quantized as they reach their device, so they load there.
    device = session.device() if cfg.model.quantization != "none" else "cpu"
    args = (cfg.model, data.task, data.num_labels, tokenizer.pad_token_id)
    if session.cache_models:
        base, new_keys = session.reuse(("model", *args, device),
                                       lambda: load_model(*args, new_keys=True, device=device))
        base = fresh_copy(base)
    else:
        base, new_keys = load_model(*args, new_keys=True, device=device)
    seed_everything(cfg.seed)
    reset_new_weights(base, new_keys)
    peft_model = add_lora(base, cfg.lora, data.task)
    if cfg.model.gradient_checkpointing:
        enable_gradient_checkpointing(peft_model)
    return tokenizer, data, train_ds, eval_ds, peft_model


def reset_new_weights(model, names: list[str]) -> None:
    """Draws the weights that the checkpoint did not hold (the new task head) again, as BERT-style
    heads are initialized: normal(0, initializer_range), biases 0.

    They are drawn in the model's own parameter order: `names` comes from transformers' loading
    report, whose order can change from one process to the next (it is built from sets), and
    the draws must not.
    """
    import torch

    std = getattr(model.config, "initializer_range", 0.02)
    new = set(names)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in new:
                param.zero_() if name.endswith("bias") else param.normal_(0.0, std)


def train_fn_per_worker(config: dict) -> None:
    """Finetunes a LoRA adapter on one worker of a Ray Train run.

    Args:
        config: `RunConfig.to_dict()`.
    """

    run_loop(config, TrainSession())


def run_loop(config: dict, session) -> None:
    """Build -> fit -> evaluate for one run, reporting every evaluation through `session`.

    Args:
        config: `RunConfig.to_dict()`.
        session: a `hk_tune.train.session` session: a Ray Train worker or a Tune trial.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    # torch, deferred with the training itself
    from hk_tune.dropout import attach
    from hk_tune.train.accumulation import StepSums, micro_batch_groups, optimizer_step
    from hk_tune.train.precision import Precision

    cfg = RunConfig.from_dict(config, where="train_fn_per_worker config")
    rank, world_size = session.world()

    # Build: same seed on every worker, so the new head and the LoRA init agree before DDP.
    tokenizer, data, train_ds, eval_ds, peft_model = build_inputs(cfg, session)
    handle = attach(peft_model, cfg.dropout)  # before DDP: patches the model in place
    model = session.prepare_model(peft_model)
    precision = Precision.for_model(cfg.optim.precision, peft_model)
    loader, sampler = build_train_loader(train_ds, cfg.optim.batch_size, tokenizer.pad_token_id,
                                         cfg.seed, rank, world_size, session)
    accumulate = cfg.optim.grad_accum_steps
    steps_per_epoch = math.ceil(len(loader) / accumulate)
    total_steps = step_budget(cfg.optim, steps_per_epoch)
    metric = selection_metric(data.task, cfg.metric)
    best = RunningBest(metric, metric_mode(metric))
    counts = trainable_counts(peft_model)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, round(cfg.optim.warmup_ratio * total_steps), total_steps)

    # Resume: a run with this name that already reported a checkpoint continues from it.
    step = 0
    seed_everything(cfg.seed + rank)  # different dropout masks on each worker
    checkpoint = session.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            step, best.value, best.step = load_checkpoint(
                Path(folder), peft_model, optimizer, scheduler, rank, where=checkpoint.path,
                scaler=precision.scaler)
        if rank == 0:
            print(f"resuming at step {step} of {total_steps}", file=sys.stderr, flush=True)

    # Fit.
    eval_batch_size = cfg.optim.eval_batch_size or cfg.optim.batch_size
    sums = StepSums()
    started = time.perf_counter()
    while step < total_steps:
        epoch = step // steps_per_epoch
        sampler.set_epoch(epoch)
        steps_done = step - epoch * steps_per_epoch  # skip what the checkpoint already saw
        for group in micro_batch_groups(loader, accumulate, skip=steps_done):
            model.train()
            done = optimizer_step(model, group, handle, data.task, optimizer, precision,
                                  trainable, cfg.optim.grad_clip, step + 1, cfg.optim.lr)
            scheduler.step()
            step += 1
            sums.add(done)
            if not is_eval_step(step, total_steps, steps_per_epoch, cfg.optim.eval_every):
                continue

            # Evaluate and report: every worker takes part (report is a barrier).
            elapsed = time.perf_counter() - started
            loss_sum, consistency_sum, total_sum, tokens, batches = sum_across_workers(
                [sums.task_loss, sums.consistency_loss, sums.loss, sums.tokens, sums.batches])
            with precision.autocast():
                evaluation = evaluate(peft_model, eval_ds, data.task, data.num_labels, tokenizer,
                                      eval_batch_size, cfg.generation, rank, world_size)
            best.update(evaluation[metric], step)
            metrics = {
                "step": step,
                "total_steps": total_steps,  # a search tells finished from early-stopped runs
                "epoch": step / steps_per_epoch,
                "train_loss": loss_sum / batches,
                "train_consistency_loss": consistency_sum / batches,
                # What the weighted consistency term is of the loss that was backpropagated.
                "train_consistency_share": consistency_share(
                    cfg.dropout.consistency_weight * consistency_sum, total_sum),
                **evaluation,
                **best.metrics(),
                "lr": scheduler.get_last_lr()[0],
                "tokens_per_s": tokens / elapsed,
                "world_size": world_size,
                "trainable_lora_params": counts["lora"],
                "trainable_head_params": counts["head"],
            }
            with tempfile.TemporaryDirectory() as folder:
                save_checkpoint(Path(folder), peft_model, optimizer, scheduler, step, rank,
                                best=(best.value, best.step), scaler=precision.scaler)
                session.report(metrics, Path(folder), f"checkpoint_step{step:07d}")
            if rank == 0 and session.prints_progress:
                # stderr: stdout stays for results (`hk-tune train --json` ends with JSON).
                print(format_progress(metrics, total_steps), file=sys.stderr, flush=True)
            sums = StepSums()
            started = time.perf_counter()
            if step >= total_steps:
                break
    handle.remove()
