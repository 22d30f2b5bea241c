"""The `hk-tune` command: one entry point, one subcommand per job.

    hk-tune train CONFIG [key=value ...] [--json]
    hk-tune search SPACE [key=value ...] [--address ADDR] [--tracking-uri URI] [--json]
    hk-tune resume PATH [--json]
    hk-tune best PATH [--json]
    hk-tune export PATH DEST
    hk-tune show SPACE [key=value ...] [-n N]
    hk-tune ui [--tracking-uri URI] [--host 127.0.0.1] [--port 5000]
    hk-tune doctor [CONFIG_OR_SPACE] [key=value ...] [--address ADDR] [--tracking-uri URI]

Bad input (config, overrides, model, data) is reported as one line naming the file, the key and
what is allowed, with exit status 2, before Ray starts. Training progress goes to stderr; stdout
holds the summary, and with `--json` its last line is the final metrics as a JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hk_tune.errors import ConfigError

if TYPE_CHECKING:
    from hk_tune.train.run_config import RunConfig
    from hk_tune.train.trainer import RunResult

EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 1


def run() -> int:
    """The `hk-tune` console script: `main`, then an exit without the interpreter's last
    garbage collection.

    That collection walks every object torch, transformers, Ray and MLflow made, which after a
    search takes 2 s, for memory the process is about to return anyway. `gc.freeze()` moves
    them out of its reach (refcounted objects are still freed as the interpreter ends); only
    the console script does this, as a process embedding `main` keeps running.
    """
    import gc

    status = main()
    gc.freeze()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `hk-tune` with `argv` (default: the process's arguments); returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.command_fn(args)
    except ConfigError as error:
        print(f"hk-tune: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as error:
        from hk_tune.tracking import TrackingError

        if isinstance(error, TrackingError):  # the store does not answer: nothing trained yet
            print(f"hk-tune: error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="hk-tune",
        description="Find the best dropout configuration for LoRA finetuning.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="finetune one LoRA run on Ray Train",
        description="Finetune one LoRA run on Ray Train. Reusing a run's name continues it "
        "from its latest checkpoint.",
    )
    train.add_argument("config", help="run config YAML (e.g. hk_tune/configs/quickstart.yaml)")
    train.add_argument(
        "overrides", nargs="*", metavar="key=value",
        help="dotted overrides, e.g. optim.max_steps=50 dropout.preset=hiddenkey",
    )
    train.add_argument(
        "--json", action="store_true", help="end with the final metrics as one JSON line"
    )
    train.set_defaults(command_fn=train_command)
    add_search_commands(commands)
    doctor = commands.add_parser(
        "doctor", help="check the environment a search needs",
        description="Check what a search or run needs, one line per check (ok, or problem and "
        "how to fix it): package pins, Ray (local Ray is not started: this machine's CPUs, GPUs "
        "and memory are reported; --address connects to a cluster), whether trials fit, the "
        "storage path, the tracking store, and for a given file its model (config and "
        "tokenizer) and data. Exit status 0: all ok; 1: a problem; 2: bad input.")
    doctor.add_argument("target", nargs="?", metavar="CONFIG_OR_SPACE",
                        help="a run config or a search space (optional)")
    doctor.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides, as for train and search")
    doctor.add_argument("--address", help="a running Ray cluster to connect to (default: report "
                        "what local Ray would use, without starting it)")
    doctor.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, "
                        "else sqlite ./mlflow.db)")
    doctor.set_defaults(command_fn=doctor_command)
    return parser


def doctor_command(args: argparse.Namespace) -> int:
    """`hk-tune doctor`: see `hk_tune.doctor`."""
    from hk_tune.doctor import run

    return run(args.target, args.overrides, args.address, args.tracking_uri)


def train_command(args: argparse.Namespace) -> int:
    """`hk-tune train`: validate everything, fit on Ray Train, print the curves and a summary."""
    from hk_tune.train import storage
    from hk_tune.train.run_config import load_run_config
    from hk_tune.train.trainer import check, fit, storage_folder

    cfg = load_run_config(args.config, args.overrides)
    try:
        check(cfg)
    except ConfigError as error:
        raise ConfigError(f"{args.config}: {error}") from None

    # Library progress bars drown the per-evaluation lines; Ray workers inherit these.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    print(describe(cfg), flush=True)
    run_folder = storage.join(storage_folder(cfg), cfg.name)
    if storage.exists(run_folder):
        print(f"continuing run {cfg.name!r} from its latest checkpoint in {run_folder} "
              "(set name=... to start a new run)", flush=True)

    import ray.train

    try:
        result = fit(cfg)
    except ray.train.TrainingFailedError as error:
        print(f"hk-tune: training failed: {error}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    print(summarize(result))
    if args.json:
        print(json.dumps(result.metrics, sort_keys=True))
    return 0


def describe(cfg: RunConfig) -> str:
    """One line saying what is about to run."""
    from hk_tune.dropout import PRESETS

    preset = next((name for name, spec in PRESETS.items() if spec == cfg.dropout), None)
    dropout = preset or "custom (" + ", ".join(
        f"{p} {cfg.dropout.position(p).pattern} {cfg.dropout.position(p).rate:g}"
        for p in cfg.dropout.active_positions
    ) + f"; consistency {cfg.dropout.consistency})"
    optim = cfg.optim
    budget = f"{optim.max_steps} steps" if optim.max_steps else f"{optim.epochs or 1:g} epochs"
    workers = cfg.scaling.num_workers or "in-process"
    return (f"run {cfg.name!r}: {cfg.model.name} + LoRA r={cfg.lora.rank} on {cfg.data.source}, "
            f"dropout {dropout}, {budget} of batch {optim.batch_size}, workers {workers}")


def summarize(result: RunResult) -> str:
    """The curves (one row per evaluation), the best evaluation, the trainable parameters and
    where the run's files are."""
    rows = result.history or [result.metrics]
    columns = ["step", "epoch", "train_loss", "eval_loss"] + sorted(
        key for key in rows[-1] if key.startswith("eval_") and key != "eval_loss"
    )
    widths = [max(len(c), 8) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    for row in rows:
        cells = [_format(row.get(c)) for c in columns]
        lines.append("  ".join(cell.rjust(w) for cell, w in zip(cells, widths, strict=True)))
    last = result.metrics
    best = next((key for key in last if key.startswith("best_eval_")), None)
    if best is not None:
        lines.append(f"best {best.removeprefix('best_')}: {_format(last[best])} at step "
                     f"{last.get('best_step')}")
    if "trainable_lora_params" in last:
        lines.append(f"trainable parameters: LoRA {last['trainable_lora_params']:,}, task head "
                     f"{last['trainable_head_params']:,}")
    if result.path:
        lines.append(f"run folder: {result.path}")
    if result.best_checkpoint:
        lines.append(f"best evaluation's checkpoint: {result.best_checkpoint}")
    if result.checkpoint:
        lines.append(f"latest checkpoint (LoRA adapter + trainer state): {result.checkpoint}")
    return "\n".join(lines)


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


def add_search_commands(commands) -> None:
    """The subcommands of `hk_tune.search_cli`: search, resume, best, export, show, ui."""
    from hk_tune.search_cli import add_commands

    add_commands(commands)


if __name__ == "__main__":
    sys.exit(run())
