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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hk_tune.config import fields
from hk_tune.config.files import apply_overrides, flatten, plain, read_yaml
from hk_tune.config.sections import (
    DataConfig,
    GenerationSettings,
    LoraSettings,
    ModelSettings,
    OptimSettings,
    ScalingSettings,
)
from hk_tune.dropout.spec import PRESETS, DropoutSpec
from hk_tune.errors import ConfigError


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
    data: DataConfig = field(default_factory=DataConfig)
    dropout: DropoutSpec = field(default_factory=lambda: PRESETS["baseline"])
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
                value = plain(dataclasses.asdict(value))
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
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping of sections, got {raw!r}")
        fields.reject_unknown(raw, [f.name for f in dataclasses.fields(cls)], where)
        values: dict[str, Any] = {}
        for name, value in raw.items():
            key = f"{where}: {name}"
            if name == "model" and isinstance(value, str):
                value = {"name": value}
            if name == "dropout":
                flat = {"preset": value} if isinstance(value, str) else flatten(
                    fields.mapping(value, key))
                values[name] = DropoutSpec.from_dict(flat, where=key)
            elif name in SECTIONS:
                values[name] = fields.section(SECTIONS[name], value, where, name)
            else:
                values[name] = fields.coerce(value, SCALARS[name], where, name)
        fields.seed(values.get("seed", cls.seed), f"{where}: seed")
        # Ray reads a negative max_failures as "retry forever".
        fields.integer(values.get("max_failures", cls.max_failures), f"{where}: max_failures", 0)
        name = values.get("name", cls.name)
        # The name is a folder (and, in a search, Tune's experiment and an MLflow run name):
        # one path component that every filesystem takes, with room for Tune's suffixes.
        if (not name.strip() or "/" in name or "\0" in name or name in (".", "..")
                or len(name.encode()) > MAX_NAME_BYTES):
            shown = name if len(name) <= 60 else name[:60] + "..."
            raise ConfigError(f"{where}: name: {shown!r} is not allowed; allowed: a folder name "
                              f"of at most {MAX_NAME_BYTES} bytes, without '/'")
        config = cls(**values)
        # bitsandbytes' CPU code is a slow reference path, not what 4-bit weights are for.
        if config.model.quantization != "none" and not config.scaling.use_gpu:
            raise ConfigError(f"{where}: model.quantization: {config.model.quantization!r} runs "
                              "on CUDA GPUs only; set scaling.use_gpu: true (in a search: "
                              "resources.gpus_per_worker), or allowed without a GPU: 'none'")
        return config


MAX_NAME_BYTES = 128


SECTIONS: dict[str, type] = {
    "model": ModelSettings,
    "lora": LoraSettings,
    "data": DataConfig,
    "optim": OptimSettings,
    "generation": GenerationSettings,
    "scaling": ScalingSettings,
}


SCALARS: dict[str, Any] = {"seed": int, "metric": str | None, "name": str, "storage_path": str,
                           "max_failures": int}




def load_run_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
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
