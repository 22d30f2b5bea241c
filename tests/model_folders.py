"""Model folders that hk_tune must refuse unless the user opts in, made from a tiny saved model:
one whose config maps to its own Python code (`auto_map`), one with only pickle weights.
Importable from any test (tests/ is on sys.path), like tiny_configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# A BERT under a name transformers does not know, so only the folder's own code can load it.
MODELING_CODE = '''
from transformers import BertConfig, BertModel


class TinyRemoteConfig(BertConfig):
    model_type = "tiny_remote"


class TinyRemoteModel(BertModel):
    config_class = TinyRemoteConfig
'''


def remote_code_model(base: str | Path, folder: Path) -> Path:
    """A copy of the BERT folder `base` whose config.json has model_type `tiny_remote` and an
    `auto_map` pointing at `modeling_tiny_remote.py` in the folder."""
    shutil.copytree(base, folder)
    (folder / "modeling_tiny_remote.py").write_text(MODELING_CODE)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "tiny_remote"
    config["auto_map"] = {"AutoConfig": "modeling_tiny_remote.TinyRemoteConfig",
                          "AutoModel": "modeling_tiny_remote.TinyRemoteModel"}
    (folder / "config.json").write_text(json.dumps(config, indent=1))
    return folder


def pickle_only_model(base: str | Path, folder: Path) -> Path:
    """A copy of the model folder `base` whose weights are `pytorch_model.bin` (a torch pickle)
    instead of `model.safetensors`, as older hub repositories ship them."""
    import torch
    from safetensors.torch import load_file

    shutil.copytree(base, folder)
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()
    return folder
