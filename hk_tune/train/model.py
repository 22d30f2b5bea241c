"""The model a run finetunes: any transformers model by path or hub name, plus its LoRA adapter.

The task picks the Auto class (sequence classification, regression as one-label classification,
causal LM); the architecture picks the LoRA targets when the config names none. Nothing here knows
about dropout: `hk_tune.dropout.attach` (in attachment.py) is applied to what `build_model` returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hk_tune.config.sections import LoraSettings, ModelSettings
from hk_tune.dropout.architectures import ARCHITECTURES
from hk_tune.errors import ConfigError
from hk_tune.tasks import TASKS
from hk_tune.train.data import ensure_pad_token
from hk_tune.train.embedded import resolve_model_path
from hk_tune.train.model_files import (
    MODEL_FORMS,
    check_custom_code,
    check_tokenizer,
    check_weights,
    custom_code_message,
)

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def check_model(settings: ModelSettings, lora: LoraSettings,
                max_length: int | None = None) -> str:
    """Checks, without loading weights, that the model exists, runs no code the user did not
    allow, has weights hk_tune will read, has LoRA targets, and supports gradient checkpointing
    when it is asked for.

    Returns:
        The model's `model_type` (e.g. "bert").

    Raises:
        ConfigError: a missing folder or config, custom code without `trust_remote_code: true`,
            only pickle weights without `allow_pickle_weights: true`, no LoRA target for the
            architecture, LoRA targets the model does not have, `max_length` beyond its
            positions, gradient checkpointing asked of an architecture without it, or 4-bit
            weights without bitsandbytes.
    """
    from transformers import AutoConfig

    path = resolve_model_path(settings.name)
    folder = Path(path).expanduser()
    looks_local = path.startswith((".", "/", "~")) or Path(path).exists()
    if looks_local:
        if not folder.is_dir():
            raise ConfigError(f"model.name: {settings.name!r} is not a folder; allowed: "
                              f"{MODEL_FORMS}")
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model.name: {settings.name!r} has no config.json; allowed: "
                              f"{MODEL_FORMS}")
        check_custom_code(folder, settings)
    try:
        config = AutoConfig.from_pretrained(
            path, trust_remote_code=settings.trust_remote_code, revision=settings.revision
        )
    except (OSError, ValueError) as error:
        if "trust_remote_code" in str(error) or "custom code" in str(error):
            raise ConfigError(custom_code_message(settings.name, "its repository")) from None
        first_line = str(error).strip().splitlines()[0].rstrip(".")
        raise ConfigError(f"model.name: cannot load {settings.name!r}: {first_line}; allowed: "
                          f"{MODEL_FORMS}") from None
    if looks_local:
        check_weights(folder, settings)
    if settings.quantization != "none":
        check_bitsandbytes(settings)
    check_tokenizer(load_tokenizer(settings), config, settings)
    target_modules(config.model_type, lora)
    if max_length is not None:
        check_positions(config, settings.name, max_length)
    from transformers import MODEL_MAPPING

    if type(config) in MODEL_MAPPING:  # else custom code: checked when it loads
        if lora.target_modules is not None:
            check_targets(config, settings.name, lora.target_modules)
        if settings.gradient_checkpointing:
            check_gradient_checkpointing(MODEL_MAPPING[type(config)])
    return config.model_type


# Task heads the model gets after the check's base-model tree (sequence classification, causal LM).
_HEAD_MODULES = ("classifier", "score", "lm_head", "out_proj", "dense")


def check_positions(config, name: str, max_length: int) -> None:
    """Refuses a `data.max_length` beyond the positions the model has embeddings for: the
    first long batch would fail inside the embedding."""
    positions = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None)
    if positions is None:
        return
    if config.model_type in ("roberta", "xlm-roberta"):  # positions start after the padding id
        positions -= (config.pad_token_id or 0) + 1
    if max_length > positions:
        raise ConfigError(f"data.max_length: {max_length} is beyond the {positions} positions "
                          f"{name!r} has; allowed: at most {positions}")


def check_bitsandbytes(settings: ModelSettings) -> None:
    """Refuses 4-bit base weights where bitsandbytes (or accelerate, which loads them) is not
    installed."""
    import importlib.util

    for package in ("bitsandbytes", "accelerate"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"model.quantization: {settings.quantization!r} needs {package}, "
                              "which is not installed: pip install 'hk_tune[qlora]'; allowed "
                              "without it: 'none'")


def quantization_config(settings: ModelSettings):
    """transformers' bitsandbytes config for `settings.quantization`, or None for "none".

    The 4-bit weights are dequantized block by block into `settings.dtype` for each matmul.
    """
    if settings.quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=settings.quantization,
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, settings.dtype),
    )


def check_targets(config, name: str, targets: Sequence[str]) -> None:
    """Refuses LoRA target modules the model does not have, from its module tree built on the
    meta device (no weights, no memory). A task head (classifier, score) is added later, so
    its names pass too."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    names = [module for module, _ in model.named_modules() if module]
    leaves = {module.rsplit(".", 1)[-1] for module in names} | set(_HEAD_MODULES)
    for target in targets:
        if target not in leaves and not any(module.endswith(f".{target}") for module in names):
            linear = sorted({module.rsplit(".", 1)[-1] for module, layer in model.named_modules()
                             if isinstance(layer, torch.nn.Linear)})
            raise ConfigError(f"lora.target_modules: {name!r} has no module {target!r}; "
                              f"allowed: its linear layers {linear}")


