"""What a large-model LoRA run needs, checked on CPU with tiny models: gradient accumulation
(k micro-batches update as one batch of all their rows or target tokens), mixed precision
(bf16 / fp16 autocast, the trained weights and the optimizer in fp32, fp16's scaler in the
checkpoint), and gradient checkpointing (equal losses and gradients, the recomputed forward
drawing the same dropout masks)."""

from __future__ import annotations

import math

import pytest
import torch

from hk_tune.config.run import RunConfig
from hk_tune.dropout import attach, compute_loss
from hk_tune.errors import ConfigError
from hk_tune.train.accumulation import micro_batch_groups, micro_batch_weights, optimizer_step
from hk_tune.train.checkpoint import load_checkpoint, save_checkpoint
from hk_tune.train.encoding import collate
from hk_tune.train.loop import build_inputs, run_loop
from hk_tune.train.precision import Precision
from hk_tune.train.session import LocalSession


def history(raw: dict) -> list[dict]:
    session = LocalSession(cache=False)
    run_loop(raw, session)
    return session.history


def built(raw: dict):
    """The peft model with the run's dropout attached, its tokenizer and training rows."""
    cfg = RunConfig.from_dict(raw)
    tokenizer, data, train_ds, _, model = build_inputs(cfg, LocalSession(cache=False))
    return cfg, tokenizer, train_ds, model, attach(model, cfg.dropout)


