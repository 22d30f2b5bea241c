"""One training step's loss: task loss plus the consistency compensation (docs/design.md 2.3).

`compute_loss` is the only thing the training loop calls. With a consistency loss it runs two
passes over the same batch: `kl` a second training-mode pass, `js` an eval-mode (dropout-off)
pass. `consistency_grad: one` runs the second pass under no_grad (the paper: a second forward
pass, no extra activation memory; `benchmarks/dropout_overhead.py` measures both); `both`
keeps gradients through both and averages the task loss (R-Drop).

When the first blocks of the model have no randomness (decoders dropping in the latter half),
both passes compute the same prefix: the second pass replays the first pass's block outputs
instead of recomputing them. The replayed tensors are the first pass's own, so gradients (under
`both`) flow through the shared prefix once with the summed upstream gradient, which is exactly
what recomputing would give.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from hk_tune.dropout.attachment import Attachment
from hk_tune.dropout.consistency import CONSISTENCY, consistency_loss
from hk_tune.tasks import TASKS, target_tokens


@dataclass
class StepLoss:
    """What one step computed. `loss` is what to backpropagate."""

    loss: torch.Tensor
    task_loss: torch.Tensor
    consistency_loss: torch.Tensor
    logits: torch.Tensor  # of the first (training-mode) pass


@contextlib.contextmanager
def _recording(blocks: list[nn.Module]) -> Iterator[list]:
    outputs: list = [None] * len(blocks)
    hooks = [
        block.register_forward_hook(lambda m, i, o, k=k: outputs.__setitem__(k, o))
        for k, block in enumerate(blocks)
    ]
    try:
        yield outputs
    finally:
        for hook in hooks:
            hook.remove()


@contextlib.contextmanager
def _replaying(blocks: list[nn.Module], outputs: list) -> Iterator[None]:
    # An instance attribute shadows the class's forward; deleting it restores the class's.
    for block, output in zip(blocks, outputs, strict=True):
        block.forward = lambda *args, _out=output, **kwargs: _out
    try:
        yield
    finally:
        for block in blocks:
            del block.forward


@contextlib.contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[None]:
    was_training = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was_training)


def _token_mask(batch: dict, task: str) -> torch.Tensor | None:
    """Causal LM: the target tokens the consistency loss averages over."""
    if task != "causal_lm":
        return None
    return target_tokens(batch["labels"])


def compute_loss(model: nn.Module, batch: dict, handle: Attachment, task: str) -> StepLoss:
    """Task loss + λ · consistency loss for one batch.

    Args:
        model: the module to call (the peft model, or its DDP wrapper).
        batch: model inputs including `labels` (IGNORE_INDEX on ignored tokens for causal LM).
        handle: the `Attachment` returned by `attach`, which holds the spec.
        task: one of TASKS.

    Returns:
        StepLoss; call `.loss.backward()`.
    """
    if task not in TASKS:
        raise ValueError(f"task {task!r} is unknown; allowed: {list(TASKS)}")
    spec = handle.spec
    if spec.consistency == "none":
        first = model(**batch)
        return StepLoss(first.loss, first.loss, first.loss.new_zeros(()), first.logits)

    prefix = list(handle.layers[: handle.prefix_length])
    both = spec.consistency_grad == "both"
    with _recording(prefix) as outputs:
        first = model(**batch)
    grad = torch.enable_grad() if both else torch.no_grad()
    # kl: a second training-mode pass; js: the dropout-off (eval-mode) pass.
    second_trains = CONSISTENCY[spec.consistency].second_pass_trains
    with grad, _mode(model, second_trains), _replaying(prefix, outputs):
        second = model(**batch)

    task_loss = (first.loss + second.loss) / 2 if both else first.loss
    logits1, logits2 = first.logits, second.logits
    if task == "causal_lm":  # logits at t predict the token at t + 1
        logits1, logits2 = logits1[:, :-1], logits2[:, :-1]
    extra = consistency_loss(
        spec.consistency, logits1, logits2, task == "regression", _token_mask(batch, task)
    )
    loss = task_loss + spec.consistency_weight * extra
    return StepLoss(loss, task_loss.detach(), extra.detach(), first.logits)
