"""The unified dropout framework of "LoRA Meets Dropout under a Unified Framework" (DESIGN.md 2).

    spec = PRESETS["hiddenkey"]                     # or DropoutSpec.from_dict({...})
    handle = attach(peft_model, spec)               # before DDP; handle.remove() restores
    compute_loss(model, batch, handle, "classification").loss.backward()
"""

from hk_tune.dropout.attach import ARCHITECTURES, Attachment, attach
from hk_tune.dropout.consistency import consistency_loss, kl_to_reference, symmetric_kl
from hk_tune.dropout.presets import PRESETS, REFERENCES
from hk_tune.dropout.spec import PATTERNS, POSITIONS, DropoutSpec, PositionSpec
from hk_tune.dropout.step import TASKS, StepLoss, compute_loss

__all__ = [
    "ARCHITECTURES",
    "PATTERNS",
    "POSITIONS",
    "PRESETS",
    "REFERENCES",
    "TASKS",
    "Attachment",
    "DropoutSpec",
    "PositionSpec",
    "StepLoss",
    "attach",
    "compute_loss",
    "consistency_loss",
    "kl_to_reference",
    "symmetric_kl",
]