def test_groups_of_k_batches_skip_what_a_resumed_run_trained_on():
    assert list(micro_batch_groups(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(micro_batch_groups(range(7), 3, skip=1)) == [[3, 4, 5], [6]]
    assert list(micro_batch_groups(range(4), 1, skip=2)) == [[2], [3]]


def test_causal_lm_micro_batches_are_weighted_by_target_tokens():
    ignore = -100
    short = {"labels": torch.tensor([[ignore, ignore, 5, 6]])}  # 2 target tokens (t >= 1)
    long = {"labels": torch.tensor([[ignore, 4, 5, 6], [ignore, ignore, ignore, 7]])}  # 3 + 1
    assert micro_batch_weights([short, long], "causal_lm") == [1 / 3, 2 / 3]
    assert micro_batch_weights([short, long], "classification") == [1 / 3, 2 / 3]  # rows
    assert micro_batch_weights([long, long], "classification") == [0.5, 0.5]


@pytest.mark.parametrize(("architecture", "task"), [("bert", "classification"),
                                                     ("llama", "causal_lm")])
def test_uneven_micro_batches_update_as_one_batch(tiny_run, architecture, task):
    """One SGD step (lr 1, so the update is the gradient) from rows 0-3 as one batch and as
    micro-batches of 3 and 1 rows: the same update. For causal LM the two micro-batches hold
    different shares of the target tokens than of the rows, so weighting by rows would fail."""
    cfg, tokenizer, train_ds, model, handle = built(
        tiny_run(architecture, task, dropout={"preset": "baseline"}))
    rows = [train_ds[i] for i in range(4)]
    trainable = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in trainable]
    model.train()

    def update(groups: list[list[dict]]) -> list[torch.Tensor]:
        optimizer = torch.optim.SGD(trainable, lr=1.0)
        batches = [collate(group, tokenizer.pad_token_id) for group in groups]
        optimizer_step(model, batches, handle, task, optimizer, Precision.for_model("fp32", model),
                       trainable, None, 1, 1.0)
        deltas = [p.detach() - s for p, s in zip(trainable, start, strict=True)]
        with torch.no_grad():
            for p, s in zip(trainable, start, strict=True):
                p.copy_(s)
        return deltas

    whole, split = update([rows]), update([rows[:3], rows[3:]])
    assert max(d.abs().max().item() for d in whole) > 0
    for a, b in zip(whole, split, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    if task == "causal_lm":
        batches = [collate(g, tokenizer.pad_token_id) for g in (rows[:3], rows[3:])]
        assert micro_batch_weights(batches, task) != [0.75, 0.25]


def test_a_run_accumulating_two_micro_batches_equals_a_run_with_batches_twice_as_large(
        tiny_run):
    """The whole loop: batch 4 × 2 micro-batches against batch 8, the same rows in the same
    order (one seeded permutation), the same schedule: the same evaluations."""
    base = tiny_run(dropout={"preset": "baseline"}, optim={"max_steps": 4, "eval_every": 2})
    accumulated = history({**base, "optim": {**base["optim"], "batch_size": 4,
                                             "grad_accum_steps": 2}})
    large = history({**base, "optim": {**base["optim"], "batch_size": 8}})
    assert [r["step"] for r in accumulated] == [r["step"] for r in large] == [2, 4]
    for a, b in zip(accumulated, large, strict=True):
        assert a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-5)
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["epoch"] == b["epoch"]


def test_an_epoch_counts_optimizer_steps(tiny_run):
    """With 3 micro-batches of 4 rows per step, an epoch is ceil(batches / 3) optimizer steps,
    the last one shorter when the batches do not divide by 3."""
    raw = tiny_run(dropout={"preset": "baseline"},
                   optim={"max_steps": None, "epochs": 1, "eval_every": None,
                          "grad_accum_steps": 3})
    rows = len(built(raw)[2])
    batches = math.ceil(rows / 4)
    assert batches % 3 != 0  # so the epoch ends with a short group
    (report,) = history(raw)
    assert report["step"] == report["total_steps"] == math.ceil(batches / 3)
    assert report["epoch"] == 1.0


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_with_fp32_weights_and_optimizer(tiny_run, precision):
    cfg, tokenizer, train_ds, model, handle = built(
        tiny_run(dropout={"preset": "hiddenkey"}, optim={"precision": precision}))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    amp = Precision.for_model(precision, model)
    assert amp.scaler.is_enabled() == (precision == "fp16")
    batch = collate([train_ds[i] for i in range(4)], tokenizer.pad_token_id)
    model.train()
    with amp.autocast():
        out = compute_loss(model, batch, handle, "classification")
    assert out.logits.dtype == (torch.bfloat16 if precision == "bf16" else torch.float16)
    sums = optimizer_step(model, [batch], handle, "classification", optimizer, amp, trainable,
                          1.0, 1, 1e-3)
    assert math.isfinite(sums.loss)
    assert {p.dtype for p in trainable} == {torch.float32}
    assert {t.dtype for s in optimizer.state.values() for t in s.values() if t.dim()} == {
        torch.float32}


def test_fp16s_loss_scale_is_in_the_checkpoint(tiny_run, tmp_path):
    """A resumed fp16 run continues from the loss scale it had reached, not the default."""
    cfg, tokenizer, train_ds, model, handle = built(tiny_run(optim={"precision": "fp16"}))
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    amp = Precision.for_model("fp16", model)
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    batch = collate([train_ds[i] for i in range(4)], tokenizer.pad_token_id)
    model.train()
    optimizer_step(model, [batch], handle, "classification", optimizer, amp, trainable, 1.0, 1,
                   1e-3)
    reached = amp.scaler.get_scale()
    save_checkpoint(tmp_path, model, optimizer, scheduler, 1, 0, scaler=amp.scaler)
    fresh = Precision.for_model("fp16", model)
    assert fresh.scaler.get_scale() != reached
    load_checkpoint(tmp_path, model, optimizer, scheduler, 0, scaler=fresh.scaler)
    assert fresh.scaler.get_scale() == reached


def test_a_full_run_in_bf16(tiny_run):
    reports = history(tiny_run(dropout={"preset": "hiddenkey"}, optim={"precision": "bf16"}))
    assert len(reports) == 2 and all(math.isfinite(r["eval_loss"]) for r in reports)


def gradients(model, handle, batch, task: str, seed: int) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    out = compute_loss(model, batch, handle, task)
    out.loss.backward()
    return out.loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize(("architecture", "task", "grad"), [
    ("bert", "classification", "one"), ("bert", "classification", "both"),
    ("llama", "causal_lm", "one"), ("llama", "causal_lm", "both")])
def test_checkpointing_recomputes_the_same_dropout_masks(tiny_run, architecture, task, grad):
    """HiddenKey (DropKey column + HiddenCut element + KL) with and without gradient
    checkpointing: the same loss and gradients. With the random state not restored before the
    recomputation, the recomputed masks differ and so do the gradients: the check sees them."""
    cfg, tokenizer, train_ds, model, handle = built(tiny_run(
        architecture, task, dropout={"preset": "hiddenkey", "consistency.grad": grad}))
    batch = collate([train_ds[i] for i in range(4)], tokenizer.pad_token_id)
    base = model.get_base_model()
    model.train()
    loss, plain = gradients(model, handle, batch, task, seed=7)

    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert base.is_activation_checkpointing
    checkpointed_loss, checkpointed = gradients(model, handle, batch, task, seed=7)
    assert checkpointed_loss == pytest.approx(loss, rel=1e-6)
    for a, b in zip(plain, checkpointed, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)

    base.activation_checkpointing_enable(
        activation_checkpointing_kwargs={"use_reentrant": False, "preserve_rng_state": False})
    _, redrawn = gradients(model, handle, batch, task, seed=7)
    assert any(not torch.allclose(a, b, rtol=1e-5, atol=1e-7)
               for a, b in zip(plain, redrawn, strict=True))


def test_a_run_with_gradient_checkpointing_equals_one_without(tiny_run):
    raw = tiny_run(dropout={"preset": "hiddenkey"})
    plain = history(raw)
    checkpointed = history({**raw, "model": {"name": raw["model"],
                                             "gradient_checkpointing": True}})
    for a, b in zip(plain, checkpointed, strict=True):
        assert a["eval_loss"] == pytest.approx(b["eval_loss"], rel=1e-5)


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("optim", "precision", "fp8", "allowed: ['fp32', 'bf16', 'fp16']"),
    ("optim", "grad_accum_steps", 0, "grad_accum_steps: 0 is not allowed"),
    ("optim", "grad_accum_steps", 1.5, "grad_accum_steps"),
    ("model", "gradient_checkpointing", "yes", "gradient_checkpointing"),
])
def test_bad_values_are_refused_with_the_key(tiny_run, section, key, value, expected):
    raw = tiny_run()
    if section == "model":
        raw["model"] = {"name": raw["model"], key: value}
    else:
        raw[section] = {**raw[section], key: value}
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        RunConfig.from_dict(raw)


def test_gradient_checkpointing_an_architecture_lacks_is_refused_before_ray(tiny_run,
                                                                             monkeypatch):
    """The pre-Ray check reads the architecture's flag from the model's config alone."""
    from transformers.models.bert.modeling_bert import BertPreTrainedModel

    from hk_tune.train.trainer import check

    raw = tiny_run()
    raw["model"] = {"name": raw["model"], "gradient_checkpointing": True}
    check(RunConfig.from_dict(raw))  # BERT has it
    monkeypatch.setattr(BertPreTrainedModel, "supports_gradient_checkpointing", False)
    with pytest.raises(ConfigError, match=r"^model.gradient_checkpointing: BertModel does not "
                                          r"support it; allowed: false$"):
        check(RunConfig.from_dict(raw))
