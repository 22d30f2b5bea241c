"""Fixed points run with fixed seeds, as one plain Tune experiment (no searcher): what seed
confirmation runs (`hk_tune.search.confirm`).

    records = run_grid(space, folder, "confirm", [params_a, params_b], seeds=[1, 2])

The runs go through the search's own trainable and executor (reused actors, the same loop), so
what they measure is what `hk-tune search` would have run; one record per run
(`rows.run_records`).
"""

from __future__ import annotations

from typing import Any

from hk_tune.config.space import SearchConfig
from hk_tune.search.experiment import run_plain
from hk_tune.search.rows import run_records


def run_grid(space: SearchConfig, folder: str, name: str, points: list[dict],
             seeds: list[int]) -> list[dict[str, Any]]:
    """Runs every point with every seed as the Tune experiment `folder/name` (continued where it
    stopped if it exists); returns one record per run."""
    import ray.tune

    param_space = {"params": ray.tune.grid_search(points), "seed": ray.tune.grid_search(seeds)}
    return run_records(run_plain(space, folder, param_space, name), space)
