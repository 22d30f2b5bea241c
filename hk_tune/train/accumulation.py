"""One optimizer step over k micro-batches (`optim.grad_accum_steps`), in the run's precision.

Each micro-batch's loss is a mean over its own rows (over its target tokens for causal LM, as
transformers' loss and the token-level consistency loss are). Weighting each by its share of the
group's rows (tokens) before backward makes the summed gradient the gradient of the mean over
the whole group: k micro-batches update the weights as one batch of all their rows does, also
when the last group of an epoch is short. Under DDP every micro-batch but the last skips the
gradient all-reduce (`no_sync`); the last one averages the accumulated sums across workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Iterator

import torch

from hk_tune.dropout import compute_loss
from hk_tune.errors import DivergedError
from hk_tune.tasks import target_tokens
from hk_tune.train.precision import Precision


@dataclasses.dataclass
class StepSums:
    """What a step adds to the running training metrics, summed over its micro-batches."""

    task_loss: float = 0.0
    consistency_loss: float = 0.0
    loss: float = 0.0
    tokens: float = 0.0
    batches: int = 0

    def add(self, other: StepSums) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


def micro_batch_groups(loader: Iterable, k: int, skip: int = 0) -> Iterator[list]:
    """The loader's batches in groups of k (the last group of the epoch may be shorter), after
    skipping the first `skip` groups, which a resumed run has already trained on."""
    group: list = []
    for index, batch in enumerate(loader):
        if index < skip * k:
            continue
        group.append(batch)
        if len(group) == k:
            yield group
            group = []
    if group:
        yield group


def micro_batch_weights(group: list[dict], task: str) -> list[float]:
    """Each micro-batch's share of the group's rows, or of its target tokens for causal LM."""
    if task == "causal_lm":
        counts = [target_tokens(batch["labels"]).sum().item() for batch in group]
    else:
        counts = [len(batch["labels"]) for batch in group]
    total = sum(counts)
    return [count / total if total else 1.0 / len(group) for count in counts]


def check_finite(loss: float, step: int, lr: float) -> None:
    """Raises `DivergedError` when the loss is NaN or infinite.

    Once the loss is not finite, the weights the optimizer writes from it are not either, and
    every later step and evaluation is NaN: stop at once and say what to change.

    Args:
        loss: this step's loss (task loss plus the weighted consistency loss).
        step: the step computing it, counted from 1.
        lr: the configured peak learning rate, named in the message.
    """
    if not math.isfinite(loss):
        raise DivergedError(f"step {step}: loss is {loss}; the run diverged: lower optim.lr "
                            f"({lr:g}) or set optim.grad_clip")


def optimizer_step(model, group: list[dict], handle, task: str, optimizer,
                   precision: Precision, trainable: list, grad_clip: float | None, step: int,
                   lr: float) -> StepSums:
    """Forward and backward over every micro-batch of `group`, then one optimizer step.

    Args:
        model: the module to call (the peft model, or its DDP wrapper).
        handle: the dropout `Attachment`.
        step: the step being taken, counted from 1 (for the divergence message).
        lr: the configured peak learning rate (for the divergence message).
    """
    sums = StepSums()
    weights = micro_batch_weights(group, task)
    no_sync = getattr(model, "no_sync", None)  # DDP's; absent on an unwrapped model
    for index, (batch, weight) in enumerate(zip(group, weights, strict=True)):
        last = index == len(group) - 1
        sync = contextlib.nullcontext() if last or no_sync is None else no_sync()
        with sync:
            with precision.autocast():
                out = compute_loss(model, batch, handle, task)
            loss = out.loss.item()
            check_finite(loss, step, lr)
            precision.scaler.scale(out.loss * weight).backward()
        sums.task_loss += out.task_loss.item()
        sums.consistency_loss += out.consistency_loss.item()
        sums.loss += loss
        sums.tokens += batch["attention_mask"].sum().item()
        sums.batches += 1
    if grad_clip is not None:
        precision.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
    precision.scaler.step(optimizer)
    precision.scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return sums
