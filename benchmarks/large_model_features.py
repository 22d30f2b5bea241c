"""What the large-model training keys cost per optimizer step, as ratios measured side by side.

    python benchmarks/large_model_features.py [--device cpu|cuda] [--repeats 5] [--json]

LoRA (r=8, α=16, query/value) on the real MiniLM with HiddenKey (two passes, KL), a step of 16
sequences × 128 tokens through hk_tune's own `optimizer_step`, in four settings interleaved in a
shuffled order each round; the median over rounds as a ratio to fp32:

- `bf16`: `optim.precision: bf16` (autocast);
- `checkpointing`: `model.gradient_checkpointing: true` (each block recomputed in backward);
- `accumulate_2x8`: `optim.grad_accum_steps: 2` with batch 8, the same 16 rows per step.

On CUDA it also prints each setting's peak memory (`torch.cuda.max_memory_allocated`) as a
ratio to fp32's. What bf16 buys on a CPU depends on whether it has bf16 matrix instructions;
on a GPU it is the usual choice.
With --json the last line is one JSON object: {"ratios": {...}, "memory": {...}, ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

import torch

SETTINGS = ("fp32", "bf16", "checkpointing", "accumulate_2x8")


def build(device: str):
    from hk_tune.config.run import RunConfig
    from hk_tune.dropout import attach
    from hk_tune.train.loop import build_inputs
    from hk_tune.train.session import LocalSession

    cfg = RunConfig.from_dict({"model": "minilm", "dropout": "hiddenkey",
                               "data": {"source": "bundled:sentiment", "max_train_samples": 16}})
    _, _, _, _, model = build_inputs(cfg, LocalSession(cache=False))
    model.to(device)
    return model, attach(model, cfg.dropout)


def step_seconds(model, handle, setting: str, batch: dict, steps: int) -> float:
    from hk_tune.train.accumulation import optimizer_step
    from hk_tune.train.precision import Precision

    base = model.get_base_model()
    if setting == "checkpointing":
        base.activation_checkpointing_enable(
            activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        base.activation_checkpointing_disable()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5)
    precision = Precision.for_model("bf16" if setting == "bf16" else "fp32", model)
    half = {key: value[:8] for key, value in batch.items()}
    rest = {key: value[8:] for key, value in batch.items()}
    group = [half, rest] if setting == "accumulate_2x8" else [batch]
    model.train()
    times = []
    for _ in range(steps + 1):  # the first step warms up
        sync(batch)
        started = time.perf_counter()
        optimizer_step(model, group, handle, "classification", optimizer, precision, trainable,
                       1.0, 1, 1e-5)
        sync(batch)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def sync(batch: dict) -> None:
    if batch["input_ids"].is_cuda:
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting and round")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    torch.manual_seed(0)
    model, handle = build(args.device)
    vocab = model.get_base_model().config.vocab_size
    batch = {"input_ids": torch.randint(1000, vocab, (16, 128)),
             "attention_mask": torch.ones(16, 128, dtype=torch.long),
             "labels": torch.randint(0, 2, (16,))}
    batch = {key: value.to(args.device) for key, value in batch.items()}
    seconds = {setting: [] for setting in SETTINGS}
    memory = {}
    order = list(SETTINGS)
    for _ in range(args.repeats):
        random.shuffle(order)
        for setting in order:
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            seconds[setting].append(step_seconds(model, handle, setting, batch, args.steps))
            if args.device == "cuda":
                memory[setting] = torch.cuda.max_memory_allocated()
    medians = {setting: statistics.median(values) for setting, values in seconds.items()}
    ratios = {setting: medians[setting] / medians["fp32"] for setting in SETTINGS}
    memory_ratios = {setting: memory[setting] / memory["fp32"] for setting in memory}
    print(f"MiniLM + LoRA, HiddenKey, 16 × 128 tokens per step, {args.device}, median of "
          f"{args.repeats} rounds; ratio to fp32:", file=sys.stderr)
    for setting in SETTINGS:
        mem = f"  peak memory × {memory_ratios[setting]:.2f}" if memory_ratios else ""
        print(f"  {setting:15} × {ratios[setting]:.2f}{mem}", file=sys.stderr)
    if args.json:
        print(json.dumps({"device": args.device, "ratios": ratios, "memory": memory_ratios,
                          "median_s": medians, "repeats": args.repeats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
