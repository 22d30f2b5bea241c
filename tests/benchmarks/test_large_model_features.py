"""`benchmarks/large_model_features.py` on CPU: every setting runs through hk_tune's own
optimizer step on the real MiniLM and gets a ratio (the GPU run of it is a benchmark)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_measured_against_fp32(capsys):
    spec = importlib.util.spec_from_file_location(
        "large_model_features", ROOT / "benchmarks" / "large_model_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--repeats", "1", "--steps", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["ratios"]) == set(module.SETTINGS)
    assert result["ratios"]["fp32"] == 1.0
    assert all(value > 0 for value in result["median_s"].values())
    assert result["memory"] == {}  # peak memory is a CUDA measurement
