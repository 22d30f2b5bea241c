"""A search space sampled by Optuna: the define-by-run function TPE drives, the distributions
behind it, and seeded random draws (`hk-tune show`). The space itself is a plain value,
`hk_tune.config.space.SearchConfig`.

    constants = suggest(space, optuna_trial)   # samples every entry that applies: no I/O
    points = sample(space, 5)                  # parameter name -> value, seeded
"""

from __future__ import annotations

from typing import Any

from hk_tune.config.space import Entry, SearchConfig, walk


def suggest(space: SearchConfig, trial) -> dict[str, Any]:
    """The define-by-run function: samples every entry that applies, given earlier choices.

    Returns:
        The constants that the taken choices set (Optuna records the sampled values itself).
    """
    constants: dict[str, Any] = {}
    pending = list(space.entries)
    while pending:
        entry = pending.pop(0)
        value = suggest_entry(entry, trial)
        pending += entry.branches.get(value, ())
        for path, constant in entry.constants.get(value, {}).items():
            constants[path.replace(".", "/", 1)] = constant
    return constants


def suggest_entry(entry: Entry, trial) -> Any:
    if entry.type == "float":
        return trial.suggest_float(entry.name, entry.low, entry.high, step=entry.step)
    if entry.type == "log_float":
        return trial.suggest_float(entry.name, entry.low, entry.high, log=True)
    if entry.type == "int":
        return trial.suggest_int(entry.name, int(entry.low), int(entry.high),
                                 step=int(entry.step or 1))
    return trial.suggest_categorical(entry.name, list(entry.values))


def distribution(entry: Entry):
    """The Optuna distribution `suggest_entry` samples from."""
    import optuna.distributions as d

    if entry.type == "float":
        return d.FloatDistribution(entry.low, entry.high, step=entry.step)
    if entry.type == "log_float":
        return d.FloatDistribution(entry.low, entry.high, log=True)
    if entry.type == "int":
        return d.IntDistribution(int(entry.low), int(entry.high), step=int(entry.step or 1))
    return d.CategoricalDistribution(list(entry.values))


def distributions(space: SearchConfig) -> dict[str, Any]:
    """Parameter name -> Optuna distribution, over every branch."""
    return {entry.name: distribution(entry) for entry in walk(space.entries)}


def sample(space: SearchConfig, count: int, seed: int | None = None) -> list[dict[str, Any]]:
    """`count` configurations drawn at random (seeded), as parameter name -> value."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=space.seed if seed is None else seed)
    study = optuna.create_study(sampler=sampler)
    points = []
    for _ in range(count):
        trial = study.ask()
        constants = suggest(space, trial)
        points.append({**trial.params, **constants})
        study.tell(trial, 0.0)
    return points
