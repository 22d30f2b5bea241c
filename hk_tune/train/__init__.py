"""Model and LoRA building, tasks and data, the per-worker training loop, metrics.

Kept free of imports so that `import hk_tune.train.data` stays cheap for config parsing.
"""
