"""A search space as a value: the settings of a space file, its fixed run-config keys, and the
tree of searched entries (see `search_spaces/README.md`). Pure data; sampling it with Optuna is
`hk_tune.search.space`, reading and checking the file is `hk_tune.config.space_file`.

    space = load_space("search_spaces/quickstart.yaml")     # hk_tune.config.space_file
    space.base                                              # the fixed values, a RunConfig
    space.trial_config({"dropout/attn_logits": "column", "dropout/attn_logits.rate": 0.1})

Parameter names are the entries' dotted paths with their first dot turned into `/`
(`dropout/attn_logits.rate`, `optim/lr`): Ray Tune nests a trial's config on `/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hk_tune.config.files import set_key
from hk_tune.config.run import RunConfig
from hk_tune.dropout.spec import POSITIONS

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
        """The parameter name: the path with its first dot as `/`."""
        return self.path.replace(".", "/", 1)

    def candidates(self) -> list:
        """Values that bound what this entry can produce: every choice, or both range ends."""
        if self.type in ("categorical", "grid"):
            return list(self.values)
        ends = [self.low, self.high]
        return [int(v) for v in ends] if self.type == "int" else ends


@dataclass(frozen=True)
class SearchConfig:
    """A validated search space. Built by `hk_tune.config.space_file.load_space`.

    Attributes:
        file: the space file, named in errors.
        fixed: dotted RunConfig key -> value, the same for every trial (`metric` included).
        base: `fixed` as a RunConfig, checked once when the file loads.
        entries: the searched parameters, conditional ones nested in their branches.
        metric, mode, metric_scope: what a trial is scored by (see `score`).
        warm_start: presets evaluated first; `warm_start_points` holds them as parameters.
        The others are the file's settings (`search_spaces/README.md`).
    """

    file: str
    fixed: dict[str, Any]
    base: RunConfig
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
    warm_start_points: tuple[dict[str, Any], ...] = ()
    confirm_top_k: int = 0
    confirm_seeds: int = 0
    executor: str = "auto"
    name: str = "search"
    storage_path: str = "hk_tune_runs"
    experiment: str = "hk_tune"  # the MLflow experiment holding the search's runs
    time_budget_s: float | None = None  # wall-clock limit of the trials; the results are kept
    stop: float | None = None  # a score that ends the search once a trial reaches it
    optuna_storage: str | None = None  # an RDB URL for the Optuna study (else a journal file)

    @property
    def score(self) -> str:
        """The reported key a trial is scored by (ASHA, TPE, ranking, confirmation, plots): the
        running best of the metric (`best_eval_accuracy`) or the metric as last evaluated."""
        return f"best_{self.metric}" if self.metric_scope == "best" else self.metric

    def trial_config(self, params: dict[str, Any], seed: int | None = None) -> RunConfig:
        """The run a trial trains: the fixed values with the sampled `params` on top.

        Args:
            params: parameter name (`dropout/attn_logits.rate`) -> value, as sampled.
            seed: the training seed, when not the fixed one (seed confirmation).

        Raises:
            ConfigError: `params` builds no valid run config (a loaded space's own samples
                always do: every value its entries can take was checked on load).
        """
        return RunConfig.from_dict(self.raw_config(params, seed), where=self.file)

    def raw_config(self, params: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
        """What `trial_config` validates: the fixed keys and `params`, as nested dicts."""
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
        flat = dict(self.trial_config(params).dropout.to_dict())
        flat["layers"] = str(flat["layers"])
        for name, value in params.items():
            path = name.replace("/", ".", 1)
            if not path.startswith("dropout."):
                flat[path] = value
        return flat


def is_position_switch(path: str) -> bool:
    """`dropout.<position>`: a categorical entry turning a position off or on with a pattern."""
    head, _, rest = path.partition(".")
    return head == "dropout" and rest in POSITIONS


def walk(entries: Sequence[Entry]):
    """Every entry, nested branches included."""
    for entry in entries:
        yield entry
        for branch in entry.branches.values():
            yield from walk(branch)
