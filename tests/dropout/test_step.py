"""compute_loss: the two passes, js against the eval pass, shared-prefix reuse."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny_lora import build

from hk_tune.dropout import PRESETS, DropoutSpec, attach, compute_loss
from hk_tune.dropout.consistency import CONSISTENCY, kl_to_reference, symmetric_kl


def test_js_compares_against_the_eval_pass():
    model, batch, task = build("bert")
    handle = attach(model, PRESETS["hiddenkey_js"])
    model.train()
    torch.manual_seed(0)
    out = compute_loss(model, batch, handle, task)
    assert model.training
    torch.manual_seed(0)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    first = model(**inputs).logits
    model.eval()
    reference = model(**inputs).logits
    torch.testing.assert_close(out.consistency_loss, kl_to_reference(first, reference).detach())


def test_kl_second_pass_is_a_fresh_training_pass():
    model, batch, task = build("bert")
    handle = attach(model, PRESETS["hiddenkey"])
    model.train()
    torch.manual_seed(0)
    out = compute_loss(model, batch, handle, task)
    torch.manual_seed(0)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    first, second = model(**inputs).logits, model(**inputs).logits
    torch.testing.assert_close(out.consistency_loss, symmetric_kl(first, second).detach())
    assert out.consistency_loss > 0


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("grad_mode", ["one", "both"])
@pytest.mark.parametrize("loss", sorted(CONSISTENCY))  # every row of the consistency table
def test_prefix_reuse_is_exact(grad_mode, loss):
    """A decoder dropping in the latter half: replaying the first pass's prefix gives the same
    loss and the same gradients as recomputing it."""
    base, batch, task = build("llama", layers=4)
    spec = DropoutSpec.from_dict(
        {"preset": "hiddenkey", "consistency.loss": loss, "consistency.grad": grad_mode}
    )
    results = []
    for reuse in (True, False):
        model = copy.deepcopy(base)
        handle = attach(model, spec)
        assert handle.prefix_length == 2
        if not reuse:
            handle.prefix_length = 0
        model.train()
        torch.manual_seed(0)
        out = compute_loss(model, batch, handle, task)
        out.loss.backward()
        results.append((out.loss.detach(), _grads(model)))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-7)


def test_prefix_is_empty_when_the_input_is_dropped_or_stock_dropout_kept():
    model, _, _ = build("llama", layers=4)
    assert attach(copy.deepcopy(model), PRESETS["hiddenkey_input"]).prefix_length == 0
    assert attach(copy.deepcopy(model), PRESETS["hf_default"]).prefix_length == 0
    assert attach(copy.deepcopy(model), PRESETS["hiddenkey_output"]).prefix_length == 2
    assert attach(copy.deepcopy(model), DropoutSpec.from_dict(
        {"output.rate": 0.1})).prefix_length == 4


def test_both_averages_the_task_loss_over_the_passes():
    model, batch, task = build("bert")
    spec = DropoutSpec.from_dict({"preset": "hiddenkey", "consistency.grad": "both"})
    handle = attach(model, spec)
    model.train()
    torch.manual_seed(0)
    out = compute_loss(model, batch, handle, task)
    torch.manual_seed(0)
    first, second = model(**batch).loss, model(**batch).loss
    torch.testing.assert_close(out.task_loss, ((first + second) / 2).detach())


def test_regression_and_unknown_task():
    model, batch, _ = build("bert", num_labels=1)
    batch = {**batch, "labels": torch.tensor([0.5, -1.0, 2.0])}
    handle = attach(model, PRESETS["hiddenkey"])
    model.train()
    out = compute_loss(model, batch, handle, "regression")
    assert out.consistency_loss > 0
    with pytest.raises(ValueError, match="allowed"):
        compute_loss(model, batch, handle, "ranking")


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_output_dropout_reaches_peft_trained_heads(arch):
    """With task_type=SEQ_CLS peft trains a copy of the head: output dropout must act there."""
    from peft import LoraConfig, TaskType, get_peft_model
    from tiny_configs import tiny_config
    from transformers import AutoModelForSequenceClassification

    config = tiny_config(arch, 120, 1, None)
    model = AutoModelForSequenceClassification.from_config(config)
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=4,
                                             target_modules=["query", "value"]))
    ids = torch.randint(2, 120, (4, 10))
    model.eval()
    reference = model(input_ids=ids).logits
    handle = attach(model, DropoutSpec.from_dict({"output.rate": 0.5}))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(input_ids=ids).logits, reference)
    handle.remove()
