"""hk_tune: find the best dropout configuration for LoRA finetuning.

Implements the unified dropout framework of "LoRA Meets Dropout under a Unified Framework"
(Wang et al., Findings of ACL 2024), whose best method is HiddenKey.
"""

__version__ = "0.1.0"
