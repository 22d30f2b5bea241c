"""hk_tune's dropout framework inside other training loops: `transformers.Trainer` and its
subclasses (TRL's `SFTTrainer`) in `hk_tune.integrations.transformers`."""
