"""The sections of a run config: which model, LoRA adapter, data, optimisation, generation and
workers. Each is a frozen dataclass whose `__post_init__` checks ranges and choices; types are
checked where YAML becomes a section (`hk_tune.config.fields.section`). No torch, no data read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hk_tune.config import fields
from hk_tune.config.sources import SOURCE_FORMS
from hk_tune.errors import ConfigError
from hk_tune.tasks import TASKS

DTYPES = ("float32", "bfloat16", "float16")
# What the forward passes compute in (`hk_tune.train.precision`), apart from the weight dtype.
PRECISIONS = ("fp32", "bf16", "fp16")
# Base weights stored in 4 bits through bitsandbytes (QLoRA): `nf4` is QLoRA's NormalFloat,
# `fp4` a plain 4-bit float. Both with double quantization, as in the QLoRA paper.
QUANTIZATIONS = ("none", "nf4", "fp4")

# How much of a sequence-classification head trains beside LoRA. `full`: the whole head, as the
# LoRA paper's NLU code does (BERT's pooler and classifier; RoBERTa's dense + out_proj; the
# `score` layer of decoders); `last_linear`: only the head's last linear layer.
HEADS = ("full", "last_linear")

@dataclass(frozen=True)
class ModelSettings:
    """Which pretrained model to load.

    Attributes:
        name: a local folder, a hub name, or an embedded name (`minilm`, `embedded:minilm`).
        trust_remote_code: run code from the model's repository; off unless set explicitly.
        revision: hub revision (branch, tag or commit); None for the default branch.
        dtype: weight dtype; float32 on CPU, bfloat16 is the usual choice on GPUs.
        allow_pickle_weights: load a model that has only pickle weights (pytorch_model.bin),
            through torch's weights-only unpickler; off, so only safetensors are read.
        gradient_checkpointing: keep only each block's input during the forward pass and
            recompute the block in backward, trading compute for activation memory. The
            recomputation restores the random state first, so it draws the same dropout masks.
        quantization: the frozen base weights in 4 bits (see QUANTIZATIONS), computed in
            `dtype`; LoRA and the task head stay in full precision. CUDA only: it needs a GPU
            per worker and the `qlora` extra (bitsandbytes).
    """

    name: str = "minilm"
    trust_remote_code: bool = False
    revision: str | None = None
    dtype: str = "float32"
    allow_pickle_weights: bool = False
    gradient_checkpointing: bool = False
    quantization: str = "none"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype: {self.dtype!r} is not allowed; allowed: {list(DTYPES)}")
        fields.choice(self.quantization, QUANTIZATIONS, "quantization")


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter (the paper: r=8, alpha=16 on query/value).

    Attributes:
        rank: r, the rank of the update.
        alpha: the update is scaled by alpha / rank.
        target_modules: module names to adapt; None picks the architecture's query/value default.
        dropout: peft's `lora_dropout`; only kept by dropout specs that keep stock dropout
            (`hf_default`), since every other spec is the run's single source of dropout.
        head: how much of a classification or regression head trains (see HEADS); the
            pretrained LM head of causal LM stays frozen either way.
    """

    rank: int = 8
    alpha: float = 16.0
    target_modules: tuple[str, ...] | None = None
    dropout: float = 0.0
    head: str = "full"

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"head: {self.head!r} is not allowed; allowed: {list(HEADS)}")
        if self.rank < 1:
            raise ConfigError(f"rank: {self.rank!r} is not allowed; use an integer >= 1")
        if self.alpha <= 0:
            raise ConfigError(f"alpha: {self.alpha!r} is not allowed; use a number > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: {self.dropout!r} is outside [0, 1)")
        if self.target_modules is not None:
            if not self.target_modules:
                raise ConfigError("target_modules: an empty list adapts nothing; omit it instead")
            object.__setattr__(self, "target_modules", tuple(self.target_modules))


