"""A node's epilogue: what fusion appended after the node's own computation, as a typed value.

Fusion rules fill it (a convolution that absorbed the residual Add after it, a producer that absorbed the
activation after it); a tactic says which parts it does itself (`Tactic.absorbs`) and `apply_epilogue` does the
rest in place on the output, in a fixed order: residual first, then activation. Bias is not part of it: a bias is
an operand of the layer itself (Conv's bias, Gemm's C), which every tactic of that layer handles.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..enums import ActivationType, LayerType
from ..ops.base import layer_impl

# Names of the parts a tactic may absorb (Tactic.absorbs).
RESIDUAL = "residual"
ACTIVATION = "activation"
PARTS = frozenset({RESIDUAL, ACTIVATION})


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
    """`residual`: position of the node input added to its output; `activation`: applied after that."""

    residual: int | None = None
    activation: Activation | None = None

    @property
    def empty(self) -> bool:
        return self.residual is None and self.activation is None

    def parts(self) -> frozenset[str]:
        present = set()
        if self.residual is not None:
            present.add(RESIDUAL)
        if self.activation is not None:
            present.add(ACTIVATION)
        return frozenset(present)

    def without(self, absorbed: frozenset[str]) -> Epilogue:
        """What is left to apply after a tactic that does the `absorbed` parts itself."""
        return replace(self, residual=None if RESIDUAL in absorbed else self.residual,
                       activation=None if ACTIVATION in absorbed else self.activation)

    def to_json(self) -> dict[str, Any]:
        activation = None if self.activation is None else {
            "type": self.activation.type.value, "alpha": self.activation.alpha, "beta": self.activation.beta}
        return {"residual": self.residual, "activation": activation}

    @staticmethod
    def from_json(data: Any, what: str) -> Epilogue:
        """Validated field by field: plans are user files."""
        if not isinstance(data, dict) or set(data) != {"residual", "activation"}:
            raise ValueError(f"{what}: epilogue must be an object with 'residual' and 'activation', got {data!r}")
        residual, activation = data["residual"], data["activation"]
        if residual is not None and (not isinstance(residual, int) or isinstance(residual, bool) or residual < 0):
            raise ValueError(f"{what}: epilogue residual must be an input position or null, got {residual!r}")
        if activation is not None:
            if not isinstance(activation, dict) or set(activation) != {"type", "alpha", "beta"}:
                raise ValueError(f"{what}: epilogue activation must have type, alpha and beta, got {activation!r}")
            if not all(isinstance(activation[k], (int, float)) for k in ("alpha", "beta")):
                raise ValueError(f"{what}: epilogue activation alpha/beta must be numbers, got {activation!r}")
            activation = Activation(ActivationType(activation["type"]), activation["alpha"], activation["beta"])
        return Epilogue(residual, activation)


NO_EPILOGUE = Epilogue()


class _ActivationLayer:
    """The minimal layer-like object the ACTIVATION kernel reads its parameters from."""

    type = LayerType.ACTIVATION

    def __init__(self, activation: Activation):
        self.params = activation.params


def apply_epilogue(epilogue: Epilogue, out: Any, inputs: list[Any], xp: Any) -> None:
    """out += inputs[residual], then the activation, in place. ReLU and Clip (the activations fused most often)
    need no temporary; the others go through the ACTIVATION layer's kernel."""
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
