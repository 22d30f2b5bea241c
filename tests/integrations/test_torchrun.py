"""`DropoutTrainer` under `torchrun --nproc_per_node 2` (the Trainer's own DDP, gloo on CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_two_torchrun_processes_train_one_model_with_hiddenkey(tmp_path, tiny_models):
    worker = Path(__file__).with_name("torchrun_worker.py")
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(worker), tiny_models["bert"], str(tmp_path)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["world"] == 2 and result["ranks_agree"] and result["trained"]
    assert len(result["consistency"]) == 3 and all(c > 0 for c in result["consistency"])
