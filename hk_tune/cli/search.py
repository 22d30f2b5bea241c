"""The search subcommands of `hk-tune`: search, resume, best, export, show, ui and dashboard.

Progress goes to stderr (Tune's status and each evaluation's line); stdout holds the ranked
table, the confirmation and the best configuration, and with `--json` its last line is one JSON
object (best config, metric, median, number of trials, path).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time

from hk_tune import storage
from hk_tune.cli.common import EXIT_INTERRUPTED, add_json, add_tracking
from hk_tune.config.space_file import load_space
from hk_tune.errors import ConfigError
from hk_tune.search import overfit, results
from hk_tune.search.confirm import format_confirmation
from hk_tune.search.dashboard import DEFAULT_PORT, open_dashboard, serve_dashboard
from hk_tune.search.export import EXPORT_INFO, export_search
from hk_tune.search.results import SearchSummary, format_table, json_line
from hk_tune.search.run import SearchOptions, describe_search, resume_search, search, search_folder
from hk_tune.search.space import sample
from hk_tune.search.unfinished import SEARCH_STATE
from hk_tune.tracking import serve_ui, stop_ui, ui_url
from hk_tune.tracking.names import run_name

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_commands(commands) -> None:
    """Adds search, resume, best, export, show, ui and dashboard to the `hk-tune` subparsers."""
    search = commands.add_parser(
        "search", help="search the dropout design space with Ray Tune + Optuna",
        description="Search a space file (search_spaces/*.yaml) with Ray Tune and Optuna's TPE; "
        "print the ranked trials and write the best configuration as a run config.")
    search.add_argument("space", help="search-space YAML, e.g. search_spaces/quickstart.yaml")
    search.add_argument("overrides", nargs="*", metavar="key=value",
                        help="fixed RunConfig keys (data.source=my.csv) or settings "
                        "(num_samples=20, confirm.seeds=5)")
    search.add_argument("--address", help="a running Ray cluster (default: local Ray)")
    add_dashboard(search)
    add_tracking(search)
    add_json(search, "the best configuration and its statistics")
    search.set_defaults(command_fn=search_command)

    resume = commands.add_parser(
        "resume", help="continue an interrupted search",
        description="Continue an interrupted search, or extend a finished one with "
        "num_samples=N (N trials in all): finished trials are not re-run and the searcher keeps "
        "its history.")
    resume.add_argument("path", help="the search's folder, e.g. hk_tune_runs/quickstart")
    resume.add_argument("overrides", nargs="*", metavar="num_samples=N",
                        help="extend the search to N trials in all (a finished one too)")
    resume.add_argument("--address", help="a running Ray cluster (default: as the search)")
    resume.add_argument(
        "--trust", action="store_true",
        help="resume a folder your hk_tune did not sign (copied from elsewhere): resuming "
        "unpickles Tune's state in it, which can run its author's code; the folder is then "
        "signed with your key")
    add_dashboard(resume)
    add_json(resume, "the best configuration and its statistics")
    resume.set_defaults(command_fn=resume_command)

    best = commands.add_parser("best", help="print the best configuration of a finished search")
    best.add_argument("path", help="the search's folder, e.g. hk_tune_runs/quickstart")
    add_json(best, "the best configuration and its statistics")
    best.set_defaults(command_fn=best_command)

    export = commands.add_parser(
        "export", help="write the best trial's adapter as a folder peft loads",
        description="Write the adapter (LoRA weights and task head) of a finished search's best "
        "trial, at its best evaluation, into a new folder that PeftModel.from_pretrained loads.")
    export.add_argument("path", help="the search's folder, e.g. hk_tune_runs/quickstart")
    export.add_argument("dest", help="a new (or empty) folder to write")
    export.set_defaults(command_fn=export_command)

    show = commands.add_parser("show", help="print sampled configurations of a space")
    show.add_argument("space", help="search-space YAML")
    show.add_argument("overrides", nargs="*", metavar="key=value")
    show.add_argument("-n", "--samples", type=int, default=5, help="how many (default 5)")
    show.set_defaults(command_fn=show_command)

    ui = commands.add_parser("ui", help="the MLflow UI for the local tracking store")
    add_tracking(ui)
    ui.add_argument("--host", default="127.0.0.1",
                    help="interface to listen on (default 127.0.0.1: this machine only; the UI "
                    "has no login, so 0.0.0.0 lets anyone on the network read and delete runs)")
    ui.add_argument("--port", type=port_number, default=5000, help="1-65535 (default 5000)")
    ui.set_defaults(command_fn=ui_command)

    dashboard = commands.add_parser(
        "dashboard", help="serve optuna-dashboard for a search's Optuna study",
        description="Serve optuna-dashboard on the search's Optuna study: trials, their "
        "evaluations, parallel coordinates, importances; live while the search runs.")
    dashboard.add_argument("path", help="the search's folder, e.g. hk_tune_runs/quickstart")
    dashboard.add_argument("--host", default="127.0.0.1",
                           help="interface to listen on (default 127.0.0.1: this machine only; "
                           "the dashboard has no login)")
    dashboard.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                           help=f"1-65535 (default {DEFAULT_PORT})")
    dashboard.set_defaults(command_fn=dashboard_command)


def add_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-dashboard", action="store_true",
                        help="start local Ray with its dashboard on 127.0.0.1:8265 (off by "
                        "default: on a small machine its processes take CPU from the trials)")


def search_command(args: argparse.Namespace) -> int:

    space = load_space(args.space, args.overrides)
    started = time.perf_counter()
    try:
        with signals_interrupt():
            summary = search(space, SearchOptions(space_file=args.space,
                                                  overrides=list(args.overrides),
                                                  address=args.address,
                                                  ray_dashboard=args.ray_dashboard,
                                                  tracking_uri=args.tracking_uri))
    except ConfigError as error:
        raise in_file(error, args.space) from None
    except KeyboardInterrupt:
        return interrupted(search_folder(space))
    return report(summary, args.json, time.perf_counter() - started)


def in_file(error: Exception, file: str) -> Exception:
    """`error` naming `file`: the search's model and data check reports the key and the value
    but not the space file they came from. Subclasses (an unreachable tracking store, a
    checkpoint) name their own place and are kept as they are."""

    if type(error) is not ConfigError or str(error).startswith(f"{file}:"):
        return error
    return ConfigError(f"{file}: {error}")


def resume_command(args: argparse.Namespace) -> int:

    started = time.perf_counter()
    try:
        with signals_interrupt():
            summary = resume_search(args.path, address=args.address,
                                    ray_dashboard=args.ray_dashboard, trust=args.trust,
                                    overrides=args.overrides)
    except KeyboardInterrupt:
        return interrupted(storage.resolve(args.path))
    return report(summary, args.json, time.perf_counter() - started)


@contextlib.contextmanager
def signals_interrupt():
    """SIGTERM (a kill, a timeout, systemd, a scheduler ending the job) and SIGHUP (a closed
    terminal) interrupt the block as Ctrl-C does, so what it started is stopped and recorded
    instead of left running."""
    stops = (signal.SIGTERM, signal.SIGHUP)
    previous = {stop: signal.signal(stop, _interrupt) for stop in stops}
    try:
        yield
    finally:
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def interrupted(folder: str) -> int:
    """Exit status 130, as a shell gives a command Ctrl-C stopped, and how to go on."""
    if storage.exists(storage.join(folder, SEARCH_STATE)):
        print(f"hk-tune: interrupted; Tune's state is saved: continue with "
              f"`hk-tune resume {folder}`", file=sys.stderr)
    else:
        print("hk-tune: interrupted before the search began; nothing to resume", file=sys.stderr)
    return EXIT_INTERRUPTED


def best_command(args: argparse.Namespace) -> int:

    summary = results.read_summary(args.path)
    if storage.is_uri(args.path):
        # The summary's local copy of the best configuration lives on the machine that ran the
        # search; write one here so `hk-tune train` can take it.
        path = results.local_best_config_path(summary.name)
        results.write_best_config(str(path), summary.best_config, (
            f"The best configuration of search {summary.name!r}, from {args.path}. "
            f"Train it with:\n\n  hk-tune train {path}"))
        summary.best_config_path = str(path)
    print(format_best(summary))
    if args.json:
        print(json_line(summary))
    return 0


def export_command(args: argparse.Namespace) -> int:

    folder = export_search(args.path, args.dest)
    about = json.loads((folder / EXPORT_INFO).read_text())
    print(f"wrote {folder}: {about['configuration']} (trial {about['trial_id']}) at step "
          f"{about['step']}, {about['metric']} {about['best']:.4f}; load it with "
          f"PeftModel.from_pretrained(base_model, {str(folder)!r})")
    return 0


def show_command(args: argparse.Namespace) -> int:

    space = load_space(args.space, args.overrides)
    print(describe_search(space))
    for point in sample(space, args.samples):
        params = space.trial_params(point)
        shown = {name.replace("/", ".", 1): value for name, value in point.items()}
        print(f"- {run_name(params)}: {json.dumps(shown, sort_keys=True)}")
    return 0


def ui_command(args: argparse.Namespace) -> int:

    if args.host not in LOOPBACK:
        # The MLflow UI has no login: whoever reaches the port can read and delete every run.
        print(f"hk-tune: warning: the MLflow UI listens on {args.host}:{args.port} with no "
              "login; anyone who can reach that port can read and delete runs (the default, "
              "--host 127.0.0.1, keeps it on this machine)", file=sys.stderr, flush=True)
    process = serve_ui(args.tracking_uri, host=args.host, port=args.port)
    print(f"MLflow UI at {ui_url(args.host, args.port)} (Ctrl-C stops it)", flush=True)
    # The server runs in its own process group, which a signal to this process alone does not
    # reach: a kill, a timeout, systemd or a closed terminal stop it as Ctrl-C does.
    try:
        with signals_interrupt():
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_ui(process)
    return 0


def dashboard_command(args: argparse.Namespace) -> int:
    if args.host not in LOOPBACK:
        print(f"hk-tune: warning: the dashboard listens on {args.host}:{args.port} with no "
              "login; anyone who can reach that port can read the study", file=sys.stderr,
              flush=True)
    study = open_dashboard(args.path, args.host, args.port)
    print(f"Optuna dashboard at http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        with signals_interrupt():
            serve_dashboard(study, args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def port_number(text: str) -> int:
    """A TCP port, for argparse: an integer in 1..65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port; allowed: 1 to 65535")
    return port


