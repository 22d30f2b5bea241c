"""Evaluation of the model a run trains: eval loss and the task's metrics over the eval set,
split across workers and gathered. Runs the unwrapped model in eval mode, where the attached
dropout is a no-op."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from hk_tune.tasks import target_tokens
from hk_tune.train.encoding import collate
from hk_tune.train.metrics import compute_metrics

if TYPE_CHECKING:
    import torch

    from hk_tune.config.sections import GenerationSettings

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def model_inputs(batch: dict, device) -> dict[str, torch.Tensor]:
    """The tensors the model takes, on `device` (eval batches also carry generation columns)."""
    return {k: batch[k].to(device) for k in MODEL_INPUTS if k in batch}


def sum_across_workers(values: list[float]) -> list[float]:
    """Sums `values` over all workers (a no-op on one worker)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_across_workers(items: list) -> list:
    """Concatenates each worker's `items` on every worker (a no-op on one worker)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return items
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def row_batches(dataset, indices: Sequence[int], batch_size: int) -> Iterator[list[dict]]:
    """`dataset`'s rows at `indices`, `batch_size` at a time, as lists of dicts."""
    for start in range(0, len(indices), batch_size):
        yield [dataset[i] for i in indices[start:start + batch_size]]


def generate_texts(peft_model, batch: dict, tokenizer, generation: GenerationSettings,
                   device) -> list[str]:
    """Greedy or beam-search continuations of the batch's (left-padded) prompts, decoded
    without the prompt."""
    prompt_ids = batch["prompt_ids"].to(device)  # (B, Lp)
    output = peft_model.generate(
        input_ids=prompt_ids, attention_mask=batch["prompt_attention_mask"].to(device),
        do_sample=False, num_beams=generation.num_beams,
        max_new_tokens=generation.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    new_tokens = output[:, prompt_ids.shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def evaluate(peft_model, eval_ds, task: str, num_labels: int, tokenizer, batch_size: int,
             generation: GenerationSettings, rank: int, world_size: int) -> dict[str, float]:
    """Eval loss and task metrics over the eval set, split across workers and gathered.

    Runs the unwrapped model in eval mode, where the attached dropout is a no-op.
    """
    import torch

    peft_model.eval()
    device = next(peft_model.parameters()).device
    shard = range(rank, len(eval_ds), world_size)  # no padding rows, unlike DistributedSampler
    # Batches of similar length pad little (`benchmarks/eval_order.py`); every metric is
    # computed over (prediction, reference) pairs, so their order does not matter.
    lengths = [len(ids) for ids in eval_ds["input_ids"]]
    shard = sorted(shard, key=lengths.__getitem__)
    loss_sum, weight, predictions, references = 0.0, 0.0, [], []
    with torch.no_grad():
        for rows in row_batches(eval_ds, shard, batch_size):
            batch = collate(rows, tokenizer.pad_token_id)
            inputs = model_inputs(batch, device)
            out = peft_model(**inputs)
            labels = inputs["labels"]
            if task == "causal_lm":  # loss is a mean over target tokens
                n = target_tokens(labels).sum().item()
                predictions += generate_texts(peft_model, batch, tokenizer, generation, device)
                references += batch["references"]  # every target of the prompt (multi-ref BLEU)
            else:
                n = len(rows)
                logits = out.logits.float()
                predictions += (logits.squeeze(-1) if task == "regression"
                                else logits.argmax(-1)).tolist()
                references += labels.tolist()
            loss_sum, weight = loss_sum + out.loss.item() * n, weight + n
    loss_sum, weight = sum_across_workers([loss_sum, weight])
    predictions, references = gather_across_workers(predictions), gather_across_workers(references)
    metrics = compute_metrics(task, predictions, references, num_labels)
    metrics = {"loss": loss_sum / max(weight, 1.0), **metrics}
    return {f"eval_{key}": value for key, value in metrics.items()}
