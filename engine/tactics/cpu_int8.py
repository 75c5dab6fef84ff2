"""INT8 convolution and matrix multiply: quantized operands, exact int32 accumulation, float epilogue, requantized
output (the layers the int8_fusion rule makes).

The accumulation runs as a float64 GEMM/convolution of the integer values: every partial sum of int8 x int8
products is an integer below 2**53, so float64 holds it exactly — the same sums an int32 accumulator holds, at
BLAS speed. Then: y = acc * input_scale * weight_scale[channel] + bias, the residual and activation of the
epilogue (an INT8 residual dequantized first: q * residual_scale, as its DequantizeLinear computed it), and, when
the layer absorbed a QuantizeLinear, q = saturate(round_half_even(y / output_scale)).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from ..ir.epilogue import ACTIVATION, OUTPUT_SCALE, RESIDUAL, apply_epilogue
from ..ops.conv import conv_reference
from .base import Tactic, TacticContext
from .registry import register_tactic

INT8_MIN, INT8_MAX = -128, 127


class Int8Tactic(Tactic):
    """Shared plumbing; subclasses give the accumulation and the axis the weight scales run along."""

    runs_int8 = True
    absorbs = frozenset({RESIDUAL, ACTIVATION, OUTPUT_SCALE})
    heuristic_rank = 10

    def __init__(self, layer_type: LayerType, backend: str):
        self.layer_type = layer_type
        self.backend = backend
        self.name = f"{backend}:{layer_type.value.lower()}:int8_exact"
        self.capturable = backend == "cpu"  # CuPy's GEMM wrappers refuse CUDA-graph capture

    def supports(self, ctx: TacticContext) -> bool | str:
        if "int8" not in ctx.layer.params or ctx.inputs[0].dtype != DataType.INT8:
            return "not an INT8 layer"
        if ctx.inputs[1].value is None or ctx.inputs[1].dtype != DataType.INT8:
            return "the weights are not INT8 constants"
        return True

    def prepare(self, ctx: TacticContext) -> dict[str, Any]:
        quantization = ctx.layer.params["int8"]
        bias = ctx.inputs[2].value if len(ctx.inputs) > 2 and ctx.inputs[2] is not None else None
        scales = quantization["input_scale"] * np.asarray(quantization["weight_scales"], np.float64)
        return {"layer": ctx.layer, "weights": np.asarray(ctx.inputs[1].value, np.float64), "scales": scales,
                "bias": None if bias is None else np.asarray(bias, np.float64),
                "rest": ctx.epilogue.without(frozenset({OUTPUT_SCALE})), "output_scale": ctx.epilogue.output_scale,
                "residual_scale": quantization.get("residual_scale"), "device": {}}

    def _on_device(self, state: dict, xp: Any) -> tuple[Any, Any, Any]:
        """Weights, scales and bias as arrays of `xp` (copied to the GPU once)."""
        cached = state["device"].get(xp.__name__)
        if cached is None:
            cached = state["device"][xp.__name__] = tuple(None if a is None else xp.asarray(a) for a in (
                state["weights"], state["scales"], state["bias"]))
        return cached

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        weights, scales, bias = self._on_device(state, xp)
        y = self.accumulate(state["layer"], inputs[0].astype(xp.float64), weights, xp)
        y *= self.along_channels(scales, y.ndim)
        if bias is not None:
            y += self.along_channels(bias, y.ndim)
        if not state["rest"].empty:
            if state["residual_scale"] is not None:  # an INT8 residual (int8_residual rule): dequantized here
                inputs = list(inputs)
                position = state["rest"].residual
                inputs[position] = inputs[position].astype(xp.float32) * xp.float32(state["residual_scale"])
            apply_epilogue(state["rest"], y, inputs, xp)
        if state["output_scale"] is not None:
            y = xp.clip(xp.rint(y / state["output_scale"]), INT8_MIN, INT8_MAX)
        xp.copyto(outputs[0], y, casting="unsafe")

    def accumulate(self, layer: Any, x: Any, weights: Any, xp: Any) -> Any:
        raise NotImplementedError

    def along_channels(self, values: Any, rank: int) -> Any:
        raise NotImplementedError


class Int8Convolution(Int8Tactic):
    def accumulate(self, layer, x, weights, xp):
        return conv_reference(x, weights, None, layer, xp)

    def along_channels(self, values, rank):
        return values.reshape((-1,) + (1,) * (rank - 2))  # NC... layout: channels on axis 1


class Int8Matmul(Int8Tactic):
    def accumulate(self, layer, x, weights, xp):
        return xp.matmul(x, weights)

    def along_channels(self, values, rank):
        return values  # output columns are the last axis


for _backend in ("cpu", "gpu"):
    register_tactic(Int8Convolution(LayerType.CONVOLUTION, _backend))
    register_tactic(Int8Matmul(LayerType.MATRIX_MULTIPLY, _backend))
