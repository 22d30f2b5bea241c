"""Small files that would exhaust time or memory are refused quickly, in one line naming the
file: alias bombs, deep nesting, a FIFO, a device, a huge file; a plain config still loads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from hk_tune.config.files import MAX_BYTES, apply_overrides, read_yaml
from hk_tune.config.space_file import load_space
from hk_tune.errors import ConfigError


def bomb(levels: int = 20) -> str:
    """A 'billion laughs' document: each level is a list of ten aliases of the one before."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"fixed: {{optim.lr: *a{levels - 1}}}")
    return "\n".join(lines) + "\n"


def refused_quickly(path: Path, match: str, seconds: float = 5.0) -> str:
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=match) as caught:
        read_yaml(path, "config")
    assert time.perf_counter() - started < seconds
    message = str(caught.value)
    assert str(path) in message and "\n" not in message and len(message) < 400
    return message


def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb())
    assert path.stat().st_size < 4000
    refused_quickly(path, "aliases")
    with pytest.raises(ConfigError, match="aliases"):  # and through the space loader's path
        load_space(path)


def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    refused_quickly(path, "nested more than")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    done: list[str] = []
    thread = threading.Thread(target=lambda: done.append(refused_quickly(path, "regular file")),
                              daemon=True)
    thread.start()
    thread.join(10)
    assert done, "reading a FIFO blocked"


def test_a_device_and_a_folder_are_refused(tmp_path):
    refused_quickly(Path("/dev/zero"), "regular file")
    refused_quickly(tmp_path, "regular file")


def test_a_huge_file_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * (MAX_BYTES + 10) + "\n")
    refused_quickly(path, "bytes")


def test_an_override_bomb_is_refused(tmp_path):
    levels = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    flow = "{" + ", ".join(levels) + "}"  # 10^8 values once expanded
    with pytest.raises(ConfigError, match="aliases are expanded"):
        apply_overrides({}, [f"optim.lr={flow}"], "cli")


def test_a_plain_config_with_a_few_aliases_still_loads(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &lr 0.001\noptim: {lr: *lr, batch_size: 8}\n")
    assert read_yaml(path, "config")["optim"] == {"lr": 0.001, "batch_size": 8}
