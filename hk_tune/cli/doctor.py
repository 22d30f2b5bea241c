"""`hk-tune doctor`: checks what a search (or a run) needs before it spends any compute.

    hk-tune doctor [CONFIG_OR_SPACE] [key=value ...] [--address ADDR] [--tracking-uri URI]

One line per check, `ok` or `problem` with how to fix it: package versions against the pins,
Ray (without `--address` it is not started: this machine's CPUs, GPUs and memory are what local
Ray would use; with it, doctor connects to the cluster and disconnects), whether a trial fits,
the storage path, the tracking store, and for a given file the model (config and tokenizer, no
weights) and the data (splits, columns, labels). Exit status 0 when every check is ok, 1 when
one is not, 2 when the file itself is bad input.

Layers hold: Ray is reached through `hk_tune.search.resources`, MLflow through
`hk_tune.tracking`, the model and data through `hk_tune.train`.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hk_tune import pins, storage
from hk_tune.config.files import read_yaml
from hk_tune.config.run import load_run_config
from hk_tune.config.space_file import STORAGE_ENV, load_space
from hk_tune.errors import ConfigError
from hk_tune.search.executor import cpus_per_trial, gpus_per_trial, trials_that_fit
from hk_tune.search.resources import NO_ANSWER_FIX, cluster_totals, this_machine
from hk_tune.tracking import SearchTracker, TrackingError, check_tracking_uri, resolve_tracking_uri
from hk_tune.train.data import load_task
from hk_tune.train.model import check_model, load_tokenizer, target_modules

EXIT_OK = 0
EXIT_PROBLEM = 1
SPACE_KEYS = ("search", "fixed")  # a file with either is a search space, else a run config


@dataclass(frozen=True)
class Check:
    """One check's outcome: `name: detail`, and when not ok, how to fix it."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        status = "ok" if self.ok else "problem"
        fix = f"; fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{status:<8} {self.name}: {' '.join(self.detail.split())}{fix}"


@dataclass(frozen=True)
class Target:
    """What the checks are about: a run config, or a search space and its base run config."""

    file: str | None
    cfg: Any = None  # RunConfig
    space: Any = None  # Space

    @property
    def storage_path(self) -> str:
        if self.space is not None:
            return self.space.storage_path
        if self.cfg is not None:
            return self.cfg.storage_path

        return os.environ.get(STORAGE_ENV, "hk_tune_runs")


def load_target(file: str | None, overrides: Sequence[str]) -> Target:
    """Reads `file` as a search space (it has `search:` or `fixed:`) or a run config.

    Raises:
        ConfigError: the file is bad input (missing, not YAML, unknown keys, bad values).
    """
    if file is None:
        if overrides:
            raise ConfigError(f"overrides {list(overrides)} need a config or space file")
        return Target(None)

    raw = read_yaml(file, "config or search space")
    if isinstance(raw, dict) and any(key in raw for key in SPACE_KEYS):

        space = load_space(file, overrides)
        cfg = dataclasses.replace(space.base, name=space.name)
        return Target(file, cfg, space)
    return Target(file, load_run_config(file, overrides))


def diagnose(target: Target, address: str | None, tracking_uri: str | None) -> Iterator[Check]:
    """Every check, in order, each as soon as it is done."""
    yield _packages()
    totals, ray_check = _ray(address)
    yield ray_check
    if target.cfg is not None and totals is not None:
        yield _fit(target, totals, address)
    yield _storage(target.storage_path)
    yield _tracking(tracking_uri)
    if target.cfg is not None:
        yield _guarded("model", target, lambda: _model(target.cfg))
        yield _guarded("data", target, lambda: _data(target.cfg))


def run(file: str | None, overrides: Sequence[str], address: str | None,
        tracking_uri: str | None) -> int:
    """Prints one line per check; returns 0 when all are ok, else 1."""
    target = load_target(file, overrides)
    if target.file is None:
        print("no config or space file given: checking the environment only", flush=True)
    else:
        kind = f"search space {target.space.name!r}" if target.space else "run config"
        print(f"checking {target.file} ({kind})", flush=True)
    ok = True
    for check in diagnose(target, address, tracking_uri):
        ok = ok and check.ok
        print(check.line(), flush=True)
    return EXIT_OK if ok else EXIT_PROBLEM


