"""The dropout framework inside the real `transformers.Trainer`: each step's loss is hk_tune's
`compute_loss` on the same batch and random state, the consistency term reaches the Trainer's
logs, the attachment is gone after `train()`, accumulation weighs micro-batches as the Trainer
does, and a resumed run continues exactly."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from hk_tune.dropout import PRESETS, DropoutSpec, attach, compute_loss
from hk_tune.integrations.transformers import DropoutTrainer, as_spec, infer_task

SENTENCES = ["the movie was great", "wonderful actors and a great story", "i loved it",
             "the food was terrible", "slow and boring", "i hated it"]


def training_args(tmp_path, **changes):
    from transformers import TrainingArguments

    settings = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4,
                    learning_rate=1e-3, max_steps=3, logging_steps=1, save_strategy="no",
                    report_to=[], seed=0, use_cpu=True, disable_tqdm=True)
    return TrainingArguments(**{**settings, **changes})


def minilm_classifier():
    """The embedded MiniLM with hk_tune's own LoRA and task head."""
    from hk_tune.config.sections import LoraSettings, ModelSettings
    from hk_tune.train.model import add_lora, load_model, load_tokenizer

    settings = ModelSettings(name="minilm")
    tokenizer = load_tokenizer(settings)
    torch.manual_seed(0)
    model = load_model(settings, "classification", 2, tokenizer.pad_token_id)
    return add_lora(model, LoraSettings(), "classification"), tokenizer


def sentiment_rows(tokenizer, n: int = 24):
    from datasets import Dataset

    rows = [{"text": SENTENCES[i % 6], "label": int(i % 6 < 3)} for i in range(n)]
    return Dataset.from_list(rows).map(lambda r: tokenizer(r["text"]), remove_columns=["text"])


class Recording(DropoutTrainer):
    """Keeps, for each training step, the batch, the random state and the trainable weights
    it started from, and the loss it returned."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            self.steps.append({
                "batch": {k: v.clone() for k, v in inputs.items()},
                "rng": torch.get_rng_state(),
                "weights": {n: p.detach().clone() for n, p in model.named_parameters()
                            if p.requires_grad}})
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if model.training:
            self.steps[-1]["loss"] = loss.detach().clone()
        return loss


def test_each_step_is_hk_tunes_compute_loss_and_its_consistency_term_is_logged(tmp_path):
    model, tokenizer = minilm_classifier()
    untouched = copy.deepcopy(model)
    trainer = Recording(model=model, args=training_args(tmp_path), processing_class=tokenizer,
                        train_dataset=sentiment_rows(tokenizer), dropout="hiddenkey")
    trainer.steps = []
    trainer.train()
    assert trainer.dropout_task == "classification" and len(trainer.steps) == 3

    for step in trainer.steps:  # replayed outside the Trainer, from the same start
        replay = copy.deepcopy(untouched)
        replay.load_state_dict(step["weights"], strict=False)
        replay.train()
        handle = attach(replay, PRESETS["hiddenkey"])
        torch.set_rng_state(step["rng"])
        expected = compute_loss(replay, step["batch"], handle, "classification")
        handle.remove()
        assert torch.equal(step["loss"], expected.loss.detach())
        assert expected.consistency_loss > 0

    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 3
    for row, step in zip(logged, trainer.steps, strict=True):
        assert row["loss"] == pytest.approx(step["loss"].item(), rel=1e-6)
        assert row["consistency_loss"] > 0


def test_the_model_is_unpatched_after_train_even_when_train_fails(tmp_path):
    from transformers import TrainerCallback

    model, tokenizer = minilm_classifier()
    attention = model.get_base_model().config._attn_implementation
    trainer = DropoutTrainer(model=model, args=training_args(tmp_path, max_steps=1),
                             processing_class=tokenizer, train_dataset=sentiment_rows(tokenizer),
                             dropout={"preset": "dropkey_column", "attn_logits.rate": 0.2})
    trainer.train()
    assert model.get_base_model().config._attn_implementation == attention
    attach(model, PRESETS["hiddenkey"]).remove()  # refused if an attachment were still there

    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            raise RuntimeError("boom")

    trainer.add_callback(Boom())
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train()
    assert trainer._attachment is None
    attach(model, PRESETS["hiddenkey"]).remove()
    assert model.get_base_model().config._attn_implementation == attention


def causal_rows(tokenizer):
    """Rows of different lengths, so micro-batches hold different numbers of target tokens."""
    from datasets import Dataset

    texts = ["one", "two three four five six", "seven eight", "nine ten eleven twelve",
             "zero", "three four five", "six seven eight nine ten eleven", "two"]
    return Dataset.from_list([{"text": t} for t in texts]).map(
        lambda r: tokenizer(r["text"]), remove_columns=["text"])


def lora_llama(path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path)
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                            task_type="CAUSAL_LM"))


@pytest.mark.parametrize("task", ["causal_lm"])
def test_accumulated_micro_batches_update_as_one_batch(tmp_path, tiny_models, task):
    """Two micro-batches of 4 rows and one batch of 8 give the same update: each micro-batch
    weighs by its share of the target tokens, as the Trainer's own loss does."""
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    spec = DropoutSpec()  # no randomness, so both runs see the same numbers
    weights = []
    for batch, accumulate in ((8, 1), (4, 2)):
        model = lora_llama(tiny_models["llama"])
        args = training_args(tmp_path / f"{batch}", per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accumulate, max_steps=1,
                             learning_rate=1e-2)
        trainer = DropoutTrainer(model=model, args=args, train_dataset=causal_rows(tokenizer),
                                 data_collator=collator, dropout=spec)
        rows = trainer.train_dataset  # the same rows in the same order in both runs
        trainer._get_train_sampler = lambda *a, rows=rows, **k: (
            torch.utils.data.SequentialSampler(rows))
        trainer.train()
        assert trainer.dropout_task == task
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()
                        if "lora_" in n})
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], rtol=1e-5, atol=1e-6)


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(tmp_path):
    model, tokenizer = minilm_classifier()
    start = copy.deepcopy(model)
    rows = sentiment_rows(tokenizer)
    whole = DropoutTrainer(model=model, args=training_args(tmp_path / "whole", max_steps=4),
                           processing_class=tokenizer, train_dataset=rows, dropout="hiddenkey")
    whole.train()

    first = copy.deepcopy(start)
    args = training_args(tmp_path / "parts", max_steps=4, save_strategy="steps", save_steps=2)
    interrupted = DropoutTrainer(model=first, args=args, processing_class=tokenizer,
                                 train_dataset=rows, dropout="hiddenkey")
    interrupted.train()
    checkpoint = tmp_path / "parts" / "out" / "checkpoint-2"
    resumed_model = copy.deepcopy(start)
    resumed = DropoutTrainer(model=resumed_model, args=args, processing_class=tokenizer,
                             train_dataset=rows, dropout="hiddenkey")
    resumed.train(resume_from_checkpoint=str(checkpoint))
    for (name, a), (_, b) in zip(model.named_parameters(), resumed_model.named_parameters(),
                                 strict=True):
        if a.requires_grad:
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_dropout_and_task_arguments_are_checked():
    assert as_spec("hiddenkey") == PRESETS["hiddenkey"]
    assert as_spec({"preset": "hiddenkey", "consistency.weight": 3.0}).consistency_weight == 3.0
    with pytest.raises(ValueError, match="not a preset; allowed"):
        as_spec("hiddenkee")
    with pytest.raises(TypeError, match="preset name, a dict or a DropoutSpec"):
        as_spec(0.1)
    from hk_tune.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown key 'attn_logit.rate'"):
        as_spec({"attn_logit.rate": 0.1})
    with pytest.raises(ValueError, match="task='generation'"):
        DropoutTrainer(task="generation")


