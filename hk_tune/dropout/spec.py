"""The dropout configuration: one value describing where, how and how much to drop
(docs/design.md 2).

A `DropoutSpec` has one `PositionSpec` per position (pattern, rate, rescale), one consistency
compensation and a layer range. It is validated on construction, so a spec that exists is a spec
that can run. `to_dict`/`from_dict` use flat dotted keys (`attn_logits.rate`) so Optuna samples
and MLflow params are the same strings.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hk_tune.dropout import presets
from hk_tune.dropout.consistency import CONSISTENCY
from hk_tune.dropout.pattern import PATTERNS
from hk_tune.errors import ConfigError

POSITIONS = ("attn_logits", "attn_weights", "ffn_hidden", "input", "output")
ATTENTION_POSITIONS = ("attn_logits", "attn_weights")
# Rescaling each position allows. For attention positions the first is the default; hidden
# positions take their pattern's default (`PATTERNS[pattern].hidden_rescale`).
RESCALES = {
    "attn_logits": ("none",),  # softmax renormalizes by itself
    "attn_weights": ("renorm", "inverted"),  # renorm = w̄ / stopgrad(Σ w̄), the paper's version
    "ffn_hidden": ("inverted", "none"),
    "input": ("inverted", "none"),
    "output": ("inverted", "none"),
}
CONSISTENCY_LOSSES = ("none", *CONSISTENCY)
CONSISTENCY_GRADS = ("one", "both")
LAYER_RANGES = ("auto", "all", "latter_half")


def default_rescale(position: str, pattern: str) -> str:
    """The rescaling a position takes when the spec names none (docs/design.md 2.1)."""
    if position in ATTENTION_POSITIONS:
        return RESCALES[position][0]
    return PATTERNS[pattern].hidden_rescale


@dataclass(frozen=True)
class PositionSpec:
    """Dropout at one position: which units share a coin (`pattern`), how often (`rate`) and how
    the kept units are rescaled (`rescale`; None picks the position's default)."""

    pattern: str = "element"
    rate: float = 0.0
    rescale: str | None = None

    @property
    def active(self) -> bool:
        return self.rate > 0.0


@dataclass(frozen=True)
class DropoutSpec:
    """A full dropout configuration (docs/design.md 2). Construct directly, from a preset, or with
    `from_dict`; invalid values raise `ConfigError` naming the field and the allowed values.

    Attributes:
        attn_logits, attn_weights, ffn_hidden, input, output: one `PositionSpec` per position.
        consistency: "none" | "kl" (HiddenKey, Eq. 11) | "js" (the paper's JS, Eq. 12).
        consistency_weight: λ, the weight of the consistency loss (paper grid 0.01 … 10).
        consistency_grad: "one" (second pass under no_grad, the paper) | "both" (R-Drop).
        layers: "auto" (encoders all, decoders latter half) | "all" | "latter_half" | indices.
        stock_dropout: keep the backbone's and LoRA's own dropout (the `hf_default` preset);
            otherwise they are zeroed so this spec is the only source of dropout.
    """

    attn_logits: PositionSpec = field(default_factory=PositionSpec)
    attn_weights: PositionSpec = field(default_factory=PositionSpec)
    ffn_hidden: PositionSpec = field(default_factory=PositionSpec)
    input: PositionSpec = field(default_factory=PositionSpec)
    output: PositionSpec = field(default_factory=PositionSpec)
    consistency: str = "none"
    consistency_weight: float = 1.0
    consistency_grad: str = "one"
    layers: str | tuple[int, ...] = "auto"
    stock_dropout: bool = False

    def __post_init__(self) -> None:
        for position in POSITIONS:
            entry = getattr(self, position)
            if isinstance(entry, dict):
                entry = PositionSpec(**entry)
            object.__setattr__(self, position, _validated(position, entry))
        _check_choice("consistency.loss", self.consistency, CONSISTENCY_LOSSES)
        _check_choice("consistency.grad", self.consistency_grad, CONSISTENCY_GRADS)
        weight = self.consistency_weight
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"consistency.weight: expected a number >= 0, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"consistency.weight: {weight!r} is not allowed; use a number >= 0")
        object.__setattr__(self, "consistency_weight", float(weight))
        object.__setattr__(self, "layers", _validated_layers(self.layers))
        if not isinstance(self.stock_dropout, bool):
            raise ConfigError(f"stock_dropout: expected true or false, got {self.stock_dropout!r}")

    def position(self, name: str) -> PositionSpec:
        return getattr(self, name)

    @property
    def active_positions(self) -> tuple[str, ...]:
        return tuple(p for p in POSITIONS if self.position(p).active)

    @property
    def touches_attention(self) -> bool:
        return any(self.position(p).active for p in ATTENTION_POSITIONS)

    def to_dict(self) -> dict[str, Any]:
        """Flat dotted keys: {"attn_logits.pattern": "column", "attn_logits.rate": 0.1, ...}."""
        flat: dict[str, Any] = {}
        for position in POSITIONS:
            entry = self.position(position)
            flat[f"{position}.pattern"] = entry.pattern
            flat[f"{position}.rate"] = entry.rate
            flat[f"{position}.rescale"] = entry.rescale
        flat["consistency.loss"] = self.consistency
        flat["consistency.weight"] = self.consistency_weight
        flat["consistency.grad"] = self.consistency_grad
        flat["layers"] = self.layers if isinstance(self.layers, str) else list(self.layers)
        flat["stock_dropout"] = self.stock_dropout
        return flat

    @classmethod
    def from_dict(cls, flat: dict[str, Any], where: str = "dropout") -> DropoutSpec:
        """Builds a spec from flat keys; an optional `preset` key names the starting point.

        Args:
            flat: flat dotted keys as written by `to_dict`, plus optional `preset`.
            where: where the dict came from (file and section), named in every error.
        """
        flat = dict(flat)
        preset = flat.pop("preset", None)
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"{where}: preset {preset!r} is unknown; allowed: {sorted(PRESETS)}")
        base = PRESETS[preset] if preset is not None else cls()
        positions = {p: dataclasses.asdict(base.position(p)) for p in POSITIONS}
        top = {
            "consistency": base.consistency,
            "consistency_weight": base.consistency_weight,
            "consistency_grad": base.consistency_grad,
            "layers": base.layers,
            "stock_dropout": base.stock_dropout,
        }
        top_keys = {
            "consistency.loss": "consistency",
            "consistency.weight": "consistency_weight",
            "consistency.grad": "consistency_grad",
            "layers": "layers",
            "stock_dropout": "stock_dropout",
        }
        for key, value in flat.items():
            head, _, leaf = key.partition(".")
            if head in positions and leaf in ("pattern", "rate", "rescale"):
                positions[head][leaf] = value
                if leaf == "pattern" and f"{head}.rescale" not in flat:
                    positions[head]["rescale"] = None  # re-derive the pattern's default
            elif key in top_keys:
                top[top_keys[key]] = value
            else:
                raise ConfigError(f"{where}: unknown key {key!r}; allowed: {sorted(valid_keys())}")
        try:
            return cls(**{p: PositionSpec(**positions[p]) for p in POSITIONS}, **top)
        except ConfigError as error:
            raise ConfigError(f"{where}.{error}") from None