def _packages() -> Check:

    where, requirements = pins.pinned()
    unmet = pins.problems(requirements)
    if unmet:
        wanted = " ".join(f"'{r}'" for r in requirements if r.specifier or r.extras)
        return Check("packages", False, "; ".join(unmet) + f" (pins from {where})",
                     f"pip install {wanted}")
    return Check("packages", True, f"{len(requirements)} requirements from {where} are "
                 "installed at their pinned versions, extras included")


# -- Ray and resources -----------------------------------------------------------------------


def _ray(address: str | None) -> tuple[dict[str, float] | None, Check]:

    if address is None:
        # Starting local Ray costs seconds and gigabytes; what it would use is known without it.
        here = this_machine()
        return here, Check("ray", True, "no --address: a search starts local Ray on this machine "
                           f"(not started now), which has {_amounts(here)}")
    try:
        totals = cluster_totals(address)
    except ConnectionError as error:
        return None, Check("ray", False, str(error), NO_ANSWER_FIX)
    nodes = int(totals.get("nodes", 0))
    return totals, Check("ray", True, f"connected to {address}: {nodes} node(s), "
                         f"{_amounts(totals)}")


def _amounts(totals: dict[str, float]) -> str:
    gib = totals.get("memory", 0.0) / 2**30
    return (f"{_count(totals.get('CPU', 0), 'CPU')}, {_count(totals.get('GPU', 0), 'GPU')}, "
            f"{gib:.1f} GiB memory")


def _count(amount: float, unit: str) -> str:
    return f"{amount:g} {unit}" + ("" if amount == 1 else "s")


def _fit(target: Target, totals: dict[str, float], address: str | None) -> Check:
    """Whether one trial (or the run) fits in `totals`, and how many run at once."""
    cpus, gpus, at_once = _needs(target, totals)
    where = f"the cluster at {address}" if address else "this machine"
    need = _count(cpus, "CPU") + (f" and {_count(gpus, 'GPU')}" if gpus else "")
    if cpus > totals.get("CPU", 0) + 1e-9 or gpus > totals.get("GPU", 0) + 1e-9:
        keys = ("resources.cpus_per_worker / resources.gpus_per_worker" if target.space
                else "scaling.cpus_per_worker / scaling.gpus_per_worker")
        return Check("resources", False, f"a trial needs {need}; {where} has "
                     f"{_amounts(totals)}, so none can start",
                     f"lower {keys} in {target.file}, or pass --address of a cluster that has "
                     "them (an autoscaling cluster adds such a node when a trial waits)")
    usable = totals.get("usable_GPU")
    if gpus and usable is not None and usable < gpus:
        import torch

        return Check("resources", False, f"a trial needs {_count(gpus, 'GPU')}; Ray sees "
                     f"{_count(totals.get('GPU', 0), 'GPU')} here but torch {torch.__version__} "
                     f"can use {usable:g}", "install a CUDA build of the pinned torch on this "
                     "machine, or leave gpus out of the resources")
    if target.space is None:
        return Check("resources", True, f"the run needs {need}; {where} has them")
    return Check("resources", True, f"a trial needs {need}; {at_once} run at once on {where} "
                 f"({target.space.num_samples} trials in all)")


def _needs(target: Target, totals: dict[str, float]) -> tuple[float, float, int]:
    if target.space is not None:

        space = target.space
        return cpus_per_trial(space), gpus_per_trial(space), trials_that_fit(space, totals)
    scaling = target.cfg.scaling
    workers = max(scaling.num_workers, 1)
    gpus = workers * (scaling.gpus_per_worker or 1) if scaling.use_gpu else 0.0
    return workers * scaling.cpus_per_worker, gpus, 1


# -- storage and tracking ----------------------------------------------------------------------


