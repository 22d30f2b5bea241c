"""From normalized rows to model inputs: tokenizing a task and padding a batch.

Classification and regression: the tokenizer's own encoding of text (and text_pair), truncated
to max_length. Causal LM: prompt + PROMPT_SEPARATOR + target + eos, with the loss on target and eos
tokens only; the eval set also keeps what generation needs (prompt ids and reference texts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hk_tune.errors import ConfigError
from hk_tune.tasks import IGNORE_INDEX

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase

    from hk_tune.train.task import TaskData

PROMPT_SEPARATOR = "\n"  # between prompt and target, so generation knows where the answer starts

# Right-padded integer columns and their pad value (None: the tokenizer's pad id).
_PAD_VALUES: dict[str, int | None] = {
    "input_ids": None, "attention_mask": 0, "token_type_ids": 0, "labels": IGNORE_INDEX,
}


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> int:
    """Gives a tokenizer without a pad token (GPT-2's, LLaMA's) its eos token as pad, in place.

    Padding is always masked (attention_mask 0, labels -100), so reusing eos is safe; the model's
    `config.pad_token_id` must be set to the returned id too (GPT-2 sequence classification finds
    each row's last token with it).

    Returns:
        The pad token id to give `collate`.
    """
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ConfigError(f"tokenizer {tokenizer.name_or_path!r} has neither a pad nor an eos "
                              "token; set one of them")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer.pad_token_id


def tokenize(data: TaskData, tokenizer: PreTrainedTokenizerBase,
             max_length: int) -> tuple[Dataset, Dataset]:
    """Tokenizes a task's train and eval rows.

    Args:
        data: a loaded task.
        tokenizer: any transformers tokenizer; gets a pad token (`ensure_pad_token`) if it lacks
            one.
        max_length: tokens per example after truncation.

    Returns:
        (train, eval) with columns input_ids, attention_mask (+ token_type_ids when the tokenizer
        makes them) and labels: an int class id, a float for regression, or for causal_lm the
        input ids with prompt tokens set to -100. The causal_lm eval set also has prompt_ids
        (prompt + separator, to generate from), target (its reference text) and references (every
        target of that prompt in the eval set, for multi-reference BLEU).
    """
    ensure_pad_token(tokenizer)
    if data.task == "causal_lm":
        if max_length < 2:
            raise ConfigError(f"data.max_length={max_length}; causal_lm needs at least 2")
        eos = tokenizer.eos_token_id
        if eos is None:
            raise ConfigError(f"tokenizer {tokenizer.name_or_path!r} has no eos token, which "
                              "causal_lm appends to each target; set tokenizer.eos_token")
        references = _references(data.eval)
        return (
            _map(data.train, lambda b: _encode_lm(b, tokenizer, max_length, eos, None)),
            _map(data.eval, lambda b: _encode_lm(b, tokenizer, max_length, eos, references)),
        )
    pair = "text_pair" in data.train.column_names
    return tuple(_map(rows, lambda b: _encode_text(b, tokenizer, max_length, pair))
                 for rows in (data.train, data.eval))


def _map(rows: Dataset, fn) -> Dataset:
    return rows.map(fn, batched=True, remove_columns=rows.column_names)


def _encode_text(batch: dict, tokenizer, max_length: int, pair: bool) -> dict:
    texts = (batch["text"], batch["text_pair"]) if pair else (batch["text"],)
    encoded = tokenizer(*texts, truncation=True, max_length=max_length)
    out = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
           "labels": batch["label"]}
    if "token_type_ids" in encoded:  # BERT-style models embed the segment of a sentence pair
        out["token_type_ids"] = encoded["token_type_ids"]
    return out


def _encode_lm(batch: dict, tokenizer, max_length: int, eos: int,
               references: dict[str, list[str]] | None) -> dict:
    # The prompt keeps the tokenizer's specials (LLaMA's BOS); the target is a plain continuation.
    prompts = tokenizer([p + PROMPT_SEPARATOR for p in batch["prompt"]])["input_ids"]
    targets = tokenizer(batch["target"], add_special_tokens=False)["input_ids"]
    out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    if references is not None:
        out.update(prompt_ids=[], target=batch["target"],
                   references=[references[p] for p in batch["prompt"]])
    for prompt, target in zip(prompts, targets, strict=True):
        # Truncation keeps at least one target token, so no example is all -100 (a NaN loss).
        prompt = prompt[: max_length - 1]
        target = (target + [eos])[: max_length - len(prompt)]
        out["input_ids"].append(prompt + target)
        out["attention_mask"].append([1] * (len(prompt) + len(target)))
        out["labels"].append([IGNORE_INDEX] * len(prompt) + target)
        if references is not None:
            out["prompt_ids"].append(prompt)
    return out


def _references(rows: Dataset) -> dict[str, list[str]]:
    """Prompt -> all its targets, in order: E2E has several human references per input."""
    grouped: dict[str, list[str]] = {}
    for prompt, target in zip(rows["prompt"], rows["target"], strict=True):
        grouped.setdefault(prompt, []).append(target)
    return grouped


def collate(features: list[dict], pad_token_id: int) -> dict[str, Any]:
    """Pads a list of tokenized rows into a batch (dynamic padding to the longest row).

    Args:
        features: rows of a `tokenize` output (lists or tensors).
        pad_token_id: the tokenizer's pad id (`ensure_pad_token`).

    Returns:
        Tensors (B, L) input_ids, attention_mask (+ token_type_ids), right-padded; labels (B,)
        long for classes or float32 for regression, or (B, L) with -100 on padding for causal_lm.
        A causal_lm eval batch also has prompt_ids and prompt_attention_mask (B, Lp), padded on
        the left so that generation continues right after each prompt, and target / references
        as lists of strings.
    """
    import torch

    batch: dict[str, Any] = {}
    for key in features[0]:
        values = [row[key] for row in features]
        if key == "prompt_ids":
            batch["prompt_ids"] = _pad(values, pad_token_id, left=True)
            batch["prompt_attention_mask"] = _pad([[1] * len(v) for v in values], 0, left=True)
        elif key == "labels" and not _is_sequence(values[0]):
            floats = any(isinstance(v, float) or (torch.is_tensor(v) and v.is_floating_point())
                         for v in values)
            batch[key] = torch.tensor([float(v) if floats else int(v) for v in values],
                                      dtype=torch.float32 if floats else torch.long)
        elif key in _PAD_VALUES:
            pad = _PAD_VALUES[key]
            batch[key] = _pad(values, pad_token_id if pad is None else pad, left=False)
        else:  # text kept for generation metrics
            batch[key] = values
    return batch


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0


def _pad(rows: list, value: int, left: bool) -> torch.Tensor:
    import torch

    longest = max(len(r) for r in rows)
    out = torch.full((len(rows), longest), value, dtype=torch.long)  # (B, L)
    for i, row in enumerate(rows):
        row = torch.as_tensor(row, dtype=torch.long)
        if left:
            out[i, longest - len(row):] = row
        else:
            out[i, : len(row)] = row
    return out
