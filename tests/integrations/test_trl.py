"""`with_dropout(trl.SFTTrainer)`: HiddenKey on a tiny LLaMA over prompt-completion rows, with
the prompt tokens out of both the task loss and the token-level consistency loss."""

from __future__ import annotations

import pytest
import torch

from hk_tune.dropout import consistency_loss
from hk_tune.integrations.transformers import with_dropout
from hk_tune.tasks import IGNORE_INDEX

trl = pytest.importorskip("trl")

NUMBERS = ["zero", "one", "two", "three", "four"]


def test_sft_with_hiddenkey_trains_on_completion_tokens_only(tmp_path, tiny_models):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    rows = Dataset.from_list([{"prompt": f"name the number {i % 5}:",
                               "completion": f" {NUMBERS[i % 5]}"} for i in range(16)])
    seen = []

    class Recording(with_dropout(trl.SFTTrainer)):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training:
                seen.append({k: v.clone() for k, v in inputs.items() if torch.is_tensor(v)})
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    torch.manual_seed(0)
    args = trl.SFTConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=3,
                         logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                         learning_rate=1e-3, disable_tqdm=True)
    trainer = Recording(model=AutoModelForCausalLM.from_pretrained(tiny_models["llama"]),
                        args=args, train_dataset=rows, processing_class=tokenizer,
                        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj",
                                                                                  "v_proj"]),
                        dropout="hiddenkey")
    trainer.train()
    assert trainer.dropout_task == "causal_lm" and len(seen) == 3

    prompt_length = len(tokenizer("name the number 0:")["input_ids"])
    for batch in seen:  # the collator masks the prompt: only completion (and eos) tokens count
        labels = batch["labels"]
        assert (labels[:, :prompt_length] == IGNORE_INDEX).all()
        assert (labels[:, prompt_length:] != IGNORE_INDEX).any()
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 3 and all(row["consistency_loss"] > 0 for row in logged)


def test_the_consistency_loss_ignores_what_the_token_mask_leaves_out():
    """The term SFT's completion-only labels feed: changing the logits at masked positions does
    not change it, changing a counted position does."""
    torch.manual_seed(0)
    first, second = torch.randn(2, 6, 11), torch.randn(2, 6, 11)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    mask[:, 4:] = True  # the completion
    base = consistency_loss("kl", first, second, False, mask)
    outside = first.clone()
    outside[:, :4, 0] += 5.0  # one vocabulary entry: softmax ignores a shift of all
    assert torch.equal(consistency_loss("kl", outside, second, False, mask), base)
    inside = first.clone()
    inside[:, 5, 0] += 5.0
    assert not torch.equal(consistency_loss("kl", inside, second, False, mask), base)
