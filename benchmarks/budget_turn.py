"""Does a search space's training budget reach the point where LoRA overfits?

    python benchmarks/budget_turn.py search_spaces/quickstart.yaml search_spaces/positions.yaml
    python benchmarks/budget_turn.py search_spaces/paper.yaml --json

Dropout can only help once a run without it has passed the minimum of its eval loss. For each
space this trains the space's fixed settings with every dropout off (the paper's baseline), in
this process without Ray (`LocalSession`, the same training loop as a trial), and prints its
eval loss per evaluation, where it was lowest, and whether it had turned upward by the end
(`hk_tune.search.overfit`, the check a search runs on its trials). Overrides after `--` apply to
every space, e.g. `-- data.max_train_samples=200`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spaces", nargs="+", help="search-space YAML files")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own, every core)")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    argv = sys.argv[1:] if argv is None else argv
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:len(argv) - len(overrides) - bool(overrides)])

    import torch

    from hk_tune.config.run import RunConfig
    from hk_tune.config.space_file import load_space
    from hk_tune.search.overfit import eval_loss_turn
    from hk_tune.train.loop import run_loop
    from hk_tune.train.session import LocalSession

    if args.threads:
        torch.set_num_threads(args.threads)
    report = {}
    for path in args.spaces:
        space = load_space(path, overrides)
        raw = {**space.raw_config({}), "dropout": "baseline", "name": f"{space.name}_baseline"}
        cfg = RunConfig.from_dict(raw, where=path)
        session = LocalSession(cache=False)
        started = time.perf_counter()
        run_loop(cfg.to_dict(), session)
        wall = time.perf_counter() - started
        turn = eval_loss_turn(session.history)
        curve = [(row["step"], round(row["eval_loss"], 4)) for row in session.history]
        report[path] = {"wall_s": round(wall, 1), "eval_loss": curve,
                        "min_step": turn.min_step, "min_loss": turn.min_loss,
                        "last_loss": turn.last_loss, "turned": turn.turned,
                        "best": session.history[-1][space.score],
                        "best_step": session.history[-1]["best_step"]}
        shown = ", ".join(f"{step}: {loss:.3f}" for step, loss in curve)
        print(f"{path}: baseline eval loss {shown}; lowest {turn.min_loss:.3f} at step "
              f"{turn.min_step} of {curve[-1][0]}, "
              f"{'turned' if turn.turned else 'NOT turned'}; {space.score} "
              f"{report[path]['best']:.4f} at step {report[path]['best_step']}; "
              f"{wall:.0f} s", flush=True)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 0 if all(row["turned"] for row in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
