"""The GPU check: what hk_tune does on CUDA, measured in one run, without Ray, MLflow or Optuna.

    python benchmarks/gpu_check.py --device cuda [--json]        # on a GPU machine
    python benchmarks/gpu_check.py --device cpu --quick [--json]  # development and CI

Six parts, each printed as a table:

1. contract: every (position, pattern, rescale) row of the framework on a LLaMA- and a
   BERT-shaped model, in fp32 and bf16 autocast: eval mode and rate 0 give the unpatched
   logits exactly, rate > 0 changes them and stays finite, the LoRA weights get finite gradients.
2. kernels: which attention op each position × pattern runs (the fused
   `scaled_dot_product_attention` kernels, or the explicit softmax path), read from the profiler.
3. step time: a training step of each preset on a MiniLM-shaped BERT (6 layers, 384 wide, batch
   16 × 128) in bf16 autocast, presets interleaved, as a ratio to `baseline`; and peak memory
   (`torch.cuda.max_memory_allocated`) of HiddenKey against HiddenKey⁻.
4. checkpointing: a SmolLM2-135M-shaped LLaMA (30 layers, 576 wide) with HiddenKey in bf16:
   losses and LoRA gradients with and without gradient checkpointing, step time and peak
   memory as ratios.
5. trial loop: three runs of `run_loop` one after another in one process, as a reused trial
   actor runs them (`LocalSession` on the device): each run's wall time, the time of its steps
   and evaluation, and the memory still allocated after it.
6. qlora: the SmolLM2-shaped decoder loaded through hk_tune's loader with bf16 base weights and
   with 4-bit NF4 ones (`model.quantization: nf4`), HiddenKey in bf16: the weights' footprint,
   step time and peak memory as ratios, and finite losses. Skipped without bitsandbytes.

The models are random-init in the real models' shapes, so the check needs no weights (step
time and memory do not depend on the weights' values). `--quick` shrinks every model and batch
(for the CPU test). Goals (issue 18), checked on CUDA only: single-position presets <= 1.10x
baseline, HiddenKey <= 1.55x HiddenKey⁻ in step time and <= 1.05x in peak memory, a reused-
actor trial's overhead < 1 s. With --json the last line is one JSON object of every part.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SINGLE = [f"{method}_{pattern}" for method in ("dropkey", "dropattention", "hiddencut")
          for pattern in ("element", "column", "span")]
PRESETS_TIMED = ["baseline", *SINGLE, "hiddenkey_minus", "hiddenkey"]
GOALS = {"single_vs_baseline": 1.10, "hiddenkey_vs_minus": 1.55, "memory_vs_minus": 1.05,
         "trial_overhead_s": 1.0}
# Six positive words first, five negative ones last.
WORDS = ["the", "movie", "was", "great", "wonderful", "actors", "and", "a", "story", "i",
         "loved", "it", "food", "terrible", "slow", "boring", "hated"]


def shapes(quick: bool) -> dict[str, dict]:
    """Model configs (kwargs) and batch sizes: the real models' shapes, or tiny ones."""
    if quick:
        bert = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                    intermediate_size=128)
        llama = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, intermediate_size=128)
        return {"bert": bert, "llama": llama, "batch": {"size": 4, "length": 32}}
    bert = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                intermediate_size=1536)  # all-MiniLM-L6-v2
    llama = dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, intermediate_size=1536, tie_word_embeddings=True,
                 rope_theta=100000.0)  # SmolLM2-135M
    return {"bert": bert, "llama": llama, "batch": {"size": 16, "length": 128}}


def lora_model(arch: str, dims: dict, device: str, vocab: int = 30522):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(0)
    if arch == "bert":
        model = BertForSequenceClassification(BertConfig(vocab_size=vocab, num_labels=2, **dims))
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"],
                          task_type=TaskType.SEQ_CLS)
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=49152 if vocab == 30522 else vocab,
                                             max_position_embeddings=2048, **dims))
        lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                          task_type=TaskType.CAUSAL_LM)
    return get_peft_model(model, lora).to(device)


