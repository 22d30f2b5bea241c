"""`DropoutTrainer` under DDP: two Ray Train workers (gloo on CPU) through Ray's own
`prepare_trainer`, each attaching HiddenKey to its copy; the workers end with the same LoRA
weights (the gradients were averaged) and report the consistency term."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]


def train_worker(config: dict) -> None:
    import ray.train
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from hk_tune.integrations.transformers import DropoutTrainer

    tokenizer = AutoTokenizer.from_pretrained(config["model"])
    torch.manual_seed(0)
    model = get_peft_model(
        AutoModelForSequenceClassification.from_pretrained(config["model"], num_labels=2),
        LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS"))
    texts = ["the movie was great", "i loved it", "the food was terrible", "i hated it"]
    rows = Dataset.from_list([{"text": texts[i % 4], "label": int(i % 4 < 2)}
                              for i in range(32)]).map(lambda r: tokenizer(r["text"]))
    args = TrainingArguments(output_dir=config["out"], per_device_train_batch_size=4,
                             max_steps=3, logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=True, disable_tqdm=True, learning_rate=1e-2,
                             remove_unused_columns=True)
    trainer = DropoutTrainer(model=model, args=args, train_dataset=rows.remove_columns("text"),
                             processing_class=tokenizer, dropout="hiddenkey",
                             callbacks=[RayTrainReportCallback()])
    initial = torch.cat([p.detach().flatten().clone() for n, p in model.named_parameters()
                         if "lora_" in n])
    trainer = prepare_trainer(trainer)
    trainer.train()
    lora = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_" in n])
    gathered = [torch.empty_like(lora) for _ in range(torch.distributed.get_world_size())]
    torch.distributed.all_gather(gathered, lora)
    logged = [row for row in trainer.state.log_history if "consistency_loss" in row]
    context = ray.train.get_context()
    if context.get_world_rank() == 0:  # what the workers did, for the test to read
        Path(config["out"], "result.json").write_text(json.dumps({
            "ranks_agree": all(torch.equal(gathered[0], g) for g in gathered),
            "trained": not torch.equal(lora, initial),
            "consistency": [row["consistency_loss"] for row in logged],
            "world": context.get_world_size()}))


def test_two_ddp_workers_train_one_model_with_hiddenkey(tmp_path, tiny_models):
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    trainer = TorchTrainer(
        train_worker, train_loop_config={"model": tiny_models["bert"], "out": str(tmp_path)},
        scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=ray.train.RunConfig(storage_path=str(tmp_path / "runs"), name="ddp"))
    trainer.fit()
    metrics = json.loads((tmp_path / "result.json").read_text())
    assert metrics["world"] == 2
    assert len(metrics["consistency"]) == 3 and all(c > 0 for c in metrics["consistency"])
    assert metrics["ranks_agree"] and metrics["trained"]
