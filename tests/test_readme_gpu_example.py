"""The README's LLaMA-class GPU example is a valid space (its fixed keys and resources, with a
search added) whose trials run in the reused trial actor on one GPU each."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hk_tune.config.space_file import load_space
from hk_tune.search.executor import choose_executor, trial_resources

README = Path(__file__).parents[1] / "README.md"


def gpu_example() -> dict:
    section = README.read_text().split("### On GPUs", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the On GPUs section has one YAML example"
    return yaml.safe_load(blocks[0])


def test_the_readme_gpu_example_is_a_valid_space(tmp_path):
    raw = gpu_example()
    raw["search"] = {"dropout.consistency.weight": {"type": "grid", "values": [0.1, 1.0]}}
    path = tmp_path / "llama.yaml"
    path.write_text(yaml.safe_dump(raw))
    space = load_space(path)
    run = space.base
    assert (run.model.dtype, run.model.gradient_checkpointing) == ("bfloat16", True)
    assert (run.optim.precision, run.optim.grad_accum_steps) == ("bf16", 8)
    assert choose_executor(space) == "inprocess"
    assert trial_resources(space) == {"cpu": 8.0, "gpu": 1.0}
