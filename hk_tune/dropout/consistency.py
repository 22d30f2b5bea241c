"""Consistency losses between two forward passes (docs/design.md 2.3). Torch only.

`kl`: HiddenKey's ½[KL(P1‖P2) + KL(P2‖P1)] between two training-mode passes (paper Eq. 11).
`js`: the paper's "JS" (Eq. 12), KL(P1‖P̄) against the dropout-off pass P̄.
Regression (one output) compares the two outputs with MSE; causal LM compares next-token
distributions on target tokens only.

Reduction: each KL is summed over the class (or vocabulary) axis and averaged over the rows (or
the counted target tokens), the same reduction as the cross-entropy task loss beside it, so λ
weighs two per-example quantities. The term is small while the two passes agree (early in
training, or at low rates) and grows as the model fits its training set; the training loop
reports its share of the loss (`train_consistency_share`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a loss is computed, so a spec validates without it
    import torch


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(P‖Q) per row, summed over the last (class/vocabulary) axis."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _log_probs(
    logits1: torch.Tensor, logits2: torch.Tensor, token_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities in fp32 of the rows that count: selecting masked tokens first keeps a
    (B, L, V) vocabulary tensor from being copied to fp32 whole."""
    import torch.nn.functional as F

    if token_mask is not None:
        token_mask = token_mask.bool()
        logits1, logits2 = logits1[token_mask], logits2[token_mask]  # (N, V)
    return F.log_softmax(logits1.float(), dim=-1), F.log_softmax(logits2.float(), dim=-1)


def _mean(per_row: torch.Tensor) -> torch.Tensor:
    # No counted token at all (e.g. a batch of prompts only) gives 0, not NaN.
    return per_row.mean() if per_row.numel() else per_row.sum()


def symmetric_kl(
    logits1: torch.Tensor, logits2: torch.Tensor, token_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """½[KL(P1‖P2) + KL(P2‖P1)], averaged over rows (or over tokens where `token_mask`)."""
    log_p, log_q = _log_probs(logits1, logits2, token_mask)
    return _mean(0.5 * (_kl(log_p, log_q) + _kl(log_q, log_p)))


def kl_to_reference(
    logits: torch.Tensor, reference: torch.Tensor, token_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(P‖P̄) with P̄ from the dropout-off pass, averaged over rows or masked tokens."""
    log_p, log_ref = _log_probs(logits, reference, token_mask)
    return _mean(_kl(log_p, log_ref))


@dataclass(frozen=True)
class Consistency:
    """One consistency compensation (docs/design.md 2.3).

    Attributes:
        loss: (logits of the first pass, logits of the second, token mask) -> the term.
        second_pass_trains: the second pass runs in training mode (dropout on, `kl`) or in
            eval mode (dropout off, the paper's reference distribution P̄, `js`).
    """

    loss: Callable[..., torch.Tensor]
    second_pass_trains: bool


# The one table of consistency losses; `none` (task loss only) is the spec's default beside them.
CONSISTENCY: dict[str, Consistency] = {
    "kl": Consistency(symmetric_kl, second_pass_trains=True),
    "js": Consistency(kl_to_reference, second_pass_trains=False),
}


def consistency_loss(
    kind: str,
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    regression: bool = False,
    token_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The consistency term for `kind`, a key of CONSISTENCY.

    Args:
        kind: "kl" (logits2 from a second training pass) or "js" (logits2 from the eval pass).
        logits1, logits2: (B, C), or (B, L, V) for causal LM with `token_mask` (B, L).
        regression: outputs are scores (B, 1): compare them with MSE.
        token_mask: True on the tokens that count (targets, not prompt or padding).
    """
    import torch.nn.functional as F

    if kind not in CONSISTENCY:
        raise ValueError(f"consistency loss {kind!r} is unknown; allowed: {sorted(CONSISTENCY)}")
    if regression:
        return F.mse_loss(logits1.float(), logits2.float())
    return CONSISTENCY[kind].loss(logits1, logits2, token_mask)