def target_modules(model_type: str, lora: LoraSettings) -> list[str]:
    """The module names LoRA adapts: the config's, else the paper's query/value for the
    architecture, else peft's own default for it.

    Raises:
        ConfigError: no default is known for `model_type` and the config names none.
    """
    if lora.target_modules is not None:
        return list(lora.target_modules)
    if model_type in ARCHITECTURES:
        return list(ARCHITECTURES[model_type].lora_targets)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    if model_type in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
    raise ConfigError(
        f"lora.target_modules: no default for architecture {model_type!r}; "
        f"name the attention projections, e.g. target_modules: [q_proj, v_proj]"
    )


def load_tokenizer(settings: ModelSettings) -> PreTrainedTokenizerBase:
    """Loads the model's tokenizer and makes sure it can pad.

    Decoder-only tokenizers (GPT-2, LLaMA) often have no pad token; the end-of-sequence token is
    used instead, which is safe because padding is masked out of attention and loss.
    """
    from transformers import AutoTokenizer


    try:
        tokenizer = AutoTokenizer.from_pretrained(
            resolve_model_path(settings.name),
            trust_remote_code=settings.trust_remote_code,
            revision=settings.revision,
        )
    except (OSError, ValueError) as error:
        if "trust_remote_code" in str(error) or "custom code" in str(error):
            raise ConfigError(custom_code_message(settings.name, "its tokenizer")) from None
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(".")
        raise ConfigError(f"model.name: cannot load the tokenizer of {settings.name!r}: "
                          f"{first_line}; allowed: {MODEL_FORMS}") from None
    ensure_pad_token(tokenizer)
    return tokenizer