def report(summary: SearchSummary, as_json: bool, wall_s: float) -> int:
    print(format_best(summary))
    print(f"wall time {wall_s:.0f} s")
    if as_json:
        print(json_line(summary))
    return 0


def format_best(summary: SearchSummary) -> str:
    """The ranked table, the confirmation, the best configuration and where things are."""
    lines = [format_table(summary.results, summary.metric, scope=summary.metric_scope)]
    if summary.confirmation:
        lines.append(format_confirmation(summary.confirmation))
    lines += overfit.describe(summary.overfitting or {"completed": 0}, summary.metric)
    best = summary.best
    winner = (summary.confirmation or {}).get("winner") or {}
    median = f", median {winner['median']:.4f} over seeds" if winner else ""
    step = f" at step {best['best_step']}" if best.get("best_step") not in (None, -1) else ""
    scope = "best " if summary.metric_scope == "best" else ""
    lines.append(f"best: {best['name']} ({scope}{summary.metric} {best['metric']:.4f}{step}"
                 f"{median}), trial {best['trial_id']}")
    if summary.importances:
        lines.append("importance (PED-ANOVA): " + ", ".join(
            f"{k} {v:.2f}" for k, v in sorted(summary.importances.items(),
                                              key=lambda kv: (-kv[1], kv[0]))))
    lines.append(f"best configuration: {summary.best_config_path}  "
                 f"(hk-tune train {summary.best_config_path})")
    if best.get("checkpoint"):
        lines.append(f"its adapter at that step: hk-tune export {summary.path} DEST")
    lines.append(f"search folder: {summary.path}; MLflow: {summary.tracking_uri}")
    return "\n".join(lines)
