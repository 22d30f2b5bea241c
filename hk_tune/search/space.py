"""A search space: validated entries -> an Optuna define-by-run function and run configs.

    space = load_space("search_spaces/quickstart.yaml")   # hk_tune.search.space_file
    params = space.suggest(optuna_trial)      # the define-by-run function: no I/O, no training
    raw = space.run_config(params)            # a dict `RunConfig.from_dict` accepts

Parameter names are the entries' dotted paths with their first dot turned into `/`
(`dropout/attn_logits.rate`, `optim/lr`): Ray Tune nests a trial's config on `/`, so a sampled
config arrives as {"dropout": {...}, ...}. Reading and validating the YAML is `space_file.py`;
the paper's presets as points of a space are `warm_start.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TYPES = ("float", "log_float", "int", "categorical", "grid")
METRIC_SCOPES = ("best", "last")  # a trial's score: its best evaluation, or its last one
OFF = "off"  # the choice of a position switch that turns the position off (rate 0)


@dataclass(frozen=True)
class Entry:
    """One searched parameter.

    Attributes:
        path: the dotted RunConfig key (`dropout.attn_logits.rate`, `optim.lr`).
        type: one of TYPES.
        low, high, step: the range of float, log_float and int entries.
        values: the choices of categorical and grid entries.
        branches: choice -> entries that exist only when that choice is taken.
        constants: choice -> dotted key -> value set when that choice is taken.
    """

    path: str
    type: str
    low: float | None = None
    high: float | None = None
    step: float | None = None
    values: tuple = ()
    branches: dict[Any, tuple[Entry, ...]] = field(default_factory=dict)
    constants: dict[Any, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The Optuna parameter name: the path with its first dot as `/`."""
        return self.path.replace(".", "/", 1)

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, step=self.step)
        if self.type == "log_float":
            return trial.suggest_float(self.name, self.low, self.high, log=True)
        if self.type == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1))
        return trial.suggest_categorical(self.name, list(self.values))

    def distribution(self):
        """The Optuna distribution `suggest` samples from."""
        import optuna.distributions as d

        if self.type == "float":
            return d.FloatDistribution(self.low, self.high, step=self.step)
        if self.type == "log_float":
            return d.FloatDistribution(self.low, self.high, log=True)
        if self.type == "int":
            return d.IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))
        return d.CategoricalDistribution(list(self.values))

    def candidates(self) -> list:
        """Values that bound what this entry can produce: every choice, or both range ends."""
        if self.type in ("categorical", "grid"):
            return list(self.values)
        ends = [self.low, self.high]
        return [int(v) for v in ends] if self.type == "int" else ends


@dataclass(frozen=True)
class Space:
    """A validated search space (see the module docstring and `search_spaces/README.md`)."""

    file: str
    fixed: dict[str, Any]
    entries: tuple[Entry, ...]
    metric: str
    mode: str
    metric_scope: str = "best"
    num_samples: int = 8
    max_concurrent: int | None = None
    scheduler: str = "none"
    grace_period: int = 1
    reduction_factor: int = 2
    resources: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    warm_start: tuple[str, ...] = ()
    confirm_top_k: int = 0
    confirm_seeds: int = 0
    executor: str = "auto"
    name: str = "search"
    storage_path: str = "hk_tune_runs"

    @property
    def score(self) -> str:
        """The reported key a trial is scored by (ASHA, TPE, ranking, confirmation, plots): the
        running best of the metric (`best_eval_accuracy`) or the metric as last evaluated."""
        return f"best_{self.metric}" if self.metric_scope == "best" else self.metric

    # -- sampling ----------------------------------------------------------------------------

    def suggest(self, trial) -> dict[str, Any]:
        """The define-by-run function: samples every entry that applies, given earlier choices.

        Returns:
            The constants that the taken choices set (Optuna records the sampled values itself).
        """
        constants: dict[str, Any] = {}
        pending = list(self.entries)
        while pending:
            entry = pending.pop(0)
            value = entry.suggest(trial)
            pending += entry.branches.get(value, ())
            for path, constant in entry.constants.get(value, {}).items():
                constants[path.replace(".", "/", 1)] = constant
        return constants

    def run_config(self, params: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        """A `RunConfig.from_dict` dict: the fixed values with the sampled `params` on top.

        Args:
            params: parameter name (`dropout/attn_logits.rate`) -> value, as sampled.
            seed: the training seed, when not the fixed one (seed confirmation).
        """
        from hk_tune.train.run_config import set_key

        raw: dict[str, Any] = {}
        for path, value in self.fixed.items():
            set_key(raw, path, value, self.file)
        for name, value in params.items():
            path = name.replace("/", ".", 1)
            if is_position_switch(path):
                if value == OFF:
                    set_key(raw, f"{path}.rate", 0.0, self.file)
                else:
                    set_key(raw, f"{path}.pattern", value, self.file)
            else:
                set_key(raw, path, value, self.file)
        if seed is not None:
            raw["seed"] = seed
        return raw

    def trial_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Flat params for tables and MLflow: every dropout key (`attn_logits.rate`) of the
        sampled configuration, plus the searched settings outside dropout (`optim.lr`)."""
        from hk_tune.train.run_config import RunConfig

        cfg = RunConfig.from_dict(self.run_config(params), where=self.file)
        flat = dict(cfg.dropout.to_dict())
        flat["layers"] = str(flat["layers"])
        for name, value in params.items():
            path = name.replace("/", ".", 1)
            if not path.startswith("dropout."):
                flat[path] = value
        return flat

    def distributions(self) -> dict[str, Any]:
        """Parameter name -> Optuna distribution, over every branch."""
        return {entry.name: entry.distribution() for entry in walk(self.entries)}

    def warm_start_points(self) -> list[dict[str, Any]]:
        """The warm-start presets as points in this space's own parameter names."""
        from hk_tune.search.warm_start import preset_point

        return [preset_point(self, preset) for preset in self.warm_start]

    def sample(self, count: int, seed: int | None = None) -> list[dict[str, Any]]:
        """`count` configurations drawn at random (seeded), as parameter name -> value."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.RandomSampler(seed=self.seed if seed is None else seed)
        study = optuna.create_study(sampler=sampler)
        points = []
        for _ in range(count):
            trial = study.ask()
            constants = self.suggest(trial)
            points.append({**trial.params, **constants})
            study.tell(trial, 0.0)
        return points


# -- the tree of entries -----------------------------------------------------------------------


def is_position_switch(path: str) -> bool:
    """`dropout.<position>`: a categorical entry turning a position off or on with a pattern."""
    from hk_tune.dropout.spec import POSITIONS

    head, _, rest = path.partition(".")
    return head == "dropout" and rest in POSITIONS


def walk(entries: Sequence[Entry]):
    """Every entry, nested branches included."""
    for entry in entries:
        yield entry
        for branch in entry.branches.values():
            yield from walk(branch)
