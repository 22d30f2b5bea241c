"""2.6.2: pattern shapes, contiguity, dropped fraction; padding never counted; the guard."""

from __future__ import annotations

import pytest
import torch

from hk_tune.dropout.attention import KEYS, QUERIES
from hk_tune.dropout.hidden import FEATURES, TOKENS, drop_hidden
from hk_tune.dropout.pattern import PATTERNS, draw
from hk_tune.dropout.spec import PositionSpec

B, H, L, D = 64, 4, 40, 8


def _padding() -> torch.Tensor:
    valid = torch.ones(B, L, dtype=torch.bool)
    valid[::2, 30:] = False  # every other row has 10 padding tokens
    return valid


def _attention(pattern: str, rate: float):
    valid = _padding()[:, None, None, :].expand(B, 1, L, L)  # (B, 1, Lq, Lk)
    dropped = draw(pattern, (B, H, L, L), valid, rate, KEYS, QUERIES, (KEYS,))
    return dropped.expand(B, H, L, L), valid.expand(B, H, L, L)


def _hidden(pattern: str, rate: float):
    valid = _padding()[:, :, None]  # (B, L, 1)
    dropped = draw(pattern, (B, L, D), valid, rate, TOKENS, FEATURES, (TOKENS, FEATURES))
    return dropped.expand(B, L, D), valid.expand(B, L, D)


@pytest.mark.parametrize("layout", [_attention, _hidden], ids=["attention", "hidden"])
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("rate", [0.05, 0.1, 0.3])
def test_dropped_fraction_and_padding(layout, pattern, rate):
    torch.manual_seed(0)
    dropped, valid = layout(pattern, rate)
    assert not (dropped & ~valid).any(), "padding is never dropped"
    fraction = dropped[valid].float().mean().item()
    # span drops round(p * n_valid) of 30 or 40 units: the rounding is part of the rule.
    tolerance = 0.02 if pattern != "span" else 0.03
    assert abs(fraction - rate) < tolerance


def test_column_is_constant_along_the_shared_axis():
    torch.manual_seed(0)
    attention, _ = _attention("column", 0.3)
    assert torch.equal(attention, attention[:, :, :1, :].expand_as(attention))  # along queries
    hidden, _ = _hidden("column", 0.3)
    assert torch.equal(hidden, hidden[:, :, :1].expand_as(hidden))  # whole token vectors


def test_column_draws_per_head():
    torch.manual_seed(0)
    attention, _ = _attention("column", 0.5)
    assert not torch.equal(attention[:, 0], attention[:, 1])


@pytest.mark.parametrize("layout", [_attention, _hidden], ids=["attention", "hidden"])
def test_span_is_one_contiguous_run_of_the_right_length(layout):
    torch.manual_seed(0)
    dropped, valid = layout("span", 0.2)
    rows = dropped[..., 0, :] if layout is _attention else dropped[..., 0]  # (B, [H,] units)
    lengths = valid[..., 0, :].sum(-1) if layout is _attention else valid[..., 0].sum(-1)
    for row, n_valid in zip(rows.reshape(-1, L), lengths.reshape(-1), strict=True):
        where = row.nonzero().flatten()
        assert len(where) == round(0.2 * n_valid.item())
        assert torch.equal(where, torch.arange(where[0], where[0] + len(where)))


def test_span_start_is_uniform():
    torch.manual_seed(0)
    valid = torch.ones(4000, 1, 10, dtype=torch.bool)  # 10 units, a run of 2 fits at 9 starts
    dropped = draw("span", (4000, 1, 10), valid, 0.2, -1, -2, (-1,))
    starts = dropped.float().argmax(-1).flatten()
    counts = torch.bincount(starts, minlength=10).float()
    assert counts[9] == 0
    assert counts[:9].min() > 0.8 * 4000 / 9


def test_an_all_dropped_row_is_left_whole():
    valid = torch.zeros(2, 1, 3, 5, dtype=torch.bool)
    valid[..., 0] = True  # each row sees one key
    for _ in range(20):
        dropped = draw("element", (2, 1, 3, 5), valid, 0.99, KEYS, QUERIES, (KEYS,))
        assert not dropped.any()


def test_hidden_rescale_rules():
    torch.manual_seed(0)
    x = torch.ones(8, 16, 4)
    element = drop_hidden(x, PositionSpec("element", 0.5, "inverted"))
    assert set(element.unique().tolist()) == {0.0, 2.0}
    column = drop_hidden(x, PositionSpec("column", 0.5, "none"))
    assert set(column.unique().tolist()) == {0.0, 1.0}
    pooled = drop_hidden(torch.ones(8, 4), PositionSpec("element", 0.5, "inverted"))
    assert pooled.shape == (8, 4)


def test_the_pattern_table_is_the_one_every_layer_reads():
    """Each row: a spec at every position accepts it, with its default rescale where the
    position allows one, and the search's position switches offer it."""
    from hk_tune.config.space import OFF
    from hk_tune.dropout.spec import ATTENTION_POSITIONS, POSITIONS, RESCALES, DropoutSpec

    for name, row in PATTERNS.items():
        for position in POSITIONS:
            spec = DropoutSpec.from_dict({f"{position}.pattern": name, f"{position}.rate": 0.1})
            rescale = spec.position(position).rescale
            assert rescale in RESCALES[position]
            if position not in ATTENTION_POSITIONS:
                assert rescale == row.hidden_rescale
        mask = row.mask([2, 5, 3], torch.ones(2, 5, 1, dtype=torch.bool), 0.5, 1, 2)
        assert mask.dtype == torch.bool and mask.dim() == 3
    assert OFF not in PATTERNS
