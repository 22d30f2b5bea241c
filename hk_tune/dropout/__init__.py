"""The unified dropout framework of "LoRA Meets Dropout under a Unified Framework"
(docs/design.md 2).

    spec = PRESETS["hiddenkey"]                     # or DropoutSpec.from_dict({...})
    handle = attach(peft_model, spec)               # before DDP; handle.remove() restores
    compute_loss(model, batch, handle, "classification").loss.backward()

Names load on first use: validating a spec (`hk_tune.dropout.spec`, `presets`) needs no torch,
so a search driver or the tracking layer checks configurations without importing it.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module that defines it
_EXPORTS = {
    "ARCHITECTURES": "architectures",
    "Attachment": "attachment",
    "attach": "attachment",
    "consistency_loss": "consistency",
    "kl_to_reference": "consistency",
    "symmetric_kl": "consistency",
    "PRESETS": "spec",
    "REFERENCES": "presets",
    "PATTERNS": "pattern",
    "POSITIONS": "spec",
    "DropoutSpec": "spec",
    "PositionSpec": "spec",
    "StepLoss": "step",
    "compute_loss": "step",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hk_tune.dropout' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"hk_tune.dropout.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
