"""How to run one finetuning: a frozen `RunConfig` tree built from YAML plus `key=value` overrides.

Every section is a frozen dataclass and every value is checked here, before any model, data or
Ray is touched; errors name the file, the dotted key and what is allowed. `to_dict` gives plain
dicts (what crosses process boundaries to Ray workers) and `from_dict` rebuilds the same value.

    model: minilm                     # or {name: ..., trust_remote_code: ..., revision, dtype}
    lora: {rank: 8, alpha: 16}        # target_modules default to the architecture's query/value
    data: {source: bundled:snli, max_length: 64}
    dropout: {preset: hiddenkey, attn_logits.rate: 0.1}   # or a preset name, or flat keys
    optim: {lr: 5.0e-4, batch_size: 16, max_steps: 300, eval_every: 100}
    generation: {num_beams: 1, max_new_tokens: 32}        # causal_lm evaluation only
    scaling: {num_workers: 1, cpus_per_worker: 1}
    seed: 0
    name: quickstart                  # the run's folder under storage_path; same name = resume
    storage_path: hk_tune_runs
    max_failures: 0
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hk_tune.errors import ConfigError
from hk_tune.train.model import LoraSettings, ModelSettings

if TYPE_CHECKING:
    from hk_tune.dropout import DropoutSpec
    from hk_tune.train.data import DataConfig


@dataclass(frozen=True)
class OptimSettings:
    """Optimisation: AdamW with a linear schedule and warmup (the paper's setup).

    Attributes:
        lr: peak learning rate; LoRA takes much larger rates than full finetuning.
        weight_decay: AdamW's decoupled weight decay (the paper: 0.1).
        warmup_ratio: share of the step budget spent warming up linearly (the paper: 0.06).
        batch_size: examples per step on each worker.
        eval_batch_size: examples per evaluation batch; None uses batch_size.
        max_steps: the budget in optimizer steps; exclusive with epochs.
        epochs: the budget in passes over the training set (may be fractional); when neither
            budget is set, one epoch.
        eval_every: evaluate (and checkpoint) every this many steps; None evaluates at the end of
            every epoch. The last step is always evaluated.
        grad_clip: clip the gradient norm to this; None leaves gradients as they are.
    """

    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_ratio: float = 0.06
    batch_size: int = 16
    eval_batch_size: int | None = None
    max_steps: int | None = None
    epochs: float | None = None
    eval_every: int | None = None
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError("max_steps, epochs: set one budget, not both")
        _check_positive(self, "lr", "batch_size", "eval_batch_size", "max_steps", "epochs",
                        "eval_every", "grad_clip")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio: {self.warmup_ratio!r} is outside [0, 1)")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: {self.weight_decay!r} is negative")


@dataclass(frozen=True)
class GenerationSettings:
    """How causal-LM evaluation generates text (BLEU / ROUGE-L against the targets).

    Attributes:
        num_beams: 1 is greedy decoding; more is beam search.
        max_new_tokens: longest continuation generated per prompt.
    """

    num_beams: int = 1
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        _check_positive(self, "num_beams", "max_new_tokens")


@dataclass(frozen=True)
class ScalingSettings:
    """Ray Train workers. One CPU per worker keeps a 2-core laptop from deadlocking under Tune.

    Attributes:
        num_workers: data-parallel workers (DDP); 0 runs in this process (Ray Train local mode).
        use_gpu: one GPU per worker (or gpus_per_worker).
        cpus_per_worker: CPUs Ray reserves for each worker.
        gpus_per_worker: GPUs per worker when use_gpu; None means 1.
    """

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: {self.num_workers!r} is negative")
        _check_positive(self, "cpus_per_worker", "gpus_per_worker")
        if self.gpus_per_worker is not None and not self.use_gpu:
            raise ConfigError("gpus_per_worker: set use_gpu: true as well")


def _default_dropout() -> DropoutSpec:
    from hk_tune.dropout import PRESETS

    return PRESETS["baseline"]


def _default_data() -> DataConfig:
    from hk_tune.train.data import DataConfig

    return DataConfig()


@dataclass(frozen=True)
class RunConfig:
    """One finetuning run. Build it with `load_run_config` (YAML + overrides) or `from_dict`.

    Attributes:
        model, lora, data, dropout, optim, generation, scaling: the sections.
        seed: seeds torch, numpy, random and the data order; same seed, same metrics on CPU.
        metric: the evaluation metric whose best value the run tracks (reported as
            `best_<metric>` with `best_step`) and keeps the best checkpoint of; None is the
            task's primary metric (eval_accuracy, eval_pearson, eval_bleu).
        name: the run's folder under storage_path; reusing a name continues that run from its
            latest checkpoint (never a timestamp, so retries resume).
        storage_path: where Ray Train keeps results and checkpoints.
        max_failures: restart a failed worker group this many times, from its latest checkpoint.
    """

    model: ModelSettings = field(default_factory=ModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    data: DataConfig = field(default_factory=_default_data)
    dropout: DropoutSpec = field(default_factory=_default_dropout)
    optim: OptimSettings = field(default_factory=OptimSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    scaling: ScalingSettings = field(default_factory=ScalingSettings)
    seed: int = 0
    metric: str | None = None
    name: str = "hk_tune"
    storage_path: str = "hk_tune_runs"
    max_failures: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dicts and lists; `from_dict(to_dict())` gives an equal config."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "dropout":
                value = value.to_dict()
            elif dataclasses.is_dataclass(value):
                value = _plain(dataclasses.asdict(value))
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "config") -> RunConfig:
        """Builds and validates a config from nested dicts.

        Args:
            raw: sections as written in YAML (see the module docstring).
            where: the file the dict came from; named in every error.

        Raises:
            ConfigError: an unknown key, a value of the wrong type or out of range.
        """
        from hk_tune.dropout import DropoutSpec
        from hk_tune.train.data import DataConfig

        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping of sections, got {raw!r}")
        _reject_unknown(raw, [f.name for f in dataclasses.fields(cls)], where, prefix="")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            key = f"{where}: {name}"
            if name == "model" and isinstance(value, str):
                value = {"name": value}
            if name == "dropout":
                values[name] = DropoutSpec.from_dict(_dropout_keys(value, key), where=key)
            elif name == "data":
                values[name] = DataConfig.from_dict(_mapping(value, key), where=key)
            elif name in SECTIONS:
                values[name] = _build(SECTIONS[name], _mapping(value, key), where, name)
            else:
                values[name] = _coerce(value, SCALARS[name], where, name)
        name = values.get("name", cls.name)
        if not name.strip() or "/" in name or name in (".", ".."):
            raise ConfigError(f"{where}: name: {name!r} is not allowed; use a folder name")
        return cls(**values)


SECTIONS: dict[str, type] = {
    "model": ModelSettings,
    "lora": LoraSettings,
    "optim": OptimSettings,
    "generation": GenerationSettings,
    "scaling": ScalingSettings,
}


SCALARS: dict[str, Any] = {"seed": int, "metric": str | None, "name": str, "storage_path": str,
                           "max_failures": int}


def load_run_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> RunConfig:
    """Reads a YAML run config and applies dotted `key=value` overrides.

    The run's name defaults to the file's stem, so `configs/quickstart.yaml` runs as
    `quickstart`. Override values are parsed as YAML (`optim.lr=1e-4`, `lora.target_modules=[a,b]`).

    Raises:
        ConfigError: a missing or malformed file, a malformed override, or an invalid config.
    """
    path = Path(path)
    where = str(path)
    raw = read_yaml(path, "config")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of sections, got {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    return RunConfig.from_dict(apply_overrides(raw, overrides, where), where=where)


def read_yaml(path: str | Path, what: str) -> Any:
    """The YAML document in `path` ({} for an empty file).

    Raises:
        ConfigError: one line naming the file: unreadable, or not YAML (with the line and
            column where the parser stopped).
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise ConfigError(f"{where}: cannot read the {what}: {reason}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError(f"{where}: not valid YAML{at}: {problem}; allowed: a YAML mapping of "
                          "keys") from None
    return {} if raw is None else raw


def parse_override(override: str, where: str) -> tuple[str, Any]:
    """`key=value` -> (key, value parsed as YAML, so `optim.lr=1e-4` is a number; text that is
    not YAML stays text)."""
    import yaml

    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where}: override {override!r} is not key=value")
    try:
        return key, yaml.safe_load(text)
    except yaml.YAMLError:
        return key, text


