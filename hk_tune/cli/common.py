"""What the subcommands share: exit statuses and the options several of them take."""

from __future__ import annotations

import argparse

EXIT_BAD_INPUT = 2
EXIT_TRAINING_FAILED = 1
EXIT_INTERRUPTED = 130  # what a shell reports for a command Ctrl-C stopped


def add_tracking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, "
                        "else sqlite ./mlflow.db)")


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"end with {what} as one JSON line")