def batch_for(model, size: int, length: int, device: str) -> tuple[dict, str]:
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, vocab, (size, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[::4, length * 3 // 4:] = 0  # some padding, as real batches have
    causal = model.config.model_type == "llama"
    labels = (ids.masked_fill(mask == 0, -100) if causal
              else torch.randint(0, 2, (size,), generator=generator))
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    return {k: v.to(device) for k, v in batch.items()}, "causal_lm" if causal else "classification"


def autocast(device: str, dtype: str):
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=torch.bfloat16)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward(model, batch: dict, seed: int):
    torch.manual_seed(seed)
    return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


def contract(device: str, dims: dict) -> list[dict]:
    """Every row of the framework's contract (docs/design.md 2.6) on this device, both dtypes."""
    from hk_tune.dropout import DropoutSpec, PositionSpec, attach, compute_loss
    from hk_tune.dropout.pattern import PATTERNS
    from hk_tune.dropout.spec import POSITIONS, RESCALES

    rows = []
    for arch, dtype in itertools.product(("llama", "bert"), ("fp32", "bf16")):
        base = lora_model(arch, dims[arch], device, vocab=512)
        batch, task = batch_for(base, 4, 32, device)
        for position in POSITIONS:
            for pattern, rescale in itertools.product(PATTERNS, RESCALES[position]):
                model = copy.deepcopy(base)
                failed = []
                with autocast(device, dtype):
                    model.eval()
                    reference = forward(model, batch, 0)
                    spec = DropoutSpec(**{position: PositionSpec(pattern, 0.3, rescale)})
                    zero = DropoutSpec(**{position: PositionSpec(pattern, 0.0, rescale)})
                    handle = attach(model, spec)
                    if not torch.equal(forward(model, batch, 0), reference):
                        failed.append("eval differs")
                    handle.remove()
                    handle = attach(model, zero)
                    model.train()
                    if not torch.equal(forward(model, batch, 0), reference):
                        failed.append("rate 0 differs")
                    handle.remove()
                    handle = attach(model, spec)
                    dropped = forward(model, batch, 2)
                    if not torch.isfinite(dropped).all():
                        failed.append("not finite")
                    pooled = arch == "bert" and position == "output"  # one pooled unit
                    if torch.equal(dropped, reference) and not pooled:
                        failed.append("nothing dropped")
                    loss = compute_loss(model, batch, handle, task).loss
                loss.backward()
                grads = [p.grad for p in model.parameters() if p.requires_grad]
                if not all(g is not None and torch.isfinite(g).all() for g in grads):
                    failed.append("LoRA gradient missing or not finite")
                handle.remove()
                rows.append({"arch": arch, "dtype": dtype, "row": f"{position}:{pattern}:"
                             f"{rescale}", "failed": failed})
    return rows


def kernels(device: str, dims: dict) -> dict[str, list[str]]:
    """Position × pattern (and no dropout) -> the attention ops one bf16 training forward of
    the LLaMA-shaped model runs."""
    from hk_tune.dropout import DropoutSpec, PositionSpec, attach
    from hk_tune.dropout.pattern import PATTERNS

    model = lora_model("llama", dims["llama"], device, vocab=512)
    batch, _ = batch_for(model, 4, 32, device)
    model.train()
    found = {}
    cases = [("none", None)] + [(f"{position}:{pattern}", position) for position in
                                ("attn_logits", "attn_weights") for pattern in PATTERNS]
    for name, position in cases:
        pattern = name.split(":")[-1]
        spec = (DropoutSpec(**{position: PositionSpec(pattern, 0.1)}, layers="all")
                if position else DropoutSpec())
        handle = attach(model, spec)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof, \
                autocast(device, "bf16"):
            forward(model, batch, 0)
        handle.remove()
        ops = {event.key for event in prof.key_averages()}
        attention = sorted(op for op in ops if "scaled_dot_product" in op or op in (
            "aten::softmax", "aten::_softmax"))
        found[name] = attention
    return found


def step_seconds(model, spec, batch: dict, task: str, device: str, steps: int) -> float:
    from hk_tune.dropout import attach, compute_loss

    handle = attach(model, spec)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()
    times = []
    for _ in range(steps + 1):  # the first warms up
        sync(device)
        started = time.perf_counter()
        with autocast(device, "bf16"):
            loss = compute_loss(model, batch, handle, task).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        times.append(time.perf_counter() - started)
    handle.remove()
    return statistics.median(times[1:])


def peak_bytes(fn, device: str) -> int | None:
    """Peak allocated GPU memory while `fn()` runs, above what was allocated before it."""
    if not device.startswith("cuda"):
        fn()
        return None
    sync(device)
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated() - before


def step_time(device: str, dims: dict, repeats: int, steps: int) -> dict:
    from hk_tune.dropout import PRESETS

    model = lora_model("bert", dims["bert"], device)
    batch, task = batch_for(model, dims["batch"]["size"], dims["batch"]["length"], device)
    times = {name: [] for name in PRESETS_TIMED}
    order, rng = list(PRESETS_TIMED), random.Random(0)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            times[name].append(step_seconds(model, PRESETS[name], batch, task, device, steps))
    median = {name: statistics.median(values) for name, values in times.items()}
    memory = {name: peak_bytes(lambda n=name: step_seconds(model, PRESETS[n], batch, task,
                                                            device, 1), device)
              for name in ("hiddenkey_minus", "hiddenkey")}
    return {"ratio_to_baseline": {n: round(t / median["baseline"], 3) for n, t in median.items()},
            "hiddenkey_vs_minus": round(median["hiddenkey"] / median["hiddenkey_minus"], 3),
            "baseline_step_s": round(median["baseline"], 4),
            "peak_bytes": memory,
            "memory_vs_minus": (round(memory["hiddenkey"] / memory["hiddenkey_minus"], 3)
                                if memory["hiddenkey"] else None)}


def checkpointing(device: str, dims: dict, steps: int) -> dict:
    """HiddenKey on the SmolLM2-shaped decoder with and without gradient checkpointing."""
    from hk_tune.dropout import PRESETS, attach, compute_loss

    model = lora_model("llama", dims["llama"], device)
    batch, task = batch_for(model, max(dims["batch"]["size"] // 2, 2),
                            dims["batch"]["length"], device)
    base = model.get_base_model()

    def switch(on: bool) -> None:
        if on:
            base.activation_checkpointing_enable(
                activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            base.activation_checkpointing_disable()

    results = {}
    for name, on in (("off", False), ("on", True)):  # one loss and gradient, same weights
        switch(on)
        handle = attach(model, PRESETS["hiddenkey"])
        model.train()
        torch.manual_seed(0)
        with autocast(device, "bf16"):
            loss = compute_loss(model, batch, handle, task).loss
        loss.backward()
        grads = torch.cat([p.grad.flatten().float() for p in model.parameters()
                           if p.requires_grad])
        model.zero_grad(set_to_none=True)
        handle.remove()
        results[name] = {"loss": loss.item(), "grads": grads}
    for name, on in (("off", False), ("on", True)):  # then the steps, which change the weights
        switch(on)
        results[name]["step_s"] = step_seconds(model, PRESETS["hiddenkey"], batch, task,
                                               device, steps)
        results[name]["peak_bytes"] = peak_bytes(
            lambda: step_seconds(model, PRESETS["hiddenkey"], batch, task, device, 1), device)
    off, on = results["off"], results["on"]
    scale = off["grads"].abs().max().item() or 1.0
    return {"loss_off": off["loss"], "loss_on": on["loss"],
            "loss_equal": off["loss"] == on["loss"],
            "grad_max_rel_diff": (off["grads"] - on["grads"]).abs().max().item() / scale,
            "step_ratio": round(on["step_s"] / off["step_s"], 3),
            "memory_ratio": (round(on["peak_bytes"] / off["peak_bytes"], 3)
                             if off["peak_bytes"] else None)}


def qlora(device: str, dims: dict, steps: int) -> dict:
    """HiddenKey on the SmolLM2-shaped decoder, its base weights in bf16 and in NF4."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        return {"skipped": "bitsandbytes is not installed"}
    from transformers import LlamaConfig, LlamaForCausalLM

    from hk_tune.config.sections import LoraSettings, ModelSettings
    from hk_tune.dropout import PRESETS
    from hk_tune.train.model import add_lora, load_model
    from hk_tune.train.session import free_accelerator_memory

    results = {}
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(vocab_size=49152, max_position_embeddings=2048,
                                     **dims["llama"])).save_pretrained(folder)
        for quantization in ("none", "nf4"):
            settings = ModelSettings(name=folder, dtype="bfloat16", quantization=quantization)
            base = load_model(settings, "causal_lm", 0, 0, device=device)
            footprint = base.get_memory_footprint()
            model = add_lora(base, LoraSettings(), "causal_lm").to(device)
            batch, task = batch_for(model, max(dims["batch"]["size"] // 2, 2),
                                    dims["batch"]["length"], device)
            losses = []

            def steps_of(n: int, model=model, batch=batch, task=task, losses=losses) -> float:
                seconds = step_seconds(model, PRESETS["hiddenkey"], batch, task, device, n)
                with torch.no_grad(), autocast(device, "bf16"):
                    losses.append(model(**batch).loss.item())
                return seconds

            results[quantization] = {"footprint_bytes": footprint, "step_s": steps_of(steps),
                                     "peak_bytes": peak_bytes(lambda f=steps_of: f(1), device),
                                     "loss_finite": all(map(math.isfinite, losses))}
            del model, base
            free_accelerator_memory()
    plain, nf4 = results["none"], results["nf4"]
    return {"footprint_ratio": round(nf4["footprint_bytes"] / plain["footprint_bytes"], 3),
            "step_ratio": round(nf4["step_s"] / plain["step_s"], 3),
            "memory_ratio": (round(nf4["peak_bytes"] / plain["peak_bytes"], 3)
                             if plain["peak_bytes"] else None),
            "loss_finite": plain["loss_finite"] and nf4["loss_finite"],
            "nf4_step_s": round(nf4["step_s"], 4)}


def trial_folder(root: Path, dims: dict) -> tuple[str, str]:
    """A BERT-shaped model folder with a word-level tokenizer, and a toy sentiment file."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate(specials + sorted(set(WORDS)))}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]",
                                   unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), pad_token_id=0, **dims)).save_pretrained(
        root / "model")
    fast.save_pretrained(root / "model")
    rows = []
    for i in range(64):
        good = i % 2 == 1
        words = WORDS[:6] if good else WORDS[-5:]
        rows.append({"text": " ".join(random.Random(i).sample(words, 4)),
                     "label": "positive" if good else "negative"})
    (root / "reviews.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(root / "model"), str(root / "reviews.jsonl")


def trial_setup(device: str, dims: dict) -> dict:
    """Without `datasets` (whose wheels do not fit what a GPU machine can be sent): the steps
    of a reused-actor trial outside training, timed alone: copy the cached base model, draw
    its new head, add LoRA, attach HiddenKey, move it to the device, and free it afterwards."""
    from transformers import BertConfig, BertForSequenceClassification

    from hk_tune.config.sections import LoraSettings
    from hk_tune.dropout import PRESETS, attach
    from hk_tune.train.loop import reset_new_weights, seed_everything
    from hk_tune.train.model import add_lora
    from hk_tune.train.session import free_accelerator_memory, fresh_copy

    cached = BertForSequenceClassification(BertConfig(vocab_size=30522, num_labels=2,
                                                      **dims["bert"]))
    head = [name for name, _ in cached.named_parameters() if name.startswith("classifier")]
    runs = []
    for seed in range(3):
        started = time.perf_counter()
        base = fresh_copy(cached)
        seed_everything(seed)
        reset_new_weights(base, head)
        model = add_lora(base, LoraSettings(), "classification")
        handle = attach(model, PRESETS["hiddenkey"])
        model.to(device)
        sync(device)
        handle.remove()
        del model, base, handle
        free_accelerator_memory()
        runs.append({"wall_s": round(time.perf_counter() - started, 3), "training_s": 0.0,
                     "allocated_after": (torch.cuda.memory_allocated()
                                         if device.startswith("cuda") else None)})
    return {"path": "setup only (no datasets)", "runs": runs,
            "overhead_s": round(statistics.mean(r["wall_s"] for r in runs[1:]), 3)}


def trial_loop(device: str, dims: dict) -> dict:
    """Three runs in one process on the device, as a reused trial actor runs them. A run's
    overhead is its wall time outside its steps and evaluations: before its model reaches the
    device (cached data and base model, copy, LoRA, attach) and after its last report."""
    import importlib.util

    if importlib.util.find_spec("datasets") is None:
        return trial_setup(device, dims)
    from hk_tune.train.loop import run_loop
    from hk_tune.train.session import LocalSession, free_accelerator_memory

    class TimedSession(LocalSession):
        def prepare_model(self, model):
            model = super().prepare_model(model)
            sync(device)
            self.prepared = time.perf_counter()
            return model

        def report(self, metrics, folder, name):
            super().report(metrics, folder, name)
            self.reported = time.perf_counter()

    with tempfile.TemporaryDirectory() as folder:
        model, data = trial_folder(Path(folder), dims["bert"])
        session = TimedSession(cache=True, device=device)
        runs = []
        for seed in range(3):
            raw = {"model": model, "dropout": "hiddenkey", "seed": seed,
                   "data": {"source": data, "task": "classification", "max_length": 32},
                   "optim": {"batch_size": 16, "max_steps": 8, "eval_every": 8},
                   "scaling": {"num_workers": 0}, "storage_path": str(Path(folder) / "runs"),
                   "name": f"trial{seed}"}
            started = time.perf_counter()
            run_loop(raw, session)
            free_accelerator_memory()
            ended = time.perf_counter()
            runs.append({"wall_s": round(ended - started, 3),
                         "training_s": round(session.reported - session.prepared, 3),
                         "allocated_after": (torch.cuda.memory_allocated()
                                             if device.startswith("cuda") else None)})
    later = runs[1:]
    return {"path": "run_loop", "runs": runs, "overhead_s": round(statistics.mean(
        r["wall_s"] - r["training_s"] for r in later), 3)}


def goals(report: dict) -> dict[str, bool]:
    ratios = report["step_time"]["ratio_to_baseline"]
    met = {"single_vs_baseline": max(ratios[n] for n in SINGLE) <= GOALS["single_vs_baseline"],
           "hiddenkey_vs_minus": (report["step_time"]["hiddenkey_vs_minus"]
                                  <= GOALS["hiddenkey_vs_minus"]),
           "trial_overhead_s": report["trial_loop"]["overhead_s"] < GOALS["trial_overhead_s"]}
    if report["step_time"]["memory_vs_minus"] is not None:
        met["memory_vs_minus"] = report["step_time"]["memory_vs_minus"] <= GOALS["memory_vs_minus"]
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="tiny models and batches")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda, but torch sees no CUDA device; use --device cpu",
              file=sys.stderr)
        return 2
    dims = shapes(args.quick)
    started = time.perf_counter()
    report = {"device": (torch.cuda.get_device_name() if args.device == "cuda" else "cpu"),
              "torch": torch.__version__, "quick": args.quick}
    for name, part in (("contract", lambda: contract(args.device, dims)),
                       ("kernels", lambda: kernels(args.device, dims)),
                       ("step_time", lambda: step_time(args.device, dims, args.repeats,
                                                       args.steps)),
                       ("checkpointing", lambda: checkpointing(args.device, dims, args.steps)),
                       ("trial_loop", lambda: trial_loop(args.device, dims)),
                       ("qlora", lambda: qlora(args.device, dims, args.steps))):
        begun = time.perf_counter()
        report[name] = part()
        print(f"[{name}: {time.perf_counter() - begun:.1f} s]", file=sys.stderr, flush=True)
    report["goals_met"] = goals(report) if args.device == "cuda" else None
    report["seconds"] = round(time.perf_counter() - started, 1)
    print_report(report)
    if args.json:
        print(json.dumps(report))
    failed = [row for row in report["contract"] if row["failed"]]
    return 1 if failed else 0


