"""What fusion leaves for after a layer's kernel, applied in place on its output: a fused residual (a Convolution
that absorbed the Add after it adds its last input, `params["fused_residual"]`), then the fused activation.

ReLU and Clip, the activations fused most often, run in place with no temporary; the others go through the
ACTIVATION kernel. Tactics that do either themselves (an epilogue) say so with `fuses_residual` /
`fuses_activation`, and the runtime then leaves it to them."""
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


def residual_input(layer: Any) -> int | None:
    """Index of the input a layer adds to its output after its kernel (a fused residual), or None."""
    return len(layer.inputs) - 1 if layer.params.get("fused_residual") else None


def pending_post_ops(tactic: Any, layer: Any) -> tuple[int | None, dict[str, Any] | None]:
    """(residual input index, fused activation) left to apply after `tactic` ran `layer`: what it does not fuse."""
    residual = None if tactic.fuses_residual else residual_input(layer)
    activation = None if tactic.fuses_activation else layer.params.get("fused_activation")
    return residual, activation


def apply_post_ops(out, residual, activation: dict[str, Any] | None, xp) -> None:
    """out += residual (when given), then the fused activation (when given), in place."""
    if residual is not None:
        xp.add(out, residual, out=out, casting="unsafe")
    if activation is not None:
        apply_fused_activation(out, activation, xp)


def apply_fused_activation(out, params: dict[str, Any], xp) -> None:
    kind = params["activation_type"]
    if kind == ActivationType.RELU:
        xp.maximum(out, 0, out=out)
    elif kind == ActivationType.CLIP:
        xp.clip(out, params["alpha"], params["beta"], out=out)
    else:
        (result,) = layer_impl(LayerType.ACTIVATION).compute(_ActivationParams(params), [out], xp)
        xp.copyto(out, result, casting="unsafe")