@dataclass(frozen=True)
class DataConfig:
    """What to train and evaluate on (the `data:` section of a run config).

    Attributes:
        source: "bundled:<name>", "glue:<task>", "e2e_nlg", a local .csv/.tsv/.json/.jsonl/.parquet
            file (optionally .gz; a "{split}" in the path is replaced by the split names), or a
            `datasets.save_to_disk` folder.
        task: one of TASKS; bundled and hub sources define it, local sources must give it.
        text, text_pair, label: source columns for classification and regression (local only).
        prompt, target: source columns for causal_lm (local only).
        label_names: class names in id order, for string labels or to name integer ids; when
            None, the sorted unique string labels (or 0..max id) of train and eval together.
        train_split, eval_split: split names; a single file or Dataset folder has no splits, so
            its eval set is a holdout of eval_fraction of its rows instead.
        eval_fraction: size of that holdout.
        max_train_samples, max_eval_samples: a seeded random subset, for quick runs.
        max_length: tokens per example after truncation.
        seed: drives the holdout and the subsets. Keep it fixed across the trials of a search so
            every trial is scored on the same examples; the training seed is a separate knob.
    """

    source: str = "bundled:snli"
    task: str | None = None
    text: str = "text"
    text_pair: str | None = None
    label: str = "label"
    prompt: str = "prompt"
    target: str = "target"
    label_names: tuple[str, ...] | None = None
    train_split: str = "train"
    eval_split: str = "validation"
    eval_fraction: float = 0.1
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_length: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.label_names, list):  # YAML gives lists; keep the value hashable
            object.__setattr__(self, "label_names", tuple(self.label_names))
        if not self.source:
            raise ConfigError(f"source: empty; allowed: {SOURCE_FORMS}")
        if self.task is not None:
            fields.choice(self.task, TASKS, "task")
        names = self.label_names
        if names is not None and (
            not names or len(set(names)) != len(names) or not all(isinstance(n, str) for n in names)
        ):
            raise ConfigError(f"label_names: {names!r}; must be distinct strings, at least one")
        if not 0 < self.eval_fraction < 1:
            raise ConfigError(f"eval_fraction: {self.eval_fraction!r}; allowed: 0 < x < 1")
        for key in ("max_train_samples", "max_eval_samples"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"{key}: {getattr(self, key)!r}; allowed: null or >= 1")
        if self.max_length < 2:
            raise ConfigError(f"max_length: {self.max_length!r}; allowed: >= 2")
        fields.seed(self.seed, "seed")

    @classmethod
    def from_dict(cls, d: Any, where: str = "config") -> DataConfig:
        """Builds the section from a plain mapping (a YAML section, a Ray trial's dict).

        Raises:
            ConfigError: naming `where` and the key: unknown, of the wrong type, out of range.
        """
        return fields.section(cls, d, where, "data")

    def to_dict(self) -> dict[str, Any]:
        """Plain values (label_names as a list) that `from_dict` reads back."""
        d = asdict(self)
        if d["label_names"] is not None:
            d["label_names"] = list(d["label_names"])
        return d


@dataclass(frozen=True)
class OptimSettings:
    """Optimisation: AdamW with a linear schedule and warmup (the paper's setup).

    Attributes:
        lr: peak learning rate; LoRA takes much larger rates than full finetuning.
        weight_decay: AdamW's decoupled weight decay (the paper: 0.1).
        warmup_ratio: share of the step budget spent warming up linearly (the paper: 0.06).
        batch_size: examples per step on each worker.
        eval_batch_size: examples per evaluation batch; None uses batch_size.
        max_steps: the budget in optimizer steps; exclusive with epochs.
        epochs: the budget in passes over the training set (may be fractional); when neither
            budget is set, one epoch.
        eval_every: evaluate (and checkpoint) every this many steps; None evaluates at the end of
            every epoch. The last step is always evaluated.
        grad_clip: clip the gradient norm to this; None leaves gradients as they are.
        grad_accum_steps: micro-batches of batch_size per optimizer step; k of them update the
            weights as one batch of k * batch_size does (per worker). Steps, epochs and
            eval_every count optimizer steps.
        precision: what the forward passes compute in (see PRECISIONS): fp32, or bf16 / fp16
            under autocast, with the trained weights and the optimizer in fp32 either way.
    """

    lr: float = 5e-4
    weight_decay: float = 0.1
    warmup_ratio: float = 0.06
    batch_size: int = 16
    eval_batch_size: int | None = None
    max_steps: int | None = None
    epochs: float | None = None
    eval_every: int | None = None
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError("max_steps, epochs: set one budget, not both")
        fields.check_positive(self, "lr", "batch_size", "eval_batch_size", "max_steps", "epochs",
                              "eval_every", "grad_clip", "grad_accum_steps")
        fields.choice(self.precision, PRECISIONS, "precision")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"warmup_ratio: {self.warmup_ratio!r} is outside [0, 1)")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay: {self.weight_decay!r} is negative")


@dataclass(frozen=True)
class GenerationSettings:
    """How causal-LM evaluation generates text (BLEU / ROUGE-L against the targets).

    Attributes:
        num_beams: 1 is greedy decoding; more is beam search.
        max_new_tokens: longest continuation generated per prompt.
    """

    num_beams: int = 1
    max_new_tokens: int = 32

    def __post_init__(self) -> None:
        fields.check_positive(self, "num_beams", "max_new_tokens")


@dataclass(frozen=True)
class ScalingSettings:
    """Ray Train workers. One CPU per worker keeps a 2-core laptop from deadlocking under Tune.

    Attributes:
        num_workers: data-parallel workers (DDP); 0 runs in this process (Ray Train local mode).
        use_gpu: one GPU per worker (or gpus_per_worker).
        cpus_per_worker: CPUs Ray reserves for each worker.
        gpus_per_worker: GPUs per worker when use_gpu; None means 1.
    """

    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ConfigError(f"num_workers: {self.num_workers!r} is negative")
        fields.check_positive(self, "cpus_per_worker", "gpus_per_worker")
        if self.gpus_per_worker is not None and not self.use_gpu:
            raise ConfigError("gpus_per_worker: set use_gpu: true as well")