def load_model(
    settings: ModelSettings, task: str, num_labels: int, pad_token_id: int,
    new_keys: bool = False, device: str = "cpu",
) -> PreTrainedModel | tuple[PreTrainedModel, list[str]]:
    """Loads the pretrained model with the head `task` needs.

    Args:
        settings: which model.
        task: "classification", "regression" or "causal_lm".
        num_labels: classes for classification (ignored otherwise).
        pad_token_id: the tokenizer's pad id; sequence classification on decoder-only models
            finds each row's last token through it.
        new_keys: also return the names of the weights the checkpoint did not hold (the new
            task head), which a cached copy draws afresh per run.
        device: where 4-bit weights are loaded, since bitsandbytes quantizes them as they
            reach it; other models load on the CPU and the session moves them.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification


    kwargs: dict[str, Any] = {
        "trust_remote_code": settings.trust_remote_code,
        "revision": settings.revision,
        "dtype": getattr(torch, settings.dtype),
        "pad_token_id": pad_token_id,
        # True: transformers reads model.safetensors only and refuses a pickle-only model (a hub
        # repository included, which `check_model` cannot see without downloading). None, the
        # opt-in, prefers safetensors and falls back to .bin under torch's weights-only loader.
        "use_safetensors": None if settings.allow_pickle_weights else True,
        "weights_only": True,
    }
    quantization = quantization_config(settings)
    if quantization is not None:
        kwargs.update(quantization_config=quantization, device_map={"": device})
    path = resolve_model_path(settings.name)
    if new_keys:
        kwargs["output_loading_info"] = True
    if task == "causal_lm":
        auto = AutoModelForCausalLM
    elif task == "regression":
        auto = AutoModelForSequenceClassification
        kwargs.update(num_labels=1, problem_type="regression")
    elif task == "classification":
        auto = AutoModelForSequenceClassification
        kwargs.update(num_labels=num_labels, problem_type="single_label_classification")
    else:
        raise ConfigError(f"task: {task!r} is not allowed; allowed: {list(TASKS)}")
    try:
        return _loaded(auto.from_pretrained(path, **kwargs))
    except OSError as error:
        if "safetensors" not in str(error) or settings.allow_pickle_weights:
            raise
        # A hub repository with pickle weights only: say which key opts in.
        raise ConfigError(f"model.allow_pickle_weights: {settings.name!r} has no safetensors "
                          "weights; set model.allow_pickle_weights: true to read its .bin "
                          "weights with torch's weights-only unpickler (allowed: true, false; "
                          "default false)") from None


def _loaded(loaded):
    """The model, or (model, missing keys) when `from_pretrained` gave its loading info."""
    if isinstance(loaded, tuple):
        model, info = loaded
        return model, list(info.get("missing_keys", []))
    return loaded


def add_lora(model: PreTrainedModel, lora: LoraSettings, task: str) -> PeftModel:
    """Wraps `model` with a LoRA adapter; only the adapter and the task head train.

    Sequence-classification heads train and are saved with the adapter (peft's
    `modules_to_save`): with `head: full` the whole head, including BERT's pooler (pretrained,
    yet part of the head the classifier reads); with `head: last_linear` only the head's last
    linear layer. Causal LM keeps the pretrained LM head frozen.
    """
    from peft import LoraConfig, TaskType, get_peft_model

    model_type = model.config.model_type
    family = ARCHITECTURES.get(model_type)
    pooler = [name for name, _ in model.named_modules() if name.endswith(".pooler")]
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM if task == "causal_lm" else TaskType.SEQ_CLS,
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=target_modules(model_type, lora),
        # peft adds the classifier / score layer itself for sequence classification.
        modules_to_save=["pooler"] if pooler and lora.head == "full" and task != "causal_lm"
        else None,
        # Conv1D (GPT-2) stores weights transposed; peft would fix this with a warning.
        fan_in_fan_out=family is not None and family.transposed_weights,
    )
    peft_model = get_peft_model(model, config)
    if lora.head == "last_linear" and task != "causal_lm":
        _freeze_all_but_last_linear(peft_model)
    return peft_model


def check_gradient_checkpointing(model_class: type) -> None:
    """Refuses `model.gradient_checkpointing: true` for an architecture without it. Every model
    class of an architecture (base, classification, causal LM) shares the flag."""
    if not getattr(model_class, "supports_gradient_checkpointing", False):
        raise ConfigError(f"model.gradient_checkpointing: {model_class.__name__} does not "
                          "support it; allowed: false")


def enable_gradient_checkpointing(peft_model: PeftModel) -> None:
    """Recomputes each transformer block in backward instead of keeping its activations.

    torch's non-reentrant checkpoint: it needs no input that requires grad (the base model is
    frozen), and it restores the random state before recomputing, so the recomputed forward
    draws the same dropout masks as the original (tests/train/test_large_models.py checks it).

    Raises:
        ConfigError: the architecture has no gradient checkpointing in transformers.
    """
    base = peft_model.get_base_model()
    check_gradient_checkpointing(type(base))
    base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if getattr(base.config, "use_cache", False):
        base.config.use_cache = False  # a cache is useless while training and clashes with it


def _freeze_all_but_last_linear(peft_model: PeftModel) -> None:
    """In the trained copy of each saved head module, only the last `nn.Linear` keeps training
    (RoBERTa's head is dense -> tanh -> out_proj; BERT's classifier is one linear layer)."""
    from peft.utils import ModulesToSaveWrapper
    from torch import nn

    for wrapper in peft_model.modules():
        if not isinstance(wrapper, ModulesToSaveWrapper):
            continue
        for copy in wrapper.modules_to_save.values():
            linears = [m for m in copy.modules() if isinstance(m, nn.Linear)]
            keep = {id(p) for p in linears[-1].parameters()} if linears else set()
            for param in copy.parameters():
                param.requires_grad_(id(param) in keep)


def trainable_counts(peft_model: PeftModel) -> dict[str, int]:
    """Trainable parameters of the LoRA adapter and of the task head, counted separately."""
    counts = {"lora": 0, "head": 0}
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            counts["lora" if "lora_" in name else "head"] += param.numel()
    return counts


def build_model(
    settings: ModelSettings, lora: LoraSettings, task: str, num_labels: int, pad_token_id: int
) -> PeftModel:
    """Loads the model for `task` and adds the LoRA adapter (see `load_model`, `add_lora`)."""
    return add_lora(load_model(settings, task, num_labels, pad_token_id), lora, task)
