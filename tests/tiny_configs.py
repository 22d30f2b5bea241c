"""Tiny random-init model configs, importable from any test as `from tiny_configs import
tiny_config` (tests/ is on sys.path). A plain module rather than conftest.py, because several
conftest.py files share the module name `conftest` and only one of them wins an import."""

from __future__ import annotations


def tiny_config(architecture: str, vocab_size: int, pad_token_id: int, eos_token_id: int | None):
    """A 2-layer, 32-wide random-init config of `architecture`."""
    from transformers import AutoConfig, BertConfig, GPT2Config, LlamaConfig, RobertaConfig

    if architecture == "bert":
        return BertConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=256, pad_token_id=pad_token_id,
        )
    if architecture == "roberta":
        # RoBERTa offsets positions by pad_token_id + 1, hence the extra room.
        return RobertaConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=260, pad_token_id=pad_token_id,
        )
    if architecture == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=256,
            bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
        )
    if architecture == "xlm-roberta":
        return AutoConfig.for_model(
            "xlm-roberta", vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=2, intermediate_size=64, max_position_embeddings=260,
            pad_token_id=pad_token_id,
        )
    if architecture == "llama":
        return LlamaConfig(**_llama_shape(vocab_size, pad_token_id, eos_token_id))
    if architecture in ("mistral", "qwen2", "qwen3"):  # LLaMA-shaped families
        return AutoConfig.for_model(architecture,
                                    **_llama_shape(vocab_size, pad_token_id, eos_token_id))
    raise ValueError(f"unknown architecture {architecture!r}")


def _llama_shape(vocab_size: int, pad_token_id: int, eos_token_id: int | None) -> dict:
    return dict(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
        bos_token_id=eos_token_id, eos_token_id=eos_token_id, pad_token_id=pad_token_id,
    )
