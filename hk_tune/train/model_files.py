"""What hk_tune agrees to run or read from a model folder, checked before Ray starts: the
folder's own Python code only with `model.trust_remote_code: true`, weights only as safetensors
unless `model.allow_pickle_weights: true`, and a tokenizer that has a vocabulary that fits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from hk_tune.errors import ConfigError
from hk_tune.train.embedded import EMBEDDED_MODELS

if TYPE_CHECKING:
    from hk_tune.config.sections import ModelSettings

MODEL_FORMS = (f"a local model folder (config.json + model.safetensors), an embedded name "
               f"{sorted(EMBEDDED_MODELS)}, or a Hugging Face hub name (needs hub access or a "
               "cached copy)")

# Weight files in transformers' names, safest first. Safetensors holds tensors only; a .bin file
# is a pickle, which can run code when loaded, so it is read only when the user opts in.
SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def check_custom_code(folder: Path, settings: ModelSettings) -> None:
    """Refuses a local folder whose config or tokenizer maps to its own Python files
    (`auto_map`) for an architecture transformers does not implement, unless the user set
    `trust_remote_code: true`. transformers would refuse too, but without naming the key."""
    if settings.trust_remote_code:
        return
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    for name in ("config.json", "tokenizer_config.json"):
        file = folder / name
        if not file.is_file():
            continue
        try:
            raw = json.loads(file.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"model.name: {settings.name!r}: {name} is not valid JSON "
                              f"({error}); allowed: {MODEL_FORMS}") from None
        auto_map = raw.get("auto_map") if isinstance(raw, dict) else None
        if not auto_map:
            continue
        if name == "config.json":
            known = raw.get("model_type") in CONFIG_MAPPING
        else:
            known = _known_tokenizer(raw.get("tokenizer_class"))
        if not known:  # transformers' own class, when it has one, loads instead of the folder's
            shown = ", ".join(sorted(_class_names(auto_map)))
            raise ConfigError(custom_code_message(settings.name, f"{name} auto_map: {shown}"))


def _class_names(auto_map: object) -> set[str]:
    """The `module.Class` strings of an auto_map (tokenizers give [slow, fast] pairs)."""
    if isinstance(auto_map, str):
        return {auto_map}
    if isinstance(auto_map, dict):
        auto_map = list(auto_map.values())
    if not isinstance(auto_map, (list, tuple)):
        return set()  # null: no class for that slot
    return set().union(*(_class_names(v) for v in auto_map))


def _known_tokenizer(name: object) -> bool:
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

    return isinstance(name, str) and tokenizer_class_from_name(name) is not None


def custom_code_message(name: str, where: str) -> str:
    """The refusal of model `name`, whose code is named by `where`: the key and its values."""
    return (f"model.trust_remote_code: {name!r} needs its own Python code ({where}), which "
            "hk_tune runs only when asked; read that code, then set model.trust_remote_code: "
            "true (allowed: true, false; default false)")


def check_weights(folder: Path, settings: ModelSettings) -> str:
    """The weight file `load_model` will read from a local model folder.

    Raises:
        ConfigError: no weights, only pickle weights without `allow_pickle_weights: true`, or
            a safetensors file (or shard) that is cut short.
    """
    for name in SAFE_WEIGHTS:
        if (folder / name).is_file():
            shards = [name] if name.endswith(".safetensors") else sorted(set(
                _read_json(folder / name, settings.name).get("weight_map", {}).values()))
            for shard in shards:
                check_whole_safetensors(folder / shard, settings.name)
            return name
    pickled = [name for name in PICKLE_WEIGHTS if (folder / name).is_file()]
    if pickled and settings.allow_pickle_weights:
        return pickled[0]
    if pickled:
        raise ConfigError(
            f"model.allow_pickle_weights: {settings.name!r} has only pickle weights "
            f"({pickled[0]}), which can run code when loaded; convert them to safetensors "
            "(load the model and save_pretrained it), or set model.allow_pickle_weights: true "
            "to read them with torch's weights-only unpickler (allowed: true, false; default "
            "false)")
    raise ConfigError(f"model.name: {settings.name!r} has no weights; allowed files: "
                      f"{list(SAFE_WEIGHTS + PICKLE_WEIGHTS)}")


def check_whole_safetensors(path: Path, model: str) -> None:
    """Refuses a safetensors file that is missing, cut short (an interrupted copy or download)
    or not safetensors, from its header alone: the tensors it promises must fit in the file."""
    import struct

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"model.name: {model!r}: {path.name} {why}; allowed: a complete "
                           "safetensors file (copy or download it again)")

    try:
        with path.open("rb") as file:
            head = file.read(8)
            if len(head) < 8:
                raise refuse("is cut short before its header")
            (length,) = struct.unpack("<Q", head)
            if length > 100_000_000:
                raise refuse("has no safetensors header")
            header = json.loads(file.read(length))
    except OSError as error:
        raise refuse(f"cannot be read ({error.strerror or error})") from None
    except (ValueError, UnicodeDecodeError):
        raise refuse("has no safetensors header") from None
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    needed = 8 + length + max(ends, default=0)
    if path.stat().st_size < needed:
        raise refuse(f"is cut short ({path.stat().st_size:,} of {needed:,} bytes)")


def _read_json(path: Path, model: str) -> dict:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ConfigError(f"model.name: {model!r}: {path.name} is not valid JSON "
                          f"({str(error)[:80]})") from None
    return found if isinstance(found, dict) else {}


def check_tokenizer(tokenizer, config, settings: ModelSettings) -> None:
    """A tokenizer that fits the model. transformers builds one from the special tokens alone
    when a folder has no tokenizer files, and every word then becomes [UNK]: a run that trains
    on nothing, silently."""
    specials = set(tokenizer.all_special_ids)
    if len(tokenizer) <= len(specials):
        raise ConfigError(f"model.name: {settings.name!r} has no tokenizer (only the "
                          f"{len(specials)} special tokens load); allowed: a folder holding its "
                          "tokenizer files too (tokenizer.save_pretrained(folder))")
    vocab_size = getattr(config, "vocab_size", None)
    if isinstance(vocab_size, int) and len(tokenizer) > vocab_size:
        raise ConfigError(f"model.name: the tokenizer of {settings.name!r} has {len(tokenizer)} "
                          f"tokens but the model embeds {vocab_size}; allowed: a tokenizer of at "
                          "most vocab_size tokens, saved with the model")
