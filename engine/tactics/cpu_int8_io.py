"""INT8 layers that are not GEMMs or convolutions (the int8_io rule of passes/qdq_propagation.py makes them):
an ElementWise, Activation, Pooling or Concatenation layer that reads INT8 tensors and writes one INT8 tensor.

What the Q/DQ layers it replaced computed, in one pass: every quantized input is dequantized (q * scale, in
float32 as onnxruntime's DequantizeLinear does), the layer's own kernel runs in float32, its epilogue (a fused
activation) follows, and the result is requantized: saturate(round_half_even(y / output_scale)).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from ..ir.epilogue import OUTPUT_SCALE, apply_epilogue
from .base import Tactic, TacticContext
from .cpu_int8 import INT8_MAX, INT8_MIN
from .registry import register_tactic

INT8_IO_LAYERS = (LayerType.ELEMENTWISE, LayerType.ACTIVATION, LayerType.POOLING, LayerType.CONCATENATION,
                  LayerType.SCALE)


class Int8IoTactic(Tactic):
    runs_int8 = True
    absorbs = frozenset({OUTPUT_SCALE})
    heuristic_rank = 10

    def __init__(self, layer_type: LayerType, backend: str):
        self.layer_type = layer_type
        self.backend = backend
        self.name = f"{backend}:{layer_type.value.lower()}:int8_io"

    def supports(self, ctx: TacticContext) -> bool | str:
        quantization = ctx.layer.params.get("int8")
        if not isinstance(quantization, dict) or "input_scales" not in quantization:
            return "not an INT8 layer with quantized inputs"
        if ctx.epilogue.output_scale is None:
            return "the layer has no output scale"
        for info, scale in zip(ctx.inputs, quantization["input_scales"]):
            if scale is not None and (info is None or info.dtype != DataType.INT8):
                return "an input with a scale is not INT8"
        return True

    def prepare(self, ctx: TacticContext) -> dict[str, Any]:
        from ..ops.base import layer_impl

        return {"layer": ctx.layer, "compute": layer_impl(self.layer_type).compute,
                "scales": [None if s is None else np.float32(s) for s in ctx.layer.params["int8"]["input_scales"]],
                "rest": ctx.epilogue.without(frozenset({OUTPUT_SCALE})),
                "output_scale": np.float32(ctx.epilogue.output_scale)}

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        floats = [a if s is None or a is None else a.astype(xp.float32) * s for a, s in zip(inputs, state["scales"])]
        (y,) = state["compute"](state["layer"], floats, xp)
        y = xp.array(y, dtype=xp.float32)
        if not state["rest"].empty:
            apply_epilogue(state["rest"], y, floats, xp)
        xp.copyto(outputs[0], xp.clip(xp.rint(y / state["output_scale"]), INT8_MIN, INT8_MAX), casting="unsafe")


for _backend in ("cpu", "gpu"):
    for _type in INT8_IO_LAYERS:
        register_tactic(Int8IoTactic(_type, _backend))
