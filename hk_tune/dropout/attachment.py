"""Applying a DropoutSpec to a transformers model: the one module that knows transformers.

Attention positions go through transformers' attention interface: a function registered under
`hk_tune_<original>` (with the original's mask function under the same name, without which the
function would silently get no mask) that hands over to the original implementation whenever
there is nothing to drop (eval mode, layers out of range), so those paths stay bit-identical and
fast. Hidden positions are forward hooks on the module that owns them. Everything else in
`hk_tune.dropout` sees only tensors.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable

import torch
from torch import nn

from hk_tune.dropout.architectures import ARCHITECTURES, Architecture
from hk_tune.dropout.attention import additive_mask, attention_with_dropout
from hk_tune.dropout.hidden import drop_hidden
from hk_tune.dropout.spec import DropoutSpec, PositionSpec
from hk_tune.errors import ConfigError

_PLAN = "_hk_tune_attention"  # attribute set on attention modules in the layer range
_ATTACHED = "_hk_tune_attachment"


_HEADS = ("classifier", "score", "lm_head")  # what receives the final representation


def _original_function(name: str, module: nn.Module) -> Callable:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if name == "eager":  # each model family keeps its own eager function in its modeling file
        return sys.modules[type(module).__module__].eager_attention_forward
    return ALL_ATTENTION_FUNCTIONS[name]


def _attention_function(original: str) -> Callable:
    def hk_tune_attention(module, query, key, value, attention_mask, **kwargs):
        plan = getattr(module, _PLAN, None)
        if plan is None or not module.training:
            fn = _original_function(original, module)
            return fn(module, query, key, value, attention_mask, **kwargs)
        for unsupported in ("softcap", "s_aux"):
            if kwargs.get(unsupported) is not None:
                raise NotImplementedError(
                    f"hk_tune attention dropout does not support {unsupported!r} attention"
                )
        # The sdpa and eager mask functions build the window into the 4-D mask (and skip the
        # mask only while the window cannot bind); a window left to a kernel would be lost here.
        window = kwargs.get("sliding_window")
        if window is not None and key.shape[-2] > window and (
                attention_mask is None or attention_mask.dim() != 4):
            raise NotImplementedError(
                "hk_tune attention dropout keeps a sliding window only through a 4-D mask "
                f"(sdpa or eager attention), not {original!r}"
            )
        is_causal = kwargs.get("is_causal")
        if is_causal is None:
            is_causal = getattr(module, "is_causal", False)
        mask = additive_mask(attention_mask, query, key, is_causal)
        scaling = kwargs.get("scaling") or query.shape[-1] ** -0.5
        logits, weights = plan
        out = attention_with_dropout(
            query, key, value, mask, scaling, logits, weights, kwargs.get("dropout", 0.0)
        )
        return out, None

    return hk_tune_attention


def _register(original: str) -> str:
    """Registers the dropout attention for `original` in this process (Ray workers included)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    name = f"hk_tune_{original}"
    AttentionInterface.register(name, _attention_function(original))
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[original])
    return name


def _head(base: nn.Module) -> nn.Module:
    """The module whose input is the final representation (the `output` position)."""
    for name in _HEADS:
        head = getattr(base, name, None)
        if head is None:
            continue
        if hasattr(head, "modules_to_save"):  # peft trains a copy of the head; use the active one
            head = head.modules_to_save[head.active_adapters[0]]
        # RoBERTa-style heads take every token but classify the first: the input of their
        # `dense` layer is that token's vector.
        return getattr(head, "dense", head)
    raise ConfigError(f"output dropout: no head among {list(_HEADS)} on this model")


def _architecture(config) -> Architecture:
    arch = ARCHITECTURES.get(config.model_type)
    if arch is None:
        raise ConfigError(
            f"model_type {config.model_type!r} is not supported by hk_tune dropout; "
            f"supported: {sorted(ARCHITECTURES)}"
        )
    return arch


