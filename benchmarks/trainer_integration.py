"""What the Trainer integration costs per step, as ratios measured side by side in one run.

    python benchmarks/trainer_integration.py [--steps 12] [--repeats 3] [--json]

LoRA (r=8, α=16, query/value) on the real MiniLM, batch 16 × 128 tokens:

- `transformers.Trainer`, stock dropout: the plain step users have today;
- `DropoutTrainer(dropout="hf_default")`: the same dropouts through the integration, so its ratio
  to the plain Trainer is the integration's own cost (the goal is 1.0);
- `DropoutTrainer(dropout="hiddenkey")`: two passes and the KL term;

and hk_tune's own step (`compute_loss`, backward, AdamW) with `hf_default` and `hiddenkey`, whose
ratio the Trainer's should match. Trainer steps are timed between its `on_step_begin` and
`on_step_end` callbacks (forward, backward, optimizer), the median over steps after the first;
the runs take turns, `--repeats` times. With --json the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from dropout_overhead import batch_for, minilm_lora, time_steps  # noqa: E402


class StepTimer:
    """A TrainerCallback keeping each optimizer step's seconds."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                timer.started = time.perf_counter()

            def on_step_end(self, args, state, control, **kwargs):
                timer.seconds.append(time.perf_counter() - timer.started)

        self.callback = Callback()
        self.seconds: list[float] = []


def trainer_step(model, rows, dropout: str | None, steps: int) -> float:
    from transformers import Trainer, TrainingArguments, default_data_collator

    from hk_tune.integrations.transformers import DropoutTrainer

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(out, per_device_train_batch_size=16, max_steps=steps + 1,
                                 learning_rate=1e-4, report_to=[], save_strategy="no",
                                 logging_steps=10_000, use_cpu=True, disable_tqdm=True,
                                 dataloader_num_workers=0)
        kwargs = dict(model=model, args=args, train_dataset=rows, callbacks=[timer.callback],
                      data_collator=default_data_collator)
        trainer = (Trainer(**kwargs) if dropout is None
                   else DropoutTrainer(**kwargs, dropout=dropout))
        trainer.train()
    return statistics.median(timer.seconds[1:])


def main(argv: list[str] | None = None) -> int:
    from datasets import Dataset

    from hk_tune.dropout import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    base = minilm_lora()
    batch = batch_for("classification", base.config.vocab_size)
    rows = Dataset.from_dict({k: v.tolist() for k, v in batch.items()}).with_format("torch")
    runs = {
        "trainer": lambda: trainer_step(copy.deepcopy(base), rows, None, args.steps),
        "dropout_trainer_hf_default": lambda: trainer_step(copy.deepcopy(base), rows,
                                                           "hf_default", args.steps),
        "dropout_trainer_hiddenkey": lambda: trainer_step(copy.deepcopy(base), rows,
                                                          "hiddenkey", args.steps),
        "loop_hf_default": lambda: time_steps(copy.deepcopy(base), PRESETS["hf_default"],
                                              batch, "classification", args.steps),
        "loop_hiddenkey": lambda: time_steps(copy.deepcopy(base), PRESETS["hiddenkey"],
                                             batch, "classification", args.steps),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            times[name].append(run())
    median = {name: statistics.median(values) for name, values in times.items()}
    ratios = {
        "integration (dropout_trainer hf_default / trainer)":
            median["dropout_trainer_hf_default"] / median["trainer"],
        "hiddenkey through the Trainer (/ trainer)":
            median["dropout_trainer_hiddenkey"] / median["trainer"],
        "hiddenkey in hk_tune's loop (/ loop hf_default)":
            median["loop_hiddenkey"] / median["loop_hf_default"],
    }
    print(f"MiniLM + LoRA, batch 16 x 128, {args.steps} steps x {args.repeats} rounds; "
          "median seconds per step:")
    for name, value in median.items():
        print(f"  {name:<32} {value:.3f}")
    for name, value in ratios.items():
        print(f"  {name:<52} {value:.3f}")
    if args.json:
        print(json.dumps({"seconds": median, "ratios": ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
