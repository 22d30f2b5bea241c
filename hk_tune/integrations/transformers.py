"""The dropout framework inside `transformers.Trainer` and any subclass of it (TRL's `SFTTrainer`).

    trainer = DropoutTrainer(model=peft_model, args=args, train_dataset=train,
                             dropout="hiddenkey")          # a preset, a flat dict or a DropoutSpec
    trainer.train()

    SFTDropoutTrainer = with_dropout(trl.SFTTrainer)       # the same on any Trainer subclass

`train()` attaches the spec to the (peft) model before the Trainer wraps it (DDP, accelerate), so
every worker patches its own copy; each training step's loss is hk_tune's `compute_loss` (the
task loss plus λ times the consistency loss, with the second pass the spec asks for); and the
attachment is removed when `train()` returns or fails, so `evaluate`, `predict` and
`save_model` afterwards see the unpatched model. Evaluation during training runs in eval mode,
where the attached dropout is off.

The mean consistency loss since the last log goes into the Trainer's own logs as
`consistency_loss`, so whatever `report_to` names (MLflow, W&B, TensorBoard) receives it.

Gradient accumulation is weighted as the Trainer weights its own loss: a causal-LM micro-batch
by its share of the accumulated target tokens (`num_items_in_batch`), anything else equally.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from hk_tune.dropout import PRESETS, DropoutSpec, attach, compute_loss
from hk_tune.tasks import TASKS, target_tokens

# Keys a Trainer's collator may add that are not model inputs: TRL's completion and assistant
# masks (already folded into `labels`). Padding-free batches (position_ids + cu_seq_lens) are
# refused: the attention dropout needs each row's padding mask.
NOT_MODEL_INPUTS = ("completion_mask", "assistant_masks")
PADDING_FREE_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k")


def as_spec(dropout: str | dict[str, Any] | DropoutSpec) -> DropoutSpec:
    """A preset name, a flat dict (`DropoutSpec.from_dict` keys, with an optional `preset`), or
    a spec, as a `DropoutSpec`."""
    if isinstance(dropout, DropoutSpec):
        return dropout
    if isinstance(dropout, str):
        if dropout not in PRESETS:
            raise ValueError(f"dropout={dropout!r} is not a preset; allowed: {sorted(PRESETS)}, "
                             "a flat dict of DropoutSpec keys, or a DropoutSpec")
        return PRESETS[dropout]
    if isinstance(dropout, dict):
        return DropoutSpec.from_dict(dropout, where="dropout=")
    raise TypeError(f"dropout= takes a preset name, a dict or a DropoutSpec, not "
                    f"{type(dropout).__name__}")


def infer_task(model) -> str:
    """The hk_tune task of a (peft) transformers model: causal LM, regression (one label or
    problem_type regression) or classification."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = type(base).__name__
    if name.endswith("ForCausalLM"):
        return "causal_lm"
    config = base.config
    if config.problem_type == "regression" or (config.problem_type is None
                                                and config.num_labels == 1):
        return "regression"
    if name.endswith("ForSequenceClassification"):
        return "classification"
    raise ValueError(f"{name}: hk_tune trains sequence classification, regression and causal "
                     f"LM models; pass task= one of {list(TASKS)} if this one is")


def with_dropout(trainer_class: type[Trainer]) -> type[Trainer]:
    """`trainer_class` with the dropout framework: a subclass taking `dropout=` (and an
    optional `task=`) beside its own arguments."""

    class WithDropout(trainer_class):
        def __init__(self, *args, dropout: str | dict | DropoutSpec = "hiddenkey",
                     task: str | None = None, **kwargs):
            self.dropout_spec = as_spec(dropout)
            if task is not None and task not in TASKS:
                raise ValueError(f"task={task!r}; allowed: {list(TASKS)}")
            super().__init__(*args, **kwargs)
            self.dropout_task = task or infer_task(self.model)
            self._attachment = None
            self._consistency_sum = torch.zeros((), device=self.args.device)
            self._consistency_count = 0

        def train(self, *args, **kwargs):
            self._attachment = attach(self.model, self.dropout_spec)
            # compute_loss below scales each micro-batch for accumulation itself.
            scaled, self.loss_is_scaled_for_ga = self.loss_is_scaled_for_ga, True
            try:
                return super().train(*args, **kwargs)
            finally:
                self.loss_is_scaled_for_ga = scaled
                self._attachment.remove()
                self._attachment = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self._attachment is None or not model.training:
                return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                            num_items_in_batch=num_items_in_batch)
            if any(key in inputs for key in PADDING_FREE_KEYS):
                raise ValueError("padding-free batches are not supported with dropout=: the "
                                 "attention dropout needs each row's padding mask; set "
                                 "padding_free=False")
            batch = {k: v for k, v in inputs.items() if k not in NOT_MODEL_INPUTS}
            step = compute_loss(model, batch, self._attachment, self.dropout_task)
            self._consistency_sum += step.consistency_loss.detach().float()
            self._consistency_count += 1
            loss = step.loss * self._micro_batch_weight(batch, num_items_in_batch)
            return (loss, step) if return_outputs else loss

        def _micro_batch_weight(self, batch: dict, num_items_in_batch) -> float | torch.Tensor:
            """What the Trainer's own loss would weigh this micro-batch by: its target tokens
            over the accumulated ones (times the processes averaging them, as the Trainer
            does), or 1 / the accumulation steps."""
            if self.dropout_task == "causal_lm" and num_items_in_batch is not None:
                weight = target_tokens(batch["labels"]).sum() / num_items_in_batch
                if self.args.average_tokens_across_devices:
                    weight = weight * self.accelerator.num_processes
                return weight
            return 1.0 / self.current_gradient_accumulation_steps

        def log(self, logs: dict[str, float], *args, **kwargs) -> None:
            if "loss" in logs and self._consistency_count:
                mean = self._consistency_sum / self._consistency_count
                logs["consistency_loss"] = self.accelerator.reduce(mean, "mean").item()
                self._consistency_sum.zero_()
                self._consistency_count = 0
            super().log(logs, *args, **kwargs)

    WithDropout.__name__ = WithDropout.__qualname__ = f"{trainer_class.__name__}WithDropout"
    WithDropout.__doc__ = (f"{trainer_class.__name__} with hk_tune's dropout framework "
                           "(hk_tune.integrations.transformers).")
    return WithDropout


DropoutTrainer = with_dropout(Trainer)
DropoutTrainer.__name__ = DropoutTrainer.__qualname__ = "DropoutTrainer"