def valid_keys() -> list[str]:
    """Every flat key `from_dict` accepts."""
    keys = [f"{p}.{leaf}" for p in POSITIONS for leaf in ("pattern", "rate", "rescale")]
    keys += ["consistency.loss", "consistency.weight", "consistency.grad", "layers"]
    return keys + ["stock_dropout", "preset"]


def _check_choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; allowed: {list(allowed)}")


def _validated(position: str, entry: PositionSpec) -> PositionSpec:
    _check_choice(f"{position}.pattern", entry.pattern, tuple(PATTERNS))
    rate = entry.rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
        raise ConfigError(f"{position}.rate: {rate!r} is outside [0, 1)")
    rescale = entry.rescale or default_rescale(position, entry.pattern)
    _check_choice(f"{position}.rescale", rescale, RESCALES[position])
    return PositionSpec(entry.pattern, float(rate), rescale)


def _validated_layers(layers: object) -> str | tuple[int, ...]:
    if isinstance(layers, str):
        _check_choice("layers", layers, LAYER_RANGES)
        return layers
    if isinstance(layers, (list, tuple)) and layers and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers
    ):
        return tuple(sorted(set(layers)))
    raise ConfigError(
        f"layers: {layers!r} is not allowed; allowed: {list(LAYER_RANGES)} or a non-empty list "
        "of layer indices >= 0"
    )


def _preset(positions: dict[str, str], consistency: str) -> DropoutSpec:
    entries = {name: PositionSpec(pattern, presets.RATE) for name, pattern in positions.items()}
    return DropoutSpec(**entries, consistency=consistency, consistency_weight=presets.WEIGHT)


# The rows of the paper's Table 1 (`hk_tune.dropout.presets.TABLE`) as specs.
PRESETS: dict[str, DropoutSpec] = {
    name: _preset(positions, loss) for name, (positions, loss, _) in presets.TABLE.items()
}
PRESETS[presets.STOCK] = DropoutSpec(stock_dropout=True)
