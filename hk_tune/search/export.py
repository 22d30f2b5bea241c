"""The winning trial's adapter at its best evaluation, as a folder peft loads.

    hk-tune export hk_tune_runs/quickstart my_adapter    # export_search(...)

    base = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=2)
    model = PeftModel.from_pretrained(base, "my_adapter")

The folder holds the checkpoint's adapter (LoRA weights and the trained task head, safetensors)
and its peft config, plus `export.json` saying where it came from: the search, the trial, the step,
the metric and the run config that trained it. Optimizer and RNG state stay behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from hk_tune import storage
from hk_tune.config.space import SearchConfig
from hk_tune.errors import ConfigError
from hk_tune.search.results import best_of, read_summary
from hk_tune.search.rows import TrialRow
from hk_tune.train.checkpoint import ADAPTER, ADAPTER_CONFIG

EXPORT_INFO = "export.json"


def export_search(folder: str, destination: str | Path) -> Path:
    """Writes the best trial of the finished search in `folder` to the new folder `destination`.

    The folder appears whole or not at all: it is written beside `destination` and renamed.

    Raises:
        ConfigError: no finished search in `folder`, no kept checkpoint of its best step, or
            `destination` exists and is not empty.
    """
    destination = Path(destination).expanduser().absolute()
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ConfigError(f"{destination}: exists and is not an empty folder; give a new folder "
                          "to export into (nothing there is overwritten)")
    summary = read_summary(folder)
    best = summary.best
    if not best.get("checkpoint"):
        raise ConfigError(f"{folder}: trial {best['trial_id']} ({best['name']}) kept no "
                          f"checkpoint of its best step {best.get('best_step')}; searches "
                          "before metric scoring kept only the latest ones")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = destination.parent / f".{destination.name}.{os.getpid()}.export"
    shutil.rmtree(staging, ignore_errors=True)  # left by an export killed midway
    staging.mkdir()
    try:
        write_adapter(checkpoint_location(best["checkpoint"], summary.path), staging,
                      info(summary.name, best, summary.metric, summary.best_config))
        if destination.exists():
            destination.rmdir()  # empty, checked above
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return destination


def copy_adapter(best: TrialRow, destination: Path, space: SearchConfig, best_config: dict,
                 folder: str) -> Path | None:
    """The search's own export of its winner (logged to the MLflow parent run); None when the
    trial kept no checkpoint of its best step."""
    if not best.best_checkpoint:
        return None
    destination.mkdir(parents=True)
    write_adapter(checkpoint_location(best.best_checkpoint, folder), destination,
                  info(space.name, best_of(best), space.metric, best_config))
    return destination


def write_adapter(checkpoint: str, destination: Path, about: dict[str, Any]) -> None:
    """Copies the adapter files of `checkpoint` (a local folder or a URI) into `destination`.

    Raises:
        ConfigError: the checkpoint has no adapter (deleted, or not hk_tune's).
    """
    for name in (ADAPTER, ADAPTER_CONFIG):
        source = storage.join(checkpoint, name)
        if not storage.exists(source):
            raise ConfigError(f"checkpoint {checkpoint}: {name} is missing, so there is no "
                              "adapter to export")
        storage.copy_file(source, destination / name)
    (destination / EXPORT_INFO).write_text(json.dumps(about, indent=1, sort_keys=True) + "\n")


def info(search: str, best: dict[str, Any], metric: str, config: dict) -> dict[str, Any]:
    """What `export.json` says about an exported adapter."""
    return {"search": search, "trial_id": best["trial_id"], "configuration": best["name"],
            "step": best.get("best_step"), "metric": metric,
            "best": best.get("metric"), "checkpoint": best.get("checkpoint"),
            "run_config": config}


def checkpoint_location(path: str, search_folder: str) -> str:
    """A checkpoint path as `storage` opens it: Tune gives paths inside an object store without
    their scheme (`bucket/runs/...`), so they take the search folder's."""
    if storage.is_uri(path) or not storage.is_uri(search_folder):
        return path
    scheme = search_folder.split("://", 1)[0]
    _, sep, query = search_folder.partition("?")
    return f"{scheme}://{path}{sep}{query}"
