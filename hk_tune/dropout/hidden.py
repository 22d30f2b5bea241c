"""Dropout on hidden states: HiddenCut at the FFN output, cutoff at the input, standard dropout
at the output (docs/design.md 2.1). Torch only.

x is (B, L, D), or (B, D) for a pooled representation (treated as one token). Tokens are the
units, features the shared axis: `column` drops whole token vectors, `span` one run of tokens.
"""

from __future__ import annotations

import torch

from hk_tune.dropout.pattern import draw
from hk_tune.dropout.spec import PositionSpec

TOKENS, FEATURES = 1, 2


def drop_hidden(
    x: torch.Tensor, spec: PositionSpec, valid_tokens: torch.Tensor | None = None
) -> torch.Tensor:
    """Applies one hidden-position entry of the spec.

    Args:
        x: (B, L, D) or (B, D).
        spec: the position's pattern, rate and rescale ("inverted" = ×1/(1-p), "none").
        valid_tokens: (B, L) bool or 0/1, False on padding; None when every token is real.

    Returns:
        x with the dropped units zeroed (and the kept ones rescaled if asked), same shape.
    """
    if not spec.active:
        return x
    pooled = x.dim() == 2
    h = x.unsqueeze(1) if pooled else x  # (B, L, D)
    if valid_tokens is None or pooled or valid_tokens.shape != h.shape[:2]:
        valid = torch.ones(h.shape[0], h.shape[1], 1, dtype=torch.bool, device=h.device)
    else:
        valid = valid_tokens.bool()[:, :, None]
    dropped = draw(spec.pattern, h.shape, valid, spec.rate, TOKENS, FEATURES, (TOKENS, FEATURES))
    h = h.masked_fill(dropped, 0.0)
    if spec.rescale == "inverted":
        h = h / (1.0 - spec.rate)
    return h.squeeze(1) if pooled else h
