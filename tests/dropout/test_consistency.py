"""2.6.5: the consistency losses."""

from __future__ import annotations

import torch

from hk_tune.dropout.consistency import consistency_loss, kl_to_reference, symmetric_kl


def test_kl_is_symmetric_and_zero_on_identical_inputs():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.allclose(symmetric_kl(a, b), symmetric_kl(b, a))
    assert symmetric_kl(a, a).item() == 0.0
    assert symmetric_kl(a, b) > 0


def test_kl_matches_torch_reference():
    torch.manual_seed(0)
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    la, lb = a.log_softmax(-1), b.log_softmax(-1)
    by_torch = 0.5 * (
        torch.nn.functional.kl_div(lb, la, log_target=True, reduction="batchmean")
        + torch.nn.functional.kl_div(la, lb, log_target=True, reduction="batchmean")
    )
    torch.testing.assert_close(symmetric_kl(a, b), by_torch)
    one_way = torch.nn.functional.kl_div(lb, la, log_target=True, reduction="batchmean")
    torch.testing.assert_close(kl_to_reference(a, b), one_way)


def test_token_level_kl_counts_only_masked_tokens():
    torch.manual_seed(0)
    a, b = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[0, 2:] = True
    b_changed = b.clone()
    b_changed[1] = 1e4  # only unmasked tokens change, and hugely
    assert torch.equal(symmetric_kl(a, b, mask), symmetric_kl(a, b_changed, mask))
    by_hand = symmetric_kl(a[0, 2:], b[0, 2:])
    torch.testing.assert_close(symmetric_kl(a, b, mask), by_hand)
    empty = symmetric_kl(a, b, torch.zeros(2, 5, dtype=torch.bool))
    assert torch.isfinite(empty) and empty.item() == 0.0


def test_regression_uses_mse():
    a, b = torch.tensor([[1.0], [2.0]]), torch.tensor([[2.0], [4.0]])
    assert consistency_loss("kl", a, b, regression=True).item() == 2.5
