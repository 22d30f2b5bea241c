"""Every use hk_tune makes of Ray's private APIs, in one place (Ray is pinned).

Ray has no public way to do these; each function says what it needs and why, and
`tests/search/test_ray_internals.py` calls each on real Ray objects, so a Ray upgrade that
changes one fails there by name instead of somewhere in a search.

- Tune's controller saves its state when a trial changed, and signs it (`save_state_on_change`).
- The searcher is rebuilt from a resumed experiment's trials (`optuna_parts`,
  `replay_define_by_run`, `hold_live_trials`, `restore_generator_spec`).
- A restored Tuner gets this session's callbacks and searcher (`restored_tuner_parts`).
- The GPUs local Ray would schedule, counted without starting it (`local_ray_gpus`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def save_state_on_change() -> Iterator[None]:
    """While the block runs, Tune's controller saves its experiment state at the end of every
    step in which a trial was added, started, reported, checkpointed or stopped, and signs what
    it saved (`hk_tune.search.trust`) before the copy to storage starts.

    The controller marks such a trial for its next snapshot (`_trials_to_cache`) but then saves
    only every `TUNE_GLOBAL_CHECKPOINT_S` seconds; a marked trial forces the save here. It saves
    into a local staging folder (`_storage.experiment_driver_staging_path`, trials' files
    included) and copies that folder to storage. A local search folder's filesystem signs each
    file as it lands; for an object store the staging folder is signed, and the signatures
    travel with the copy.
    """
    from ray.tune.execution.tune_controller import TuneController

    from hk_tune.search.trust import sign_tree
    from hk_tune.search.tune_state import signs_on_write

    checkpoint, save_to_dir = TuneController.checkpoint, TuneController.save_to_dir

    def on_change(controller, force: bool = False, wait: bool = False) -> None:
        checkpoint(controller, force=force or bool(controller._trials_to_cache), wait=wait)

    def save_signed(controller) -> None:
        save_to_dir(controller)
        if not signs_on_write(controller._storage.storage_filesystem):
            sign_tree(controller._storage.experiment_driver_staging_path)

    TuneController.checkpoint, TuneController.save_to_dir = on_change, save_signed
    try:
        yield
    finally:
        TuneController.checkpoint, TuneController.save_to_dir = checkpoint, save_to_dir


def optuna_parts(searcher) -> tuple[dict[str, Any], Any]:
    """An `OptunaSearch`'s Tune trial id -> Optuna trial map and its Optuna study."""
    return searcher._ot_trials, searcher._ot_study


def replay_define_by_run(searcher, space: Callable, ot_trial) -> dict[str, Any]:
    """Runs the define-by-run function `space` on `ot_trial` as `OptunaSearch.suggest` does,
    so Optuna records each parameter with its distribution."""
    return searcher._suggest_from_define_by_run_func(space, ot_trial)


def hold_live_trials(limiter, trial_ids: set[str]) -> None:
    """Marks `trial_ids` as running in a `ConcurrencyLimiter`, so they hold its slots."""
    limiter.live_trials = set(trial_ids)
    limiter.num_unfinished_live_trials = len(trial_ids)


def restore_generator_spec(generator, dirpath: str, total_samples: int) -> None:
    """Takes only what to run (the experiment's spec) from a search generator's saved state in
    `dirpath`, read with Tune's own reader, and sets the budget.

    Raises:
        RuntimeError: no saved state in `dirpath`.
    """
    from ray.tune.utils.util import _load_newest_checkpoint

    pattern = generator.CKPT_FILE_TMPL.format("*")
    state = _load_newest_checkpoint(dirpath, pattern)
    if not state:
        raise RuntimeError(f"{dirpath}: no {pattern} to resume from")
    generator._experiment = state["experiment"]
    generator._total_samples = total_samples


def set_generator_count(generator, created: int) -> None:
    """Sets how many trials a search generator has made, so the budget left is
    `total_samples - created`."""
    generator._counter = created


def restored_tuner_parts(tuner) -> tuple[Any, Any, Any]:
    """A restored `Tuner`'s run config, the experiment analysis of its saved trials (None when
    there are none) and its tune config. `Tuner.restore` takes neither callbacks nor a
    searcher; they are set on these."""
    local = tuner._local_tuner
    return local._run_config, local._experiment_analysis, local._tune_config


def local_ray_gpus() -> int:
    """NVIDIA GPUs as local Ray would count them: the driver's count, limited by
    CUDA_VISIBLE_DEVICES (Ray's own accelerator manager, so it is the number Ray schedules)."""
    from ray._private.accelerators import NvidiaGPUAcceleratorManager as Nvidia

    count = Nvidia.get_current_node_num_accelerators()
    visible = Nvidia.get_current_process_visible_accelerator_ids()
    return min(count, len(visible)) if visible is not None else count
