"""The contract of docs/design.md 2.6, run as one table over every (position, pattern, rescale) row
and every architecture: tiny random-init BERT, RoBERTa, GPT-2 and LLaMA, and the real MiniLM."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
from tiny_lora import build

from hk_tune.dropout import PRESETS, DropoutSpec, PositionSpec, attach, compute_loss
from hk_tune.dropout.architectures import ARCHITECTURES
from hk_tune.dropout.pattern import PATTERNS
from hk_tune.dropout.spec import POSITIONS, RESCALES

ROWS = [
    (position, pattern, rescale)
    for position in POSITIONS
    for pattern, rescale in itertools.product(PATTERNS, RESCALES[position])
]
ARCHS = ("bert", "roberta", "gpt2", "llama", "minilm")
RATE = 0.3


def _row_id(row):
    return "-".join(row)


@pytest.fixture(scope="module", params=ARCHS)
def built(request):
    return request.param, *build(request.param)


def _spec(position, pattern, rescale, rate=RATE, **extra) -> DropoutSpec:
    return DropoutSpec(**{position: PositionSpec(pattern, rate, rescale)}, **extra)


def _logits(model, batch, seed=0):
    torch.manual_seed(seed)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return model(**inputs).logits


@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_contract(built, row):
    arch, base, batch, task = built
    model = copy.deepcopy(base)
    model.eval()
    reference_eval = _logits(model, batch)
    model.train()
    reference_train = _logits(model, batch, seed=1)  # stock dropout on
    ps = {m: m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)}

    # 2.6.1: eval mode is bit-identical; rate 0 in training is bit-identical to no dropout.
    handle = attach(model, _spec(*row))
    model.eval()
    assert torch.equal(_logits(model, batch), reference_eval)
    handle.remove()
    handle = attach(model, _spec(*row, rate=0.0))
    model.train()
    assert torch.equal(_logits(model, batch), reference_eval)
    handle.remove()

    # Something is dropped at rate > 0. A pooled classifier input (BERT's pooler, RoBERTa's CLS
    # vector) is one unit, which the guard keeps whole (only rescaled under "inverted").
    handle = attach(model, _spec(*row))
    model.train()
    dropped = _logits(model, batch, seed=2)
    assert torch.isfinite(dropped).all()
    pooled = arch in ("bert", "roberta", "minilm") and row[0] == "output"
    pooled_whole = pooled and row[1] != "element" and row[2] == "none"
    assert torch.equal(dropped, reference_eval) == pooled_whole

    # The LoRA parameters still get finite gradients; frozen weights get none.
    out = compute_loss(model, batch, handle, task)
    out.loss.backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        else:
            assert param.grad is None, name
    model.zero_grad(set_to_none=True)

    # remove() restores the model bit for bit, stock dropout included.
    handle.remove()
    assert {m: m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)} == ps
    model.eval()
    assert torch.equal(_logits(model, batch), reference_eval)
    model.train()
    assert torch.equal(_logits(model, batch, seed=1), reference_train)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_family_in_the_architecture_table_is_attached(arch):
    """Each row of the table the attachment and the LoRA setup read (the contract above walks a
    few families in depth): eval bit-identical, both attention and FFN dropped in training,
    LoRA gradients finite, and remove() restores the model."""
    model, batch, task = build(arch)
    model.eval()
    reference = _logits(model, batch)
    for position in ("attn_logits", "ffn_hidden"):
        handle = attach(model, _spec(position, "element", None, layers="all"))
        model.eval()
        assert torch.equal(_logits(model, batch), reference)
        model.train()
        assert not torch.equal(_logits(model, batch, seed=2), reference), position
        out = compute_loss(model, batch, handle, task)
        out.loss.backward()
        lora = [p.grad for n, p in model.named_parameters() if "lora_" in n and p.requires_grad]
        assert lora and all(g is not None and torch.isfinite(g).all() for g in lora)
        model.zero_grad(set_to_none=True)
        handle.remove()
        model.eval()
        assert torch.equal(_logits(model, batch), reference)


def test_a_sliding_window_is_kept_by_the_dropout_attention():
    """Mistral's sliding window lives in the 4-D mask: the dropout attention at a rate that drops
    nothing computes what the windowed model does, which differs from attending to everything."""
    model, batch, _ = build("mistral")
    config = model.get_base_model().config
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])  # the window, not padding
    config.sliding_window = 4  # shorter than the batch's 12 tokens
    model.eval()
    windowed = _logits(model, batch)
    handle = attach(model, _spec("attn_logits", "element", None, rate=1e-12, layers="all"))
    model.train()
    assert torch.allclose(_logits(model, batch), windowed, atol=1e-5)
    handle.remove()
    config.sliding_window = None
    model.eval()
    assert not torch.allclose(_logits(model, batch), windowed, atol=1e-3)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains(built, name):
    arch, base, batch, task = built
    model = copy.deepcopy(base)
    handle = attach(model, PRESETS[name])
    model.train()
    out = compute_loss(model, batch, handle, task)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert (out.consistency_loss != 0) == (PRESETS[name].consistency != "none")
    handle.remove()


def test_attention_untouched_configs_keep_sdpa(built):
    arch, base, batch, task = built
    model = copy.deepcopy(base)
    for name in ("baseline", "hiddencut_element", "hf_default"):
        handle = attach(model, PRESETS[name])
        assert model.get_base_model().config._attn_implementation == "sdpa"
        handle.remove()
    handle = attach(model, PRESETS["dropkey_column"])
    assert model.get_base_model().config._attn_implementation == "hk_tune_sdpa"
    handle.remove()
    assert model.get_base_model().config._attn_implementation == "sdpa"


@pytest.mark.parametrize("position", ["attn_logits", "ffn_hidden"])
def test_latter_half_touches_only_those_layers(position):
    """Decoders drop in the latter half by default (docs/design.md 2.4): block 0's output is the
    same as without dropout, block 1's is not."""
    model, batch, _ = build("llama")
    blocks = model.get_base_model().model.layers
    seen: dict[str, list] = {"ref": [], "drop": []}

    def run(key):
        hooks = [b.register_forward_hook(lambda m, i, o: seen[key].append(o)) for b in blocks]
        _logits(model, batch, seed=3)
        for hook in hooks:
            hook.remove()

    model.eval()
    run("ref")
    handle = attach(model, _spec(position, "element", None))
    assert handle.active_layers == (1,)
    model.train()
    run("drop")
    handle.remove()
    assert torch.equal(seen["drop"][0], seen["ref"][0])
    assert not torch.equal(seen["drop"][1], seen["ref"][1])


def test_explicit_layers_out_of_range_is_refused():
    from hk_tune.errors import ConfigError

    model, _, _ = build("gpt2")
    with pytest.raises(ConfigError, match="out of range"):
        attach(model, _spec("ffn_hidden", "element", None, layers=(5,)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("row", ROWS, ids=_row_id)
def test_never_nan_at_extreme_rates(row, dtype):
    """2.6.6: rate 0.95, padding and a causal mask, fp32 and bf16: finite logits and grads."""
    model, batch, task = build("llama")
    model = model.to(dtype)
    handle = attach(model, _spec(*row, rate=0.95, layers="all"))
    model.train()
    out = compute_loss(model, batch, handle, task)
    out.loss.backward()
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(g).all() for g in grads)
