"""A node's epilogue: what fusion appended after the node's own computation, as a typed value.

Fusion rules fill it (a convolution that absorbed the residual Add after it, a producer that absorbed the
activation after it); a tactic says which parts it does itself (`Tactic.absorbs`) and `apply_epilogue` does the
rest in place on the output, in a fixed order: residual first, then activation, then (INT8 layers) quantization
of the output by `output_scale`. Bias is not part of it: a bias is an operand of the layer itself (Conv's bias,
Gemm's C), which every tactic of that layer handles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..enums import ActivationType, LayerType
from ..ops.base import layer_impl

# Names of the parts a tactic may absorb (Tactic.absorbs).
RESIDUAL = "residual"
ACTIVATION = "activation"
OUTPUT_SCALE = "output_scale"
PARTS = frozenset({RESIDUAL, ACTIVATION, OUTPUT_SCALE})


@dataclass
class Activation:
    """An activation applied to a node's output (ActivationType with its alpha/beta, as add_activation takes)."""

    type: ActivationType
    alpha: float = 0.0
    beta: float = 0.0

    def __post_init__(self) -> None:
        self.type = ActivationType(self.type)
        self.alpha, self.beta = float(self.alpha), float(self.beta)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters the ACTIVATION layer's kernel reads (so the epilogue reuses that kernel)."""
        return {"activation_type": self.type, "alpha": self.alpha, "beta": self.beta}


@dataclass(frozen=True)
class Epilogue:
    """`residual`: position of the node input added to its output; `activation`: applied after that;
    `output_scale`: the output is quantized to INT8 by it (a QuantizeLinear the INT8 layer absorbed)."""

    residual: int | None = None
    activation: Activation | None = None
    output_scale: float | None = None

    @property
    def empty(self) -> bool:
        return not self.parts()

    def parts(self) -> frozenset[str]:
        present = {RESIDUAL: self.residual, ACTIVATION: self.activation, OUTPUT_SCALE: self.output_scale}
        return frozenset(name for name, value in present.items() if value is not None)

    def without(self, absorbed: frozenset[str]) -> Epilogue:
        """What is left to apply after a tactic that does the `absorbed` parts itself."""
        return replace(self, residual=None if RESIDUAL in absorbed else self.residual,
                       activation=None if ACTIVATION in absorbed else self.activation,
                       output_scale=None if OUTPUT_SCALE in absorbed else self.output_scale)

    def to_json(self) -> dict[str, Any]:
        activation = None if self.activation is None else {
            "type": self.activation.type.value, "alpha": self.activation.alpha, "beta": self.activation.beta}
        return {"residual": self.residual, "activation": activation, "output_scale": self.output_scale}

    @staticmethod
    def from_json(data: Any, what: str) -> Epilogue:
        """Validated field by field: plans are user files."""
        if not isinstance(data, dict) or set(data) != {"residual", "activation", "output_scale"}:
            raise ValueError(f"{what}: epilogue must be an object with 'residual', 'activation' and 'output_scale', "
                             f"got {data!r}")
        residual, activation, output_scale = data["residual"], data["activation"], data["output_scale"]
        if output_scale is not None and (not isinstance(output_scale, (int, float)) or isinstance(output_scale, bool)
                                         or not math.isfinite(output_scale) or output_scale <= 0):
            raise ValueError(f"{what}: epilogue output_scale must be a positive finite number or null, "
                             f"got {output_scale!r}")
        if residual is not None and (not isinstance(residual, int) or isinstance(residual, bool) or residual < 0):
            raise ValueError(f"{what}: epilogue residual must be an input position or null, got {residual!r}")
        if activation is not None:
            if not isinstance(activation, dict) or set(activation) != {"type", "alpha", "beta"}:
                raise ValueError(f"{what}: epilogue activation must have type, alpha and beta, got {activation!r}")
            if not all(isinstance(activation[k], (int, float)) for k in ("alpha", "beta")):
                raise ValueError(f"{what}: epilogue activation alpha/beta must be numbers, got {activation!r}")
            activation = Activation(ActivationType(activation["type"]), activation["alpha"], activation["beta"])
        return Epilogue(residual, activation, None if output_scale is None else float(output_scale))


NO_EPILOGUE = Epilogue()


class _ActivationLayer:
    """The minimal layer-like object the ACTIVATION kernel reads its parameters from."""

    type = LayerType.ACTIVATION

    def __init__(self, activation: Activation):
        self.params = activation.params


def apply_epilogue(epilogue: Epilogue, out: Any, inputs: list[Any], xp: Any) -> None:
    """out += inputs[residual], then the activation, in place. ReLU and Clip (the activations fused most often)
    need no temporary; the others go through the ACTIVATION layer's kernel. Output quantization needs the float
    result before it is stored as INT8, so only an INT8 tactic can do it (it absorbs `output_scale`)."""
    if epilogue.output_scale is not None:
        raise ValueError("an INT8 output scale can only be applied by the INT8 tactic that computes the layer")
    if epilogue.residual is not None:
        xp.add(out, inputs[epilogue.residual], out=out, casting="unsafe")
    activation = epilogue.activation
    if activation is None:
        return
    if activation.type == ActivationType.RELU:
        xp.maximum(out, 0, out=out)
    elif activation.type == ActivationType.CLIP:
        xp.clip(out, activation.alpha, activation.beta, out=out)
    else:
        (result,) = layer_impl(LayerType.ACTIVATION).compute(_ActivationLayer(activation), [out], xp)
        xp.copyto(out, result, casting="unsafe")