def apply_overrides(raw: dict[str, Any], overrides: typing.Sequence[str], where: str) -> dict:
    """Returns a copy of `raw` with each `section.key=value` applied.

    Keys under `dropout.` keep their own dots, since dropout keys are flat (`attn_logits.rate`).
    """
    import copy

    raw = copy.deepcopy(raw)
    for override in overrides:
        set_key(raw, *parse_override(override, where), where)
    return raw


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Sets the dotted `key` (`optim.lr`, `dropout.attn_logits.rate`) in the nested config dict
    `raw`, in place. A string section is its short form (`model: minilm`, `dropout: hiddenkey`);
    dropout keys stay flat under `dropout`."""
    head, _, rest = key.partition(".")
    if not rest:
        raw[head] = value
        return
    section = raw.get(head)
    if head == "model" and isinstance(section, str):
        section = {"name": section}
    if head == "dropout" and isinstance(section, str):
        section = {"preset": section}
    if section is None:
        section = {}
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: {head}: is {section!r}, not a section; cannot set {key}")
    section = _flatten(section) if head == "dropout" else dict(section)
    section[rest] = value
    raw[head] = section


# --- validation helpers -------------------------------------------------------------------


def _build(cls: type, raw: dict[str, Any], where: str, section: str) -> Any:
    names = [f.name for f in dataclasses.fields(cls)]
    _reject_unknown(raw, names, where, prefix=f"{section}.")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(v, hints[k], where, f"{section}.{k}") for k, v in raw.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{where}: {section}.{error}") from None


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    """Checks `value` against a field's type hint; returns it in the field's type."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:  # tuple[str, ...]: YAML gives a list
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, args[0]) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: {key}: expected a list of {args[0].__name__}, got {value!r}")
    if hint is float and isinstance(value, str):
        # PyYAML reads `1e-4` (no dot) as a string; take it as the number it plainly is.
        with contextlib.suppress(ValueError):
            value = float(value)
    ok = isinstance(value, hint) and not (hint in (int, float) and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if ok and hint is float and not math.isfinite(value):
        ok = False
    if not ok:
        expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        raise ConfigError(f"{where}: {key}: expected {expected.get(hint, hint)}, got {value!r}")
    return value


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{name}: {value!r} is not allowed; use a number > 0")


def _reject_unknown(raw: dict, allowed: list[str], where: str, prefix: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key '{prefix}{key}'; allowed: {sorted(allowed)}"
            )


def _mapping(value: Any, key: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of keys, got {value!r}")
    return value


def _dropout_keys(value: Any, key: str) -> dict:
    """A dropout section as flat keys: a preset name, flat keys, or nested positions."""
    if isinstance(value, str):
        return {"preset": value}
    return _flatten(_mapping(value, key))


def _flatten(section: dict, prefix: str = "") -> dict:
    flat: dict[str, Any] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _plain(value: Any) -> Any:
    """Tuples to lists, so the dict is what YAML or JSON would give."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
