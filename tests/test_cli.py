"""`hk-tune train` run in-process through `hk_tune.cli.main`, as a user would type it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hk_tune import cli


def write_config(tmp_path: Path, raw: dict) -> Path:
    raw = dict(raw)
    raw.pop("name")  # named after the file, as users' runs are
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_json(tiny_run, tmp_path, capsys, ray_session):
    raw = tiny_run("bert", "pair", dropout="hiddenkey",
                   scaling={"num_workers": 1, "cpus_per_worker": 1})
    path = write_config(tmp_path, raw)
    status = cli.main(["train", str(path), "optim.max_steps=6", "optim.eval_every=3", "--json"])
    out = capsys.readouterr().out
    assert status == 0
    lines = out.strip().splitlines()
    final = json.loads(lines[-1])
    assert final["step"] == 6 and final["world_size"] == 1
    assert math.isfinite(final["eval_loss"]) and 0.0 <= final["eval_accuracy"] <= 1.0
    assert lines[0].startswith("run 'tiny': ")
    # The curves: one row per evaluation, with train and eval loss.
    header = next(i for i, line in enumerate(lines) if line.split()[:4] ==
                  ["step", "epoch", "train_loss", "eval_loss"])
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["3", "6"]
    assert (tmp_path / "runs" / "tiny").is_dir()


BAD_INPUTS = [
    (["optim.lrr=0.1"], "optim.lrr", "allowed"),
    (["optim.lr=fast"], "optim.lr", "a number"),
    (["dropout=hiddenkeyy"], "preset", "hiddenkey_minus"),
    (["dropout.attn_logits.pattern=diagonal"], "attn_logits.pattern", "column"),
    (["data.source=bundled:nope"], "data.source", "bundled:snli"),
    (["data.label=stars"], "data.label", "columns"),
    (["model=/no/such/model"], "model", "not a folder"),
    (["lora.rank=0"], "lora.rank", ">= 1"),
    (["optim.lr"], "optim.lr", "key=value"),
]


@pytest.mark.parametrize("overrides, key, allowed", BAD_INPUTS, ids=[b[1] for b in BAD_INPUTS])
def test_bad_config_exits_2_before_training(tiny_run, tmp_path, capsys, monkeypatch, overrides,
                                            key, allowed):
    def never(cfg):
        raise AssertionError("training started on a bad config")

    monkeypatch.setattr("hk_tune.cli.train.fit", never)
    path = write_config(tmp_path, tiny_run())
    assert cli.main(["train", str(path), *overrides]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    message = captured.err.strip()
    assert "\n" not in message  # one line
    assert message.startswith("hk-tune: error: ") and str(path) in message
    assert key in message and allowed in message


def test_bad_config_from_the_shell_starts_no_ray(tiny_run, tmp_path):
    """The real command in a fresh process: exit status 2, one line, and no Ray instance."""
    raw = tiny_run()
    raw["optim"]["lrr"] = 0.1
    path = write_config(tmp_path, raw)
    script = (
        "import sys, ray; from hk_tune.cli import main; status = main(sys.argv[1:]); "
        "print('ray started' if ray.is_initialized() else 'no ray', file=sys.stderr); "
        "sys.exit(status)"
    )
    done = subprocess.run([sys.executable, "-c", script, "train", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"hk-tune: error: {path}: unknown key 'optim.lrr'; allowed: ['batch_size', 'epochs', "
        "'eval_batch_size', 'eval_every', 'grad_accum_steps', 'grad_clip', 'lr', 'max_steps', "
        "'precision', 'warmup_ratio', 'weight_decay']",
        "no ray",
    ]


def test_help_lists_train():
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0


def test_console_script_leaves_its_objects_to_the_exit(monkeypatch, capsys):
    """`hk-tune` (`cli.run`) returns main's status with the heap frozen, so the interpreter's
    last collection does not walk it (2 s after a search)."""
    import gc

    space = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"
    monkeypatch.setattr(sys, "argv", ["hk-tune", "show", str(space), "-n", "1"])
    try:
        assert cli.run() == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process keeps running
    assert "search 'quickstart'" in capsys.readouterr().out


def test_missing_config_file(tmp_path, capsys):
    assert cli.main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: cannot read the config" in capsys.readouterr().err


def test_ui_listens_on_loopback_unless_told(tmp_path, capsys):
    import inspect
    import socket

    from hk_tune.tracking import serve_ui

    assert cli.build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert inspect.signature(serve_ui).parameters["host"].default == "127.0.0.1"
    # Another address warns before anything starts; the port taken here makes serve_ui refuse
    # before it starts MLflow, so the test stays fast.
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        status = cli.main(["ui", "--host", "0.0.0.0", "--port", str(port),
                           "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"])
    assert status == 2
    warning, error = capsys.readouterr().err.splitlines()
    assert warning.startswith(f"hk-tune: warning: the MLflow UI listens on 0.0.0.0:{port} with "
                              "no login")
    assert f"cannot start the MLflow UI on 0.0.0.0:{port}" in error