def _active_layers(spec: DropoutSpec, n_layers: int, decoder: bool) -> tuple[int, ...]:
    layers = spec.layers
    if layers == "auto":
        layers = "latter_half" if decoder else "all"
    if layers == "all":
        return tuple(range(n_layers))
    if layers == "latter_half":
        return tuple(range(n_layers // 2, n_layers))
    if max(layers) >= n_layers:
        raise ConfigError(f"layers: {list(layers)} out of range; the model has {n_layers} layers")
    return tuple(layers)


def _prefix_length(spec: DropoutSpec, active: tuple[int, ...], n_layers: int) -> int:
    """How many leading blocks compute the same thing in every training pass."""
    if spec.stock_dropout or spec.input.active:
        return 0
    if spec.touches_attention or spec.ffn_hidden.active:
        return min(active)
    return n_layers


class Attachment:
    """A spec attached to a model. `remove()` restores the model exactly.

    Attributes:
        spec: the attached DropoutSpec.
        layers: the model's blocks, in order.
        active_layers: indices of the blocks whose attention / FFN positions drop.
        prefix_length: number of leading blocks with no randomness in training, which two
            passes over the same batch may share (see `hk_tune.dropout.step`).
    """

    def __init__(self, model: nn.Module, spec: DropoutSpec):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        if getattr(base, _ATTACHED, None) is not None:
            raise RuntimeError("a DropoutSpec is already attached to this model; remove() it first")
        arch = _architecture(base.config)
        backbone = base.base_model
        self.spec = spec
        self.layers: nn.ModuleList = backbone.get_submodule(arch.layers)
        self.active_layers = _active_layers(spec, len(self.layers), arch.decoder)
        self.prefix_length = _prefix_length(spec, self.active_layers, len(self.layers))
        self._base = base
        self._hooks: list[torch.utils.hooks.RemovableHandle] = []
        self._saved: list[tuple[object, str, object]] = []
        self._valid_tokens: torch.Tensor | None = None
        self._original_attention = base.config._attn_implementation

        if not spec.stock_dropout:
            self._zero_stock_dropout(model)
        self._hooks.append(self._capture_padding(backbone))
        for i in self.active_layers:
            block = self.layers[i]
            if spec.ffn_hidden.active:
                ffn = block.get_submodule(arch.ffn_output)
                self._hooks.append(ffn.register_forward_hook(self._output_hook(spec.ffn_hidden)))
            if spec.touches_attention:
                attention = block.get_submodule(arch.attention)
                self._set(attention, _PLAN, (spec.attn_logits, spec.attn_weights))
        if spec.input.active:
            hook = self._input_hook(spec.input)
            self._hooks.append(self.layers[0].register_forward_pre_hook(hook, with_kwargs=True))
        if spec.output.active:
            head = _head(base)
            self._hooks.append(head.register_forward_pre_hook(self._input_hook(spec.output)))
        if spec.touches_attention:
            base.set_attn_implementation(_register(self._original_attention))
        setattr(base, _ATTACHED, self)

    def remove(self) -> None:
        """Detaches everything: hooks, attention function, zeroed dropouts."""
        for hook in self._hooks:
            hook.remove()
        for obj, name, value in reversed(self._saved):
            if value is _MISSING:
                delattr(obj, name)
            else:
                setattr(obj, name, value)
        if self._base.config._attn_implementation != self._original_attention:
            self._base.set_attn_implementation(self._original_attention)
        delattr(self._base, _ATTACHED)
        self._hooks, self._saved = [], []

    def _set(self, obj: object, name: str, value: object) -> None:
        self._saved.append((obj, name, getattr(obj, name, _MISSING)))
        setattr(obj, name, value)

    def _zero_stock_dropout(self, model: nn.Module) -> None:
        """One source of dropout per run (docs/design.md 2.1): the backbone's dropouts (hidden,
        attention, classifier) and peft's lora_dropout go to 0."""
        for module in model.modules():
            if isinstance(module, nn.Dropout) and module.p > 0:
                self._set(module, "p", 0.0)
            # LLaMA-style attention passes a float attribute, not an nn.Dropout.
            if isinstance(getattr(module, "attention_dropout", None), float):
                self._set(module, "attention_dropout", 0.0)

    def _capture_padding(self, backbone: nn.Module) -> torch.utils.hooks.RemovableHandle:
        """Hidden positions need to know padding; the backbone's `attention_mask` tells."""
        names = list(inspect.signature(backbone.forward).parameters)
        index = names.index("attention_mask") if "attention_mask" in names else None

        def capture(module, args, kwargs):
            mask = kwargs.get("attention_mask")
            if mask is None and index is not None and len(args) > index:
                mask = args[index]
            self._valid_tokens = mask if mask is not None and mask.dim() == 2 else None

        return backbone.register_forward_pre_hook(capture, with_kwargs=True)

    def _output_hook(self, entry: PositionSpec) -> Callable:
        def hook(module, inputs, output):
            return drop_hidden(output, entry, self._valid_tokens) if module.training else output

        return hook

    def _input_hook(self, entry: PositionSpec) -> Callable:
        """Drops the first positional (or `hidden_states`) input of a block or head."""

        def hook(module, args, kwargs=None):
            if not module.training:
                return None
            if args:
                args = (drop_hidden(args[0], entry, self._valid_tokens), *args[1:])
            elif kwargs is not None and "hidden_states" in kwargs:
                kwargs = {**kwargs, "hidden_states": drop_hidden(
                    kwargs["hidden_states"], entry, self._valid_tokens)}
            return (args, kwargs) if kwargs is not None else args

        return hook


_MISSING = object()


def attach(model: nn.Module, spec: DropoutSpec) -> Attachment:
    """Attaches `spec` to a transformers model or a peft model wrapping one.

    Call after `peft.get_peft_model` and before DDP / `ray.train.torch.prepare_model`. Registers
    the attention function in this process, so call it in every worker.

    Returns:
        The `Attachment`; its `remove()` restores the model bit for bit.
    """
    return Attachment(model, spec)
