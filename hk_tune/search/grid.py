"""Side-by-side comparisons: every row of a space run on its own grid, as plain Tune experiments.

A search lets TPE choose where to look; a comparison such as the paper's Table 1 needs every
method measured, each at the best of its own rates. A "row space" is a search space whose first
entry is a categorical (e.g. `dropout.preset`) and whose branches hold grid entries only
(`search_spaces/reproduce.yaml`): each choice is a row, and its points are the combinations of
its branch's values.

    points = row_points(space, limit=3)                  # row -> [params, ...]
    records = run_grid(space, folder, "search", [p for ps in points.values() for p in ps], [0])

The runs go through the search's own trainable and executor (reused actors, the same loop), so
what a comparison measures is what `hk-tune search` would have run.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from hk_tune.errors import ConfigError
from hk_tune.search.space import Entry, Space
from hk_tune.search.warm_start import closest


def row_points(space: Space, limit: int | None = None, seed: int = 0) -> dict[str, list[dict]]:
    """Each row's points, as parameter name -> value.

    Args:
        limit: at most this many points per row; a row with more combinations keeps its
            preset's own point (rates 0.1, λ = 1, or the nearest grid values) and a seeded
            random draw of the others.
        seed: the draw's seed.
    """
    root = _root(space)
    rows = {}
    for choice in root.values:
        branch = root.branches.get(choice, ())
        combos = [dict(zip([e.name for e in branch], values, strict=True))
                  for values in itertools.product(*(e.values for e in branch))]
        constants = {path.replace(".", "/", 1): value
                     for path, value in root.constants.get(choice, {}).items()}
        points = [{root.name: choice, **constants, **combo} for combo in combos]
        if limit is not None and len(points) > limit:
            wanted = _preset_values(choice, branch)
            home = next(p for p in points if all(p[k] == v for k, v in wanted.items()))
            rest = [p for p in points if p != home]
            points = [home, *random.Random(f"{seed}/{choice}").sample(rest, limit - 1)]
        rows[str(choice)] = points
    return rows


def run_grid(space: Space, folder: str, name: str, points: list[dict],
             seeds: list[int]) -> list[dict[str, Any]]:
    """Runs every point with every seed as one Tune experiment `folder/name` (continued where
    it stopped if it exists); returns one record per run (`results.run_records`)."""
    import ray.tune

    from hk_tune.search.results import run_records
    from hk_tune.search.tuner import run_plain

    param_space = {"params": ray.tune.grid_search(points), "seed": ray.tune.grid_search(seeds)}
    return run_records(run_plain(space, folder, param_space, name), space)


def _root(space: Space) -> Entry:
    root = space.entries[0] if space.entries else None
    if root is None or root.type != "categorical" or len(space.entries) != 1:
        raise ConfigError(f"{space.file}: search: a comparison needs exactly one categorical "
                          "entry at the top (the rows), e.g. dropout.preset")
    for branch in root.branches.values():
        for entry in branch:
            if entry.type not in ("grid", "categorical") or entry.branches:
                raise ConfigError(f"{space.file}: search: {root.path}: {entry.path}: a "
                                  f"comparison runs grids; allowed types: grid, categorical")
    return root


def _preset_values(choice: Any, branch: tuple[Entry, ...]) -> dict[str, Any]:
    """The row's own values: for a preset row its rates (0.1) and λ (1), nearest on the grid."""
    from hk_tune.dropout import PRESETS

    flat = PRESETS[choice].to_dict() if choice in PRESETS else {}
    return {entry.name: closest(entry, flat.get(entry.path.removeprefix("dropout.")))
            for entry in branch}
