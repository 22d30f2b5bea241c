"""The prepared GPU check, run on the CPU with tiny models: every part runs and reports what it
must, and the contract and checkpointing parts hold here as they must on a GPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import gpu_check  # noqa: E402


def test_the_gpu_check_runs_on_the_cpu(capsys):
    assert gpu_check.main(["--device", "cpu", "--quick", "--repeats", "1", "--steps", "1",
                           "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    from hk_tune.dropout.pattern import PATTERNS
    from hk_tune.dropout.spec import POSITIONS, RESCALES

    rows = sum(len(PATTERNS) * len(RESCALES[position]) for position in POSITIONS)
    assert len(report["contract"]) == rows * 4  # two architectures, two dtypes
    assert all(not row["failed"] for row in report["contract"])
    # DropKey is an additive mask, so the fused kernel runs; DropAttention needs the weights.
    for pattern in PATTERNS:
        assert any("scaled_dot_product" in op for op in report["kernels"][f"attn_logits:{pattern}"])
        assert "aten::softmax" not in report["kernels"][f"attn_logits:{pattern}"]
        assert "aten::softmax" in report["kernels"][f"attn_weights:{pattern}"]
    assert set(report["step_time"]["ratio_to_baseline"]) == set(gpu_check.PRESETS_TIMED)
    assert report["step_time"]["memory_vs_minus"] is None  # peak GPU memory: CUDA only
    ckpt = report["checkpointing"]
    assert ckpt["loss_equal"] and ckpt["grad_max_rel_diff"] == 0.0  # the same masks recomputed
    loop = report["trial_loop"]
    assert loop["path"] == "run_loop" and len(loop["runs"]) == 3
    assert all(run["wall_s"] > run["training_s"] > 0 for run in loop["runs"])
    quantized = report["qlora"]  # bitsandbytes' CPU code stands in for its CUDA kernels
    assert quantized["loss_finite"] and quantized["footprint_ratio"] < 1
    assert quantized["memory_ratio"] is None
    assert report["goals_met"] is None  # the goals are for a GPU


def test_asking_for_cuda_without_it_is_refused(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gpu_check.main(["--device", "cuda"]) == 2
    assert "--device cpu" in capsys.readouterr().err