def print_report(report: dict) -> None:
    failed = [row for row in report["contract"] if row["failed"]]
    print(f"device {report['device']}, torch {report['torch']}, {report['seconds']} s")
    print(f"contract: {len(report['contract']) - len(failed)}/{len(report['contract'])} rows "
          "pass (llama and bert, fp32 and bf16)")
    for row in failed:
        print(f"  FAILED {row['arch']} {row['dtype']} {row['row']}: {', '.join(row['failed'])}")
    print("attention ops per position:pattern (bf16 training forward):")
    for name, ops in report["kernels"].items():
        print(f"  {name:<26} {', '.join(ops) or '-'}")
    step = report["step_time"]
    print(f"step time, bf16, ratio to baseline ({step['baseline_step_s']} s):")
    for name, ratio in step["ratio_to_baseline"].items():
        print(f"  {name:<26} {ratio:.3f}")
    print(f"  hiddenkey / hiddenkey_minus: {step['hiddenkey_vs_minus']:.3f}; peak memory "
          f"ratio: {step['memory_vs_minus']}")
    ckpt = report["checkpointing"]
    print(f"checkpointing (HiddenKey, bf16): loss {ckpt['loss_off']:.6f} vs {ckpt['loss_on']:.6f}"
          f", LoRA grads max rel diff {ckpt['grad_max_rel_diff']:.2e}, step x{ckpt['step_ratio']}"
          f", peak memory x{ckpt['memory_ratio']}")
    loop = report["trial_loop"]
    times = [(r["wall_s"], r["training_s"]) for r in loop["runs"]]
    print(f"trial loop ({loop['path']}): runs {times} "
          f"(wall, training s); overhead after the first {loop['overhead_s']} s; allocated "
          f"after each: {[r['allocated_after'] for r in loop['runs']]}")
    quantized = report["qlora"]
    if "skipped" in quantized:
        print(f"qlora: skipped, {quantized['skipped']}")
    else:
        print(f"qlora (NF4 against bf16 base weights, HiddenKey in bf16): weights "
              f"x{quantized['footprint_ratio']}, step x{quantized['step_ratio']}, peak memory "
              f"x{quantized['memory_ratio']}, losses finite: {quantized['loss_finite']}")
    if report["goals_met"] is not None:
        print(f"goals met: {report['goals_met']}")


if __name__ == "__main__":
    sys.exit(main())
