"""Applying a fused activation in place on a layer's output (set by the builder's activation fusion).

ReLU and Clip, the activations fused most often, run in place with no temporary; the others go through the
ACTIVATION kernel."""
from __future__ import annotations

from typing import Any

from ..enums import ActivationType, LayerType
from .base import layer_impl


class _ActivationParams:
    """The minimal layer-like object the ACTIVATION kernel reads its parameters from."""

    type = LayerType.ACTIVATION

    def __init__(self, params: dict[str, Any]):
        self.params = params

    def __getattr__(self, key: str) -> Any:
        try:
            return self.params[key]
        except KeyError:
            raise AttributeError(key) from None


def apply_fused_activation(out, params: dict[str, Any], xp) -> None:
    kind = params["activation_type"]
    if kind == ActivationType.RELU:
        xp.maximum(out, 0, out=out)
    elif kind == ActivationType.CLIP:
        xp.clip(out, params["alpha"], params["beta"], out=out)
    else:
        (result,) = layer_impl(LayerType.ACTIVATION).compute(_ActivationParams(params), [out], xp)
        xp.copyto(out, result, casting="unsafe")
