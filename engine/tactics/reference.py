"""The reference tactic: a layer type's registered `compute` kernel, available for every layer type on every
backend. Heavier layer types add faster tactics in cpu_*.py / gpu_*.py modules."""
from __future__ import annotations

from typing import Any

from ..dtypes import DataType
from ..enums import LayerType
from .base import Tactic, TacticContext


def upcast_half(arrays: list[Any], xp: Any) -> list[Any]:
    """FP16 layers read float16 tensors but accumulate in float32, the way tensor cores do."""
    return [a.astype(xp.float32) if a is not None and getattr(a, "dtype", None) == xp.float16 else a
            for a in arrays]


class ReferenceTactic(Tactic):
    heuristic_rank = 50

    def __init__(self, layer_type: LayerType, backend: str):
        self.layer_type = LayerType(layer_type)
        self.backend = backend
        self.name = f"{backend}_reference_{self.layer_type.value.lower()}"
        self.id = 0

    def prepare(self, ctx: TacticContext) -> Any:
        from ..ops.base import layer_impl

        return (ctx.layer, layer_impl(self.layer_type).compute, ctx.layer.precision == DataType.HALF)

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        layer, compute, half = state
        results = compute(layer, upcast_half(inputs, xp) if half else inputs, xp)
        for out, result in zip(outputs, results):
            if out is not None:
                xp.copyto(out, result, casting="unsafe")
