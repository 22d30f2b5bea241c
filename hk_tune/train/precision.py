"""Mixed precision for a run (`optim.precision`), independent of the weight dtype.

`fp32` computes in the weights' dtype. `bf16` and `fp16` run the forward passes (both passes of a
consistency loss, and evaluation) under `torch.autocast`; the LoRA weights, the task head and
AdamW's state stay in fp32, because autocast casts per operation and leaves the parameters as
they are. `fp16` has too little range for small gradients, so its loss is scaled before backward
and unscaled before clipping and the optimizer step (`torch.amp.GradScaler`), which also skips a
step whose gradients overflowed; bf16 has fp32's range and needs no scaler.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Precision:
    """The autocast context and the gradient scaler of one run on one device.

    Attributes:
        name: one of `hk_tune.config.sections.PRECISIONS`.
        device_type: "cpu" or "cuda", the device the model runs on.
        scaler: a GradScaler, enabled for fp16 only (disabled, it passes values through).
    """

    name: str
    device_type: str
    scaler: torch.amp.GradScaler

    @classmethod
    def for_model(cls, name: str, model: torch.nn.Module) -> Precision:
        device_type = next(model.parameters()).device.type
        return cls(name, device_type, torch.amp.GradScaler(device_type, enabled=name == "fp16"))

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context the forward passes run in; a no-op for fp32."""
        if self.name not in DTYPES:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=DTYPES[self.name])
