"""A search space sampled by Optuna: the define-by-run function TPE drives, the distributions
behind it, and seeded random draws (`hk-tune show`). The space itself is a plain value,
`hk_tune.config.space.SearchConfig`.

    constants = suggest(space, optuna_trial)   # samples every entry that applies: no I/O
    points = sample(space, 5)                  # parameter name -> value, seeded
"""

from __future__ import annotations

from typing import Any

from hk_tune.config.space import Entry, SearchConfig, walk

# The consistency loss compares two passes that differ only by their dropout: with every
# dropout off they are the same pass, the loss is 0 and the trial is the baseline again.
CONSISTENCY_PREFIX = "dropout/consistency."
CONSISTENCY_OFF = {"dropout/consistency.loss": "none"}


def suggest(space: SearchConfig, trial) -> dict[str, Any]:
    """The define-by-run function: samples every entry that applies, given earlier choices.
    The consistency entries come last, and only when some dropout is on; otherwise the
    consistency loss is `none` (a constant).

    Returns:
        The constants that the taken choices set (Optuna records the sampled values itself).
    """
    constants: dict[str, Any] = {}
    consistency = [e for e in space.entries if e.name.startswith(CONSISTENCY_PREFIX)]
    _suggest_all([e for e in space.entries if e not in consistency], trial, constants)
    if consistency:
        if any_dropout(space, {**trial.params, **constants}):
            _suggest_all(consistency, trial, constants)
        else:
            constants.update(CONSISTENCY_OFF)
    return constants


def _suggest_all(entries: list[Entry], trial, constants: dict[str, Any]) -> None:
    pending = list(entries)
    while pending:
        entry = pending.pop(0)
        value = suggest_entry(entry, trial)
        pending += entry.branches.get(value, ())
        for path, constant in entry.constants.get(value, {}).items():
            constants[path.replace(".", "/", 1)] = constant


def any_dropout(space: SearchConfig, params: dict[str, Any]) -> bool:
    """Whether the run `params` (and the fixed keys) make drops anything in training."""
    spec = space.trial_config(params).dropout
    return bool(spec.active_positions) or spec.stock_dropout


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
