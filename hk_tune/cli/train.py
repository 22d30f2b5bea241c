"""`hk-tune train`: one LoRA finetuning on Ray Train, its curves and where its files are."""

from __future__ import annotations

import argparse
import json
import os
import sys

from hk_tune import storage
from hk_tune.cli.common import EXIT_TRAINING_FAILED, add_json
from hk_tune.config.run import RunConfig, load_run_config
from hk_tune.dropout.spec import PRESETS
from hk_tune.errors import ConfigError, TrainingFailedError
from hk_tune.train.trainer import check, fit, storage_folder


def add_commands(commands) -> None:
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
    add_json(train, "the final metrics")
    train.set_defaults(command_fn=train_command)


def train_command(args: argparse.Namespace) -> int:
    """`hk-tune train`: validate everything, fit on Ray Train, print the curves and a summary."""

    cfg = load_run_config(args.config, args.overrides)
    try:
        check(cfg)
    except ConfigError as error:
        raise ConfigError(f"{args.config}: {error}") from None

    # Library progress bars drown the per-evaluation lines; Ray workers inherit these.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    print(describe_run(cfg), flush=True)
    run_folder = storage.join(storage_folder(cfg), cfg.name)
    if storage.exists(run_folder):
        print(f"continuing run {cfg.name!r} from its latest checkpoint in {run_folder} "
              "(set name=... to start a new run)", flush=True)

    try:
        result = fit(cfg)
    except TrainingFailedError as error:
        print(f"hk-tune: training failed: {error}", file=sys.stderr)
        return EXIT_TRAINING_FAILED
    print(summarize(result))
    if args.json:
        print(json.dumps(result.metrics, sort_keys=True))
    return 0


def describe_run(cfg: RunConfig) -> str:
    """One line saying what is about to run."""
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


def summarize(result) -> str:
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
