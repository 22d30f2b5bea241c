"""Readable run names from flat dropout keys: `hiddenkey r=0.1/0.05 λ=1`, never a timestamp.

A configuration whose active positions, patterns and consistency loss match a preset of the
paper's Table 1 (docs/design.md 2.5) is named after the preset, followed by its rates in position
order and λ when a loss is on. Anything else gets the compact form
`logits:column@0.1 ffn:element@0.05 kl λ=1`. Settings that differ from the defaults (rescale,
layer range, gradient through both passes) are appended so that two different runs never share
a name only because the name left them out.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hk_tune.dropout.spec import POSITIONS, PRESETS, default_rescale  # none of them import torch

_SHORT = {
    "attn_logits": "logits",
    "attn_weights": "weights",
    "ffn_hidden": "ffn",
    "input": "input",
    "output": "output",
}

Shape = tuple[tuple[tuple[str, str], ...], str]


def run_name(params: dict[str, Any]) -> str:
    """Names a run from its flat dropout keys.

    Args:
        params: flat keys as `DropoutSpec.to_dict` writes them (`attn_logits.rate`, ...); other
            keys are ignored, missing ones take the spec's defaults, values may be strings.

    Returns:
        e.g. "hiddenkey r=0.1/0.05 λ=1", "dropkey_column r=0.1", "baseline", or the compact
        "logits:column@0.1 ffn:element@0.05 kl λ=1" when no preset has that shape.
    """
    if _truthy(params.get("stock_dropout")):
        return "hf_default"
    active = [
        (position, str(params.get(f"{position}.pattern") or "element"))
        for position in POSITIONS
        if _number(params.get(f"{position}.rate")) > 0
    ]
    loss = str(params.get("consistency.loss") or "none")
    weight = _number(params.get("consistency.weight"), default=1.0)
    if weight == 0:
        loss = "none"  # λ = 0 is no loss at all
    rates = [_fmt(_number(params.get(f"{position}.rate"))) for position, _ in active]
    suffix = "".join(f" {extra}" for extra in _extras(params, active, loss))
    lam = f" λ={_fmt(weight)}" if loss != "none" else ""

    preset = _preset_shapes().get((tuple(active), loss))
    if preset is not None:
        rate_part = f" r={'/'.join(rates)}" if rates else ""
        return f"{preset}{rate_part}{lam}{suffix}"
    parts = [
        f"{_SHORT[position]}:{pattern}@{rate}"
        for (position, pattern), rate in zip(active, rates, strict=True)
    ]
    if loss != "none":
        parts.append(f"{loss}{lam}")
    return " ".join(parts) + suffix if parts else f"no dropout{suffix}"


@lru_cache(maxsize=1)
def _preset_shapes() -> dict[Shape, str]:
    shapes: dict[Shape, str] = {}
    for name, spec in PRESETS.items():
        if spec.stock_dropout:
            continue
        flat = spec.to_dict()
        active = tuple((p, flat[f"{p}.pattern"]) for p in POSITIONS if flat[f"{p}.rate"] > 0)
        shapes.setdefault((active, flat["consistency.loss"]), name)
    return shapes


def _extras(params: dict[str, Any], active: list[tuple[str, str]], loss: str) -> list[str]:
    extras = []
    for position, pattern in active:
        rescale = params.get(f"{position}.rescale")
        if rescale not in (None, "", "None", default_rescale(position, pattern)):
            extras.append(f"{_SHORT[position]}.rescale={rescale}")
    if loss != "none" and params.get("consistency.grad") == "both":
        extras.append("grad=both")
    layers = params.get("layers")
    if layers not in (None, "", "auto"):
        extras.append(f"layers={layers}")
    return extras


def _number(value: Any, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _fmt(value: float) -> str:
    # Three significant digits: TPE samples floats like 0.0734523, which nobody wants to read.
    return f"{value:.3g}"
