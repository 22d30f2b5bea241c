"""The pre-registered comparison's own pieces (benchmarks/reproduce.py): the pilot gate, the
equal grid effort of its rows, and its table from a hand-made record set. The protocol run
itself is a benchmark, not a test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def protocol():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" /
                                                  "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def curve(losses: list[float], accuracies: list[float] | None = None,
          steps_per_epoch: int = 20) -> list[dict]:
    accuracies = accuracies or [0.7] * len(losses)
    rows, best, best_step = [], -1.0, 0
    for epoch, (loss, accuracy) in enumerate(zip(losses, accuracies, strict=True), start=1):
        step = epoch * steps_per_epoch
        if accuracy >= best:
            best, best_step = accuracy, step
        rows.append({"step": step, "epoch": float(epoch), "eval_loss": loss, "train_loss": 0.1,
                     "eval_accuracy": accuracy, "best_eval_accuracy": best,
                     "best_step": best_step, "train_consistency_share": 0.0})
    return rows


OVERFITS = [0.65, 0.51, 0.54, 0.59, 0.60, 0.62]  # lowest at epoch 2 of 6
STILL_LEARNING = [0.69, 0.66, 0.62, 0.60, 0.58, 0.57]
LATE_TURN = [0.69, 0.66, 0.62, 0.58, 0.57, 0.60]  # lowest at epoch 5 of 6


def test_the_pilot_gate_passes_a_baseline_that_overfits_early(protocol):
    ok, message = protocol.pilot_gate([curve(OVERFITS), curve(OVERFITS), curve(STILL_LEARNING)])
    assert ok and "2 of 3 seeds" in message


@pytest.mark.parametrize("curves", [[STILL_LEARNING] * 3, [OVERFITS, LATE_TURN, LATE_TURN]])
def test_the_pilot_gate_stops_a_regime_that_cannot_show_dropout(protocol, curves):
    ok, message = protocol.pilot_gate([curve(losses) for losses in curves])
    assert not ok
    assert "has not passed its minimum by the middle of training" in message
    assert "raise optim.epochs or lower data.max_train_samples" in message


def test_every_row_gets_the_same_grid_effort(protocol):
    pilot, rest = protocol.plan("sentiment", protocol.ROWS, protocol.SEEDS, sweep=True,
                                eval_samples=None)
    runs = pilot + rest
    per_row = {row: [r for r in runs if r["row"] == row and r["rate"] is None]
               for row in protocol.ROWS}
    assert {len(r) for r in per_row.values()} == {len(protocol.SEEDS)}  # one point, every seed
    for row, row_runs in per_row.items():
        assert sorted(r["seed"] for r in row_runs) == list(protocol.SEEDS)
        # One grid point: every seed trains the same configuration, the seed apart.
        points = {repr({k: v for k, v in r["config"].items() if k not in ("seed", "name")})
                  for r in row_runs}
        assert len(points) == 1, row
    swept = [r for r in runs if r["rate"] is not None]
    assert len(swept) == len(protocol.SWEEP) * len(protocol.SWEEP_RATES) * len(
        protocol.SWEEP_SEEDS)
    assert [r["row"] for r in pilot] == ["baseline"] * len(protocol.PILOT_SEEDS)
    assert len({r["id"] for r in runs}) == len(runs)
    config = rest[0]["config"]
    assert config["optim"]["weight_decay"] == 0.1 and config["lora"]["head"] == "full"


def test_the_table_applies_the_criterion_to_paired_seeds(protocol):
    def runs(row: str, best: list[float]) -> list[dict]:
        return [{"id": f"{row}-{seed}", "row": row, "seed": seed, "rate": None, "error": None,
                 "history": curve(OVERFITS, [0.5] * 5 + [value])}
                for seed, value in zip(protocol.SEEDS, best, strict=True)]

    records = (runs("baseline", [0.76, 0.77, 0.75, 0.765, 0.755])
               + runs("hiddenkey", [0.79, 0.80, 0.77, 0.79, 0.775])
               + runs("dropkey_column", [0.77, 0.76, 0.76, 0.77, 0.75]))
    cells = protocol.compare(protocol.by_row(records))
    assert cells["hiddenkey"]["beats"] and cells["hiddenkey"]["wins"] == 5
    assert not cells["dropkey_column"]["beats"]
    report = {"seeds": protocol.SEEDS, "rows": ("baseline", "hiddenkey", "dropkey_column")}
    text = protocol.table("sentiment", cells, report)
    assert "| hiddenkey | 79.0 ± 1.2 | +3.0 | 5/5 |" in text
    assert "| yes |" in text and "| no |" in text


def test_the_sweep_table_pairs_each_rate_with_the_baselines_seeds(protocol):
    def runs(row: str, rate: float | None, best: list[float]) -> list[dict]:
        return [{"id": f"{row}-{rate}-{seed}", "row": row, "seed": seed, "rate": rate,
                 "error": None, "history": curve(OVERFITS, [0.5] * 5 + [value])}
                for seed, value in zip(protocol.SWEEP_SEEDS, best, strict=True)]

    records = (runs("baseline", None, [0.76, 0.77, 0.75])
               + runs("dropkey_column", None, [0.78, 0.78, 0.76])
               + runs("dropkey_column", 0.05, [0.75, 0.76, 0.74])
               + runs("dropkey_column", 0.2, [0.80, 0.79, 0.78]))
    text = protocol.sweep_table("sentiment", records)
    assert "| dropkey_column | 0.05 | 75.0 [74.0, 76.0] | -1.0 | 0/3 |" in text
    assert "| dropkey_column | 0.1 | 78.0 [76.0, 78.0] | +2.0 | 3/3 |" in text
    assert "| dropkey_column | 0.2 | 79.0 [78.0, 80.0] | +3.0 | 3/3 |" in text
    # A swept row that was not run says so instead of vanishing.
    assert "| hiddencut_element | 0.05 | failed |" in text


def test_render_rebuilds_the_outputs_from_a_report_without_training(protocol, tmp_path):
    import json

    records = [{"id": f"baseline-{seed}", "task": "sentiment", "row": "baseline", "seed": seed,
                "rate": None, "error": None, "history": curve(OVERFITS)}
               for seed in protocol.SEEDS]
    report = {"quick": False, "rows": ["baseline"], "seeds": list(protocol.SEEDS),
              "tasks": {"sentiment": {"pilot": "pilot: ok", "runs": records}}}
    (tmp_path / "in.json").write_text(json.dumps(report))
    assert protocol.main(["--render", str(tmp_path / "in.json"), "--out",
                          str(tmp_path / "out")]) == 0
    assert "| baseline | 70.0 ± 0.0 |" in (tmp_path / "out" / "table.md").read_text()
    assert (tmp_path / "out" / "curves_sentiment.png").stat().st_size > 0