def _storage(storage_path: str) -> Check:

    resolved = storage.resolve(storage_path)
    fix = ("set storage_path=... (or HK_TUNE_STORAGE_PATH) to a folder this user can write, or "
           "an object-store URI with credentials in the environment")
    try:
        if resolved.startswith("file://"):  # a local folder under another name: same check
            detail = _probe_folder(resolved.removeprefix("file://").partition("?")[0])
        elif storage.is_uri(resolved):
            detail = _probe_uri(resolved)
        else:
            detail = _probe_folder(resolved)
    except OSError as error:
        reason = " ".join(str(getattr(error, "strerror", None) or error).split())
        return Check("storage", False, f"storage_path {resolved} is not writable ({reason})", fix)
    return Check("storage", True, detail)


def _probe_folder(path: str) -> str:
    """Writes and removes a file in `path`, or in the nearest folder above it that exists
    (where the search would create it), so that nothing is left behind."""
    folder = Path(path)
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(20, f"{existing} is a file, so no folder can be made under it")
    handle, probe = tempfile.mkstemp(prefix=".hk_tune_doctor_", dir=existing)
    os.close(handle)
    os.unlink(probe)
    if existing == folder:
        return f"storage_path {path} is writable"
    return f"storage_path {path} will be created in {existing}, which is writable"


def _probe_uri(uri: str) -> str:
    """Writes and deletes a small object under `uri`, through the filesystem searches use."""
    import pyarrow.fs


    probe = storage.join(uri, f".hk_tune_doctor_{os.getpid()}")
    try:
        storage.write_text(probe, "hk-tune doctor write probe\n")
        filesystem, inner = pyarrow.fs.FileSystem.from_uri(probe)
        filesystem.delete_file(inner)
    except OSError:
        raise
    except Exception as error:  # pyarrow raises its own types for credentials and endpoints
        raise OSError(f"{type(error).__name__}: {error}") from None
    return f"storage_path {uri} is writable (an object was written and deleted)"


def _tracking(tracking_uri: str | None) -> Check:

    uri = resolve_tracking_uri(tracking_uri)
    try:
        check_tracking_uri(uri)  # before opening it: a foreign SQLite file would get its tables
    except ConfigError as error:
        return Check("tracking", False, str(error))
    database = _new_sqlite_file(uri)
    if database is not None:
        # A local store that does not exist yet: opening it would create it; check its folder.
        try:
            _probe_folder(str(database.parent))
        except OSError as error:
            return Check("tracking", False, f"MLflow store {uri}: {database.parent} is not "
                         f"writable ({error.strerror or error})",
                         "pass --tracking-uri (or set MLFLOW_TRACKING_URI) to a store you can "
                         "write, or run from a writable folder")
        return Check("tracking", True, f"MLflow store {uri} does not exist yet; the first "
                     "search creates it")
    try:
        SearchTracker(uri).check()
    except TrackingError as error:
        return Check("tracking", False, str(error))
    return Check("tracking", True, f"MLflow store {uri} answers")


def _new_sqlite_file(uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.endswith(":memory:"):
        return None
    database = Path(uri[len(prefix):].split("?", 1)[0])
    return None if database.exists() else database


# -- model and data ----------------------------------------------------------------------------


def _guarded(name: str, target: Target, check: Callable[[], str]) -> Check:
    """Runs a model or data check; bad input there is a problem line, not an exit."""
    try:
        return Check(name, True, check())
    except ConfigError as error:
        return Check(name, False, str(error), f"change that key in {target.file}, or override "
                     "it on the command line (key=value)")


def _model(cfg) -> str:

    model_type = check_model(cfg.model, cfg.lora)
    tokenizer = load_tokenizer(cfg.model)
    targets = ", ".join(target_modules(model_type, cfg.lora))
    return (f"{cfg.model.name} ({model_type}): config and tokenizer load "
            f"({len(tokenizer)} tokens); LoRA r={cfg.lora.rank} on {targets}")


def _data(cfg) -> str:

    data = load_task(cfg.data)
    labels = f", labels {list(data.label_names)}" if data.label_names else ""
    return (f"{cfg.data.source}: {data.task}{labels}; {len(data.train)} train and "
            f"{len(data.eval)} eval rows")