def test_the_task_is_read_from_the_model(tiny_models):
    from transformers import AutoModelForSequenceClassification

    assert infer_task(lora_llama(tiny_models["llama"])) == "causal_lm"
    bert = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=3)
    assert infer_task(bert) == "classification"
    scorer = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=1)
    assert infer_task(scorer) == "regression"


def test_gradient_checkpointing_and_bf16_through_the_trainers_own_flags(tmp_path):
    """`gradient_checkpointing=True` recomputes blocks with the same dropout masks: the same
    losses and weights as without it. `bf16=True` (autocast on the CPU) trains finite losses
    with the consistency term."""
    model, tokenizer = minilm_classifier()
    start = copy.deepcopy(model)
    rows = sentiment_rows(tokenizer)
    runs = {}
    for name, changes in (("plain", {}), ("checkpointing", {"gradient_checkpointing": True}),
                          ("bf16", {"bf16": True})):
        trained = copy.deepcopy(start)
        trainer = DropoutTrainer(model=trained, args=training_args(tmp_path / name, **changes),
                                 processing_class=tokenizer, train_dataset=rows,
                                 dropout="hiddenkey")
        trainer.train()
        runs[name] = (trained, [r for r in trainer.state.log_history if "loss" in r])
    plain, checkpointed = runs["plain"], runs["checkpointing"]
    assert [r["loss"] for r in plain[1]] == [r["loss"] for r in checkpointed[1]]
    for (name, a), (_, b) in zip(plain[0].named_parameters(), checkpointed[0].named_parameters(),
                                 strict=True):
        if a.requires_grad:
            torch.testing.assert_close(a, b, msg=name)
    bf16_logs = runs["bf16"][1]
    assert all(math.isfinite(r["loss"]) and r["consistency_loss"] > 0 for r in bf16_logs)
    assert [r["loss"] for r in bf16_logs] != [r["loss"] for r in plain[1]]  # autocast was on


def test_padding_free_batches_are_refused_with_the_setting_to_change(tmp_path, tiny_models):
    from transformers import AutoTokenizer, DataCollatorForLanguageModeling

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    model = lora_llama(tiny_models["llama"])
    trainer = DropoutTrainer(model=model, args=training_args(tmp_path, max_steps=1),
                             train_dataset=causal_rows(tokenizer), dropout="hiddenkey",
                             data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
    trainer._attachment = attach(model, PRESETS["hiddenkey"])
    model.train()
    batch = {"input_ids": torch.ones(1, 4, dtype=torch.long), "labels": torch.ones(1, 4,
             dtype=torch.long), "cu_seq_lens_q": torch.tensor([0, 4], dtype=torch.int32)}
    with pytest.raises(ValueError, match="padding_free=False"):
        trainer.compute_loss(model, batch)
    trainer._attachment.remove()
