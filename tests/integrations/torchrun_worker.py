"""One process of `torchrun --nproc_per_node 2` (gloo on CPU): DropoutTrainer with HiddenKey
on a tiny BERT; rank 0 writes whether both ranks ended with the same LoRA weights."""

import json
import sys
from pathlib import Path

import torch
from datasets import Dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

from hk_tune.integrations.transformers import DropoutTrainer

model_path, out = sys.argv[1], Path(sys.argv[2])
tokenizer = AutoTokenizer.from_pretrained(model_path)
torch.manual_seed(0)
model = get_peft_model(AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2),
                       LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                                  task_type="SEQ_CLS"))
texts = ["the movie was great", "i loved it", "the food was terrible", "i hated it"]
rows = Dataset.from_list([{"text": texts[i % 4], "label": int(i % 4 < 2)} for i in range(32)])
rows = rows.map(lambda r: tokenizer(r["text"]), remove_columns=["text"])
initial = torch.cat([p.detach().flatten().clone() for n, p in model.named_parameters()
                     if "lora_" in n])
args = TrainingArguments(str(out / "trainer"), per_device_train_batch_size=4, max_steps=3,
                         logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                         disable_tqdm=True, learning_rate=1e-2, ddp_backend="gloo")
trainer = DropoutTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                         dropout="hiddenkey")
trainer.train()
lora = torch.cat([p.detach().flatten() for n, p in model.named_parameters() if "lora_" in n])
gathered = [torch.empty_like(lora) for _ in range(torch.distributed.get_world_size())]
torch.distributed.all_gather(gathered, lora)
if torch.distributed.get_rank() == 0:
    (out / "result.json").write_text(json.dumps({
        "world": torch.distributed.get_world_size(),
        "ranks_agree": all(torch.equal(gathered[0], g) for g in gathered),
        "trained": not torch.equal(lora, initial),
        "consistency": [r["consistency_loss"] for r in trainer.state.log_history
                        if "consistency_loss" in r]}))
