"""The `hk-tune` command: one entry point, one subcommand per job.

    hk-tune train CONFIG [key=value ...] [--json]
    hk-tune search SPACE [key=value ...] [--address ADDR] [--tracking-uri URI] [--json]
    hk-tune resume PATH [num_samples=N] [--trust] [--json]
    hk-tune best PATH [--json]
    hk-tune export PATH DEST
    hk-tune show SPACE [key=value ...] [-n N]
    hk-tune ui [--tracking-uri URI] [--host 127.0.0.1] [--port 5000]
    hk-tune dashboard PATH [--host 127.0.0.1] [--port 8080]
    hk-tune doctor [CONFIG_OR_SPACE] [key=value ...] [--address ADDR] [--tracking-uri URI]

Bad input (config, overrides, model, data) is reported as one line naming the file, the key and
what is allowed, with exit status 2, before Ray starts. Training progress goes to stderr; stdout
holds the summary, and with `--json` its last line is the final metrics as a JSON object.
Ray is imported by the jobs themselves, never by the command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hk_tune.cli import doctor, search, train
from hk_tune.cli.common import EXIT_BAD_INPUT
from hk_tune.errors import ConfigError
from hk_tune.tracking.store import TrackingError


def run() -> int:
    """The `hk-tune` console script: `main`, then an exit without the interpreter's last
    garbage collection.

    That collection walks every object torch, transformers, Ray and MLflow made, which after a
    search takes seconds, for memory the process is about to return anyway. `gc.freeze()` moves
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
    except (ConfigError, TrackingError) as error:  # bad input, or a store that does not answer
        print(f"hk-tune: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="hk-tune",
        description="Find the best dropout configuration for LoRA finetuning.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train.add_commands(commands)
    search.add_commands(commands)
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
    """`hk-tune doctor`: see `hk_tune.cli.doctor`."""
    return doctor.run(args.target, args.overrides, args.address, args.tracking_uri)
