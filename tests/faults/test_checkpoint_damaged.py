"""A damaged checkpoint folder: `hk-tune train` continuing the run refuses it with one line
naming the folder and the file (exit status 2), and never trains the run again from scratch.
Each kind of damage is checked against the loader in tests/train/test_loop.py; this is the
whole path, through a Ray Train worker and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hk_tune import cli

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.mark.slow
def test_train_refuses_a_truncated_adapter_with_one_line(tiny_run, tmp_path, capsys):
    raw = tiny_run("bert", "classification", name="damaged",
                   scaling={"num_workers": 1, "cpus_per_worker": 1})
    config = tmp_path / "damaged.yaml"
    config.write_text(yaml.safe_dump(raw))
    assert cli.main(["train", str(config)]) == 0
    run = Path(raw["storage_path"]) / "damaged"
    latest = run / "checkpoint_step0000004"
    adapter = latest / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])  # cut short, as by a full disk
    checkpoints = sorted(p.name for p in run.glob("checkpoint_*"))
    capsys.readouterr()

    assert cli.main(["train", str(config), "optim.max_steps=8"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"hk-tune: error: checkpoint {latest}: adapter_model.safetensors "
                              "is damaged ("), err[-1]
    assert "name=..." in err[-1]
    # Nothing was trained: no checkpoint was added or replaced.
    assert sorted(p.name for p in run.glob("checkpoint_*")) == checkpoints
