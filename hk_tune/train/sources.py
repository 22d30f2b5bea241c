"""Where a task's rows come from: bundled demo sets, hub datasets, or local files and folders.

Every source is read through the `datasets` library into a train and an eval `Dataset` with the
source's own columns, plus a `Schema` saying which columns play which role. Turning those rows into
the normalized task columns (and checking them) is `hk_tune.train.data`'s job.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from hk_tune.config.sources import (
    BUNDLED,
    E2E_NLG,
    FILE_BUILDERS,
    GLUE,
    SOURCE_FORMS,
    Schema,
)
from hk_tune.errors import ConfigError

if TYPE_CHECKING:
    from datasets import Dataset

    from hk_tune.config.sections import DataConfig


@dataclass
class Splits:
    """The raw rows of one source, before normalization."""

    train: Dataset
    eval: Dataset
    schema: Schema
    name: str  # how error messages refer to the source: a path or "glue:rte"


def read_splits(cfg: DataConfig) -> Splits:
    """Reads the train and eval rows `cfg.source` names.

    Args:
        cfg: the data config; its column keys apply to local sources only, since bundled and hub
            sources carry their own task definition.

    Returns:
        The raw splits and the schema to normalize them with.

    Raises:
        ConfigError: unknown source, missing file or split, unsupported format, hub unreachable.
    """
    source = cfg.source
    if source.startswith("bundled:"):
        return _read_bundled(source.removeprefix("bundled:"), cfg)
    if source.startswith("glue:"):
        task = source.removeprefix("glue:")
        if task not in GLUE:
            raise ConfigError(f"data.source={source!r}: unknown GLUE task; allowed: "
                              + ", ".join("glue:" + t for t in GLUE))
        return _read_hub((("nyu-mll/glue", GLUE[task]),), source, task, cfg)
    if source == "e2e_nlg":
        return _read_hub(E2E_NLG, source, None, cfg)
    return _read_local(source, cfg)


def _read_bundled(name: str, cfg: DataConfig) -> Splits:
    from datasets import Dataset

    if name not in BUNDLED:
        raise ConfigError(f"data.source='bundled:{name}': unknown bundled dataset; allowed: "
                          + ", ".join("bundled:" + n for n in BUNDLED))
    folder = resources.files("hk_tune") / "data" / name
    files = {p.name.removesuffix(".jsonl.gz"): p for p in folder.iterdir()
             if p.name.endswith(".jsonl.gz")}
    for key in ("train_split", "eval_split"):
        if getattr(cfg, key) not in files:
            raise ConfigError(f"data.{key}={getattr(cfg, key)!r}: no such split in bundled:{name}; "
                              f"splits: {', '.join(sorted(files))}")

    def read(split: str) -> Dataset:
        with files[split].open("rb") as raw:
            lines = gzip.decompress(raw.read()).decode("utf-8").splitlines()
        return Dataset.from_list([json.loads(line) for line in lines])

    return Splits(read(cfg.train_split), read(cfg.eval_split), BUNDLED[name], f"bundled:{name}")


def _read_hub(candidates: tuple[tuple[str, Schema], ...], source: str, name: str | None,
              cfg: DataConfig) -> Splits:
    import datasets

    failures = []
    for path, schema in candidates:
        try:
            loaded = datasets.load_dataset(path, name)
        except ConnectionError as e:
            raise ConfigError(
                f"data.source={source!r}: the Hugging Face hub is unreachable, so dataset "
                f"{path!r} can't be downloaded ({e}); run once with hub access to fill the cache, "
                "or export it to a local csv/jsonl file or save_to_disk folder and point "
                "data.source at it"
            ) from e
        except Exception as e:  # noqa: BLE001 - wrong name or layout: try the next copy
            failures.append(f"{path}: {type(e).__name__}: {e}")
            continue
        return _named_splits(loaded, schema, source, cfg)
    raise ConfigError(f"data.source={source!r}: no hub copy could be loaded: "
                      + "; ".join(failures))


def _named_splits(loaded, schema: Schema, source: str, cfg: DataConfig) -> Splits:
    """Train and eval from a DatasetDict, by the split names the config gives."""
    for key in ("train_split", "eval_split"):
        if getattr(cfg, key) not in loaded:
            raise ConfigError(f"data.{key}={getattr(cfg, key)!r}: no such split in {source}; "
                              f"splits: {', '.join(loaded)}")
    return Splits(loaded[cfg.train_split], loaded[cfg.eval_split], schema, source)


def _read_local(source: str, cfg: DataConfig) -> Splits:
    import datasets

    schema = Schema(cfg.task or "", _local_columns(cfg), cfg.label_names or ())
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        try:
            loaded = datasets.load_from_disk(str(path))
        except FileNotFoundError as e:
            raise ConfigError(f"data.source={source!r}: folder is not a datasets save_to_disk "
                              f"folder ({e}); allowed sources: {SOURCE_FORMS}") from e
        except Exception as e:  # noqa: BLE001 - e.g. IndexError for a split saved with no rows
            hint = "; is a split empty?" if isinstance(e, IndexError) else ""
            raise ConfigError(f"data.source={source!r}: datasets.load_from_disk failed: "
                              f"{type(e).__name__}: {e}{hint}") from e
        if isinstance(loaded, datasets.Dataset):
            return _holdout(loaded, schema, source, cfg)
        return _named_splits(loaded, schema, source, cfg)

    builder, options = _builder(path, source)
    if "{split}" in source:
        files = {s: os.path.expanduser(source.format(split=s))
                 for s in (cfg.train_split, cfg.eval_split)}
        for split, file in files.items():
            if not Path(file).is_file():
                raise ConfigError(f"data.source={source!r}: no file {file!r} for split {split!r}")
        loaded = _load_files(builder, files, options, source)
        return Splits(loaded[cfg.train_split], loaded[cfg.eval_split], schema, source)
    if not path.is_file():
        raise ConfigError(f"data.source={source!r}: no such file or folder; allowed sources: "
                          f"{SOURCE_FORMS}")
    loaded = _load_files(builder, {"train": str(path)}, options, source)
    return _holdout(loaded["train"], schema, source, cfg)


def _load_files(builder: str, files: dict[str, str], options: dict, source: str):
    import datasets

    # A local file loads in seconds; its "Generating split" bars would only stand between the
    # command and its answer (a one-line error when the rows are bad).
    bars = not datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(builder, data_files=files, **options)
    except Exception as e:  # noqa: BLE001 - pandas and pyarrow parse errors have many types
        for split, file in files.items():
            if _has_no_rows(file):
                raise ConfigError(f"data.source={source!r}: {file!r} ({split} split) has no "
                                  "rows; allowed: a file with at least one row") from e
        root = e
        while root.__cause__ is not None:  # datasets wraps the parser's error, which says more
            root = root.__cause__
        detail = (str(root).strip().splitlines() or [""])[0]
        raise ConfigError(f"data.source={source!r}: can't be read as {builder}: "
                          f"{type(root).__name__}: {detail}") from e
    finally:
        if bars:
            datasets.enable_progress_bars()


def _has_no_rows(file: str) -> bool:
    """True for an empty text file, one with only a header line, or a parquet file of 0 rows."""
    if file.endswith(".parquet"):
        import pyarrow.parquet

        try:
            return pyarrow.parquet.ParquetFile(file).metadata.num_rows == 0
        except Exception:  # noqa: BLE001 - not parquet at all: the caller reports the parse error
            return False
    opener = gzip.open if file.endswith(".gz") else open
    try:
        with opener(file, "rt", encoding="utf-8", errors="replace") as f:
            lines = [line for _, line in zip(range(2), f, strict=False) if line.strip()]
    except (OSError, EOFError):  # not gzip after all, or cut short: the caller reports it
        return False
    return len(lines) < 2 if not file.endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")) \
        else not lines


def _builder(path: Path, source: str) -> tuple[str, dict]:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    ext = suffixes[-1] if suffixes else ""
    if ext not in FILE_BUILDERS:
        raise ConfigError(f"data.source={source!r}: unsupported file type {ext or '(none)'!r}; "
                          f"allowed: {', '.join(FILE_BUILDERS)} (optionally .gz)")
    # TSV files (GLUE's among them) quote nothing, so a stray '"' must not swallow lines.
    options = {"delimiter": "\t", "quoting": 3} if ext == ".tsv" else {}
    return FILE_BUILDERS[ext], options


def _local_columns(cfg: DataConfig) -> dict[str, str]:
    if cfg.task == "causal_lm":
        return {"prompt": cfg.prompt, "target": cfg.target}
    columns = {"text": cfg.text, "label": cfg.label}
    if cfg.text_pair:
        columns["text_pair"] = cfg.text_pair
    return columns


def _holdout(rows: Dataset, schema: Schema, source: str, cfg: DataConfig) -> Splits:
    """Splits a source without splits: a seeded eval_fraction holdout, the same on every call."""
    if len(rows) < 2:
        raise ConfigError(f"data.source={source!r}: {len(rows)} row(s); a train/eval holdout "
                          "needs at least 2")
    n_eval = max(1, round(len(rows) * cfg.eval_fraction))
    parts = rows.train_test_split(test_size=min(n_eval, len(rows) - 1), seed=cfg.seed)
    return Splits(parts["train"], parts["test"], schema, source)
