"""Where things live in each model family: the one table that the dropout attachment and the
LoRA setup both read (docs/design.md 2.7). Plain data; no torch.

A family is supported when its attention goes through transformers' attention interface and its
blocks, attention module and FFN output projection can be named here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Architecture:
    """Paths relative to a model family's backbone and block, and its LoRA default.

    Attributes:
        layers: backbone -> the ModuleList of blocks.
        attention: block -> the module handed to the attention interface.
        ffn_output: block -> the FFN output projection, before the residual add.
        decoder: decoder-only; the paper's rule drops in the latter half of the layers.
        lora_targets: the paper's placement, LoRA on the query and value projections (Wang et
            al. 2024, Sec. 3; Hu et al. 2021). GPT-2 fuses q, k and v into one `c_attn`.
        transposed_weights: the projections store their weights as (in, out), as GPT-2's
            Conv1D does; LoRA must be told (peft's `fan_in_fan_out`).
    """

    layers: str
    attention: str
    ffn_output: str
    decoder: bool
    lora_targets: tuple[str, ...]
    transposed_weights: bool = False


_ENCODER = Architecture("encoder.layer", "attention.self", "output.dense", decoder=False,
                        lora_targets=("query", "value"))
_LLAMA = Architecture("layers", "self_attn", "mlp.down_proj", decoder=True,
                      lora_targets=("q_proj", "v_proj"))
ARCHITECTURES: dict[str, Architecture] = {
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "xlm-roberta": _ENCODER,
    "gpt2": Architecture("h", "attn", "mlp.c_proj", decoder=True, lora_targets=("c_attn",),
                         transposed_weights=True),
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
}
