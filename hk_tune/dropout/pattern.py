"""Structural patterns: which units share one coin (docs/design.md 2.2).

Every pattern draws a boolean `dropped` mask for a tensor with a unit axis and a shared axis:
attention (B, H, Lq, Lk) has keys as units and queries as the shared axis; hidden states
(B, L, D) have tokens as units and features as the shared axis. The mask's shape says the
pattern (as in timm's drop.py): `element` draws the full shape, `column` and `span` draw a
size-1 shared axis that broadcasts.

`valid` marks units that exist (not padding, not causally hidden). Padding is never dropped and
never counted; a row whose every valid unit would be dropped is left whole, so no softmax row or
sequence loses all its support (docs/design.md 2.6.6).

`PATTERNS` is the one table of patterns: each row names its mask function and the rescaling it
takes by default at a hidden position. Adding a pattern is one function and one row; the spec's
validation, the search spaces and the contract tests all read this table. torch is imported
where a mask is drawn, so validating a spec needs none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _coins(shape: list[int], rate: float, device: torch.device) -> torch.Tensor:
    import torch

    # bernoulli_ into a bool tensor: one pass, no float tensor of uniforms to compare.
    return torch.empty(shape, dtype=torch.bool, device=device).bernoulli_(rate)


def element(
    shape: list[int], units: torch.Tensor, rate: float, unit_dim: int, shared_dim: int
) -> torch.Tensor:
    """Each entry of the full shape its own coin."""
    return _coins(shape, rate, units.device)


def column(
    shape: list[int], units: torch.Tensor, rate: float, unit_dim: int, shared_dim: int
) -> torch.Tensor:
    """One coin per unit, shared along `shared_dim`: a key for every query of its head, or a
    whole token vector."""
    shape = list(shape)
    shape[shared_dim] = 1
    return _coins(shape, rate, units.device)


def span(
    shape: list[int], units: torch.Tensor, rate: float, unit_dim: int, shared_dim: int
) -> torch.Tensor:
    """Per row one contiguous run of round(rate * n_valid) valid units (at least 1), its start
    uniform among the positions where the run fits; shared along `shared_dim`."""
    import torch

    shape = list(shape)
    shape[shared_dim] = 1
    units = units.expand(shape)  # one independent run per (b, h) or per b
    n_valid = units.sum(dim=unit_dim, keepdim=True)
    length = torch.clamp(torch.round(rate * n_valid.float()), min=1).long()
    length = torch.minimum(length, n_valid)
    start = (torch.rand(n_valid.shape, device=units.device) * (n_valid - length + 1)).floor()
    rank = units.long().cumsum(dim=unit_dim) - 1  # position among the valid units
    return (rank >= start) & (rank < start + length)


@dataclass(frozen=True)
class Pattern:
    """One structural pattern (docs/design.md 2.2).

    Attributes:
        mask: draws the `dropped` mask: (shape, units, rate, unit_dim, shared_dim) -> bool.
        hidden_rescale: the default rescaling at hidden positions: `inverted` (x 1/(1-p)) for
            independent units, `none` for dropped tokens (HiddenCut's code zeroes them and
            rescales nothing). Attention positions keep their own default.
    """

    mask: Callable[[list[int], torch.Tensor, float, int, int], torch.Tensor]
    hidden_rescale: str


PATTERNS: dict[str, Pattern] = {
    "element": Pattern(element, hidden_rescale="inverted"),
    "column": Pattern(column, hidden_rescale="none"),
    "span": Pattern(span, hidden_rescale="none"),
}


def draw(
    pattern: str,
    shape: torch.Size | list[int],
    valid: torch.Tensor,
    rate: float,
    unit_dim: int,
    shared_dim: int,
    row_dims: tuple[int, ...],
) -> torch.Tensor:
    """Draws a `dropped` mask restricted to valid units, with the all-dropped-row guard.

    Args:
        pattern: a key of `PATTERNS`.
        shape: the shape of the tensor being dropped, e.g. (B, H, Lq, Lk) or (B, L, D).
        valid: bool, broadcastable to the tensor being dropped; True where the unit exists.
        rate: probability of dropping (element, column) or fraction dropped (span).
        unit_dim: the axis of units (keys, tokens).
        shared_dim: the axis that `column` and `span` share one coin along.
        row_dims: the axes that make one row for the guard (attention: the key axis; hidden:
            tokens and features).

    Returns:
        bool mask, True where dropped, broadcastable to `valid`'s shape.
    """
    import torch

    units = valid.any(dim=shared_dim, keepdim=True)  # a key any query sees; a real token
    dropped = PATTERNS[pattern].mask(list(shape), units, rate, unit_dim, shared_dim)
    dropped &= units
    # A row that had valid units but would keep none is left undropped. On bools,
    # valid > dropped is valid & ~dropped in one pass.
    kept_any = torch.gt(valid, dropped).any(dim=row_dims[0], keepdim=True)
    for dim in row_dims[1:]:
        kept_any = kept_any.any(dim=dim, keepdim=True)
    emptied = valid.any(dim=row_dims, keepdim=True) & ~kept_any
    if bool(emptied.any()):
        dropped = dropped & ~emptied
    return dropped
