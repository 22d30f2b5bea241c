"""2.6.3 forward equivalence and 2.6.4 backward difference of DropKey and DropAttention."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hk_tune.dropout.attention import (
    additive_mask,
    attention_with_dropout,
    drop_logits,
    drop_weights,
)
from hk_tune.dropout.spec import PositionSpec


def _logits_and_mask(seed=0):
    torch.manual_seed(seed)
    logits = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    dropped = torch.rand(2, 3, 5, 6) < 0.3
    dropped[..., 0] = False  # every row keeps a key
    return logits, dropped


def _dropkey(logits, dropped):
    return F.softmax(logits + drop_logits(torch.zeros_like(logits), dropped), dim=-1)


def test_same_mask_gives_the_same_weights():
    logits, dropped = _logits_and_mask()
    key = _dropkey(logits, dropped)
    attention = drop_weights(F.softmax(logits, dim=-1), dropped, 0.3, "renorm")
    torch.testing.assert_close(key, attention)
    inverted = drop_weights(F.softmax(logits, dim=-1), dropped, 0.3, "inverted")
    assert not torch.allclose(key, inverted)


def test_a_dropped_logit_gets_no_gradient_under_dropkey_only():
    logits, dropped = _logits_and_mask()
    b, h, q = 0, 1, 2
    k_dropped = int(dropped[b, h, q].nonzero()[0])
    k_kept = int((~dropped[b, h, q]).nonzero()[0])
    for method, expect_zero in (("dropkey", True), ("dropattention", False)):
        g = logits.clone().requires_grad_()
        if method == "dropkey":
            weights = _dropkey(g, dropped)
        else:
            weights = drop_weights(F.softmax(g, dim=-1), dropped, 0.3, "renorm")
        (grad,) = torch.autograd.grad(weights[b, h, q, k_kept], g)
        assert (grad[b, h, q, k_dropped] == 0).item() == expect_zero


def test_causal_and_padding_masks_become_additive():
    q = torch.zeros(2, 1, 4, 8)
    mask = additive_mask(None, q, q, is_causal=True)
    assert (mask[0, 0] == 0).tolist() == torch.ones(4, 4).tril().bool().tolist()
    padding = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    flash = additive_mask(padding, q, q, is_causal=False) == 0
    assert flash[1, 0, :, 2:].sum() == 0 and flash[0].all()
    assert additive_mask(None, q, q, is_causal=False).eq(0).all()


def test_dropkey_only_matches_explicit_attention():
    """The fused-kernel path (DropKey alone) equals the explicit computation."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 4, dtype=torch.float64) for _ in range(3))
    mask = additive_mask(None, q, k, is_causal=True)
    spec = PositionSpec("column", 0.3, "none")
    torch.manual_seed(1)
    fused = attention_with_dropout(q, k, v, mask, 0.5, spec, PositionSpec())
    torch.manual_seed(1)
    # A tiny DropAttention rate routes through the explicit path; its draw comes after DropKey's,
    # so the DropKey mask is the same. Rate 1e-9 drops nothing.
    explicit = attention_with_dropout(q, k, v, mask, 0.5, spec, PositionSpec("element", 1e-9))
    torch.testing.assert_close(fused, explicit)
