"""Evaluating in length order against the data's own order: the same metrics, less padding.

    python benchmarks/eval_order.py            # MiniLM on the bundled sentiment validation set
    python benchmarks/eval_order.py --json

Each evaluation pads a batch to its longest example. Sentences of similar length batched
together pad little, so `hk_tune.train.evaluate.evaluate` takes its examples in length order.
This times one evaluation pass over the 1,000 validation sentences both ways, in turns, and
prints the ratio and the metrics of both (which must agree).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as "
                        "a one-CPU trial has)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from hk_tune.config.run import RunConfig
    from hk_tune.train.data import collate, load_task, tokenize
    from hk_tune.train.evaluate import model_inputs, row_batches
    from hk_tune.train.metrics import compute_metrics
    from hk_tune.train.model import build_model, load_tokenizer

    torch.set_num_threads(args.threads)
    cfg = RunConfig.from_dict({"model": "minilm", "data": {"source": "bundled:sentiment"}})
    tokenizer = load_tokenizer(cfg.model)
    data = load_task(cfg.data)
    _, eval_ds = tokenize(data, tokenizer, cfg.data.max_length)
    model = build_model(cfg.model, cfg.lora, data.task, data.num_labels,
                        tokenizer.pad_token_id).eval()
    lengths = [len(ids) for ids in eval_ds["input_ids"]]
    orders = {"data order": list(range(len(eval_ds))),
              "length order": sorted(range(len(eval_ds)), key=lengths.__getitem__)}

    def one_pass(order: list[int]) -> tuple[float, dict]:
        started = time.perf_counter()
        predictions, references = [], []
        with torch.no_grad():
            for rows in row_batches(eval_ds, order, args.batch_size):
                batch = model_inputs(collate(rows, tokenizer.pad_token_id), "cpu")
                out = model(**batch)
                predictions += out.logits.argmax(-1).tolist()
                references += batch["labels"].tolist()
        seconds = time.perf_counter() - started
        return seconds, compute_metrics(data.task, predictions, references, data.num_labels)

    times: dict[str, list[float]] = {name: [] for name in orders}
    metrics = {}
    for _ in range(args.rounds):
        for name, order in orders.items():
            seconds, metrics[name] = one_pass(order)
            times[name].append(seconds)
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["length order"] / median["data order"]
    print(f"one evaluation pass over {len(eval_ds)} sentences, batch {args.batch_size}, "
          f"{args.threads} thread(s), median of {args.rounds}: data order "
          f"{median['data order']:.2f} s, length order {median['length order']:.2f} s, "
          f"ratio {ratio:.2f}; metrics equal: {metrics['data order'] == metrics['length order']}")
    if args.json:
        print(json.dumps({"seconds": times, "ratio": ratio, "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
