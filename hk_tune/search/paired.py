"""Comparing a configuration with the baseline seed by seed.

The same seed gives every configuration the same head init, LoRA init and data order, so the
runs of one seed form a pair, and a configuration is compared to the baseline pair by pair:
how many seeds it wins, and a paired t-test (scipy) on the differences. A difference smaller than
the seed-to-seed spread then shows as it is, instead of hiding in two overlapping ranges.

    result = paired({1: 0.80, 2: 0.78, 3: 0.81}, {1: 0.77, 2: 0.79, 3: 0.76}, mode="max")
    beats(result, margin=0.01)        # median 1 point higher and most seeds won
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Paired:
    """A configuration against the baseline over the seeds both ran.

    Attributes:
        seeds: the seeds both have, in order.
        gain: the configuration's median minus the baseline's, signed so that positive is
            better (for a loss, the baseline's median minus the configuration's).
        wins, losses, ties: seeds on which the configuration did better, worse, the same.
        p_value: two-sided paired t-test on the per-seed differences; None with fewer than two
            seeds, or when every difference is the same (the test is undefined).
    """

    seeds: tuple[int, ...]
    gain: float
    wins: int
    losses: int
    ties: int
    p_value: float | None


def paired(values: dict[int, float], baseline: dict[int, float], mode: str) -> Paired:
    """Compares `values` (seed -> metric) with `baseline` (seed -> metric) on their shared seeds.

    Raises:
        ValueError: no seed in common, or `mode` not "max" or "min".
    """
    from scipy.stats import ttest_rel

    if mode not in ("max", "min"):
        raise ValueError(f"mode {mode!r} is not allowed; allowed: ['max', 'min']")
    seeds = tuple(sorted(set(values) & set(baseline)))
    if not seeds:
        raise ValueError("no seed in common with the baseline")
    sign = 1.0 if mode == "max" else -1.0
    ours = [values[seed] for seed in seeds]
    theirs = [baseline[seed] for seed in seeds]
    diffs = [sign * (a - b) for a, b in zip(ours, theirs, strict=True)]
    p_value = None
    if len(seeds) > 1 and len(set(diffs)) > 1:
        p_value = float(ttest_rel(ours, theirs).pvalue)
        p_value = p_value if math.isfinite(p_value) else None
    return Paired(seeds=seeds, gain=sign * (statistics.median(ours) - statistics.median(theirs)),
                  wins=sum(d > 0 for d in diffs), losses=sum(d < 0 for d in diffs),
                  ties=sum(d == 0 for d in diffs), p_value=p_value)


def beats(result: Paired, margin: float) -> bool:
    """The pre-registered criterion: a median at least `margin` better than the baseline's and
    a win on more than half of the paired seeds."""
    return result.gain >= margin - 1e-12 and result.wins > len(result.seeds) / 2
