"""The reference tactic: a layer type's registered `compute` kernel, available for every layer type on every
backend. Heavier layer types add faster tactics in cpu_*.py / gpu_*.py modules."""
from __future__ import annotations

from typing import Any

from ..dtypes import DataType
from ..enums import LayerType, TensorFormat, UnaryOperation
from ..ops.math_helpers import upcast_bfloat16, upcast_half
from .base import Tactic, TacticContext

# Layers that only move, select or compare values: exact in float16, so HALF layers skip the float32 round trip
# (on the GPU that is two extra passes over every tensor).
EXACT_IN_HALF = frozenset({
    LayerType.SHUFFLE, LayerType.SLICE, LayerType.CONCATENATION, LayerType.SPLIT, LayerType.GATHER,
    LayerType.EXPAND, LayerType.TILE, LayerType.SELECT, LayerType.PADDING, LayerType.IDENTITY,
    LayerType.DEPTH_TO_SPACE, LayerType.SPACE_TO_DEPTH, LayerType.REVERSE_SEQUENCE, LayerType.TRILU})
EXACT_UNARY_IN_HALF = frozenset({UnaryOperation.ISNAN, UnaryOperation.ISINF, UnaryOperation.ABS, UnaryOperation.NEG,
                                 UnaryOperation.SIGN})
# Reference kernels that go through xp.matmul / xp.einsum: on the GPU that is CuPy's cuBLAS wrapper, which refuses
# to run while a stream is capturing a CUDA graph.
_CALLS_CUPY_BLAS = frozenset({LayerType.MATRIX_MULTIPLY, LayerType.CONVOLUTION, LayerType.DECONVOLUTION,
                              LayerType.EINSUM, LayerType.RNN_V2, LayerType.ATTENTION})
# Reference kernels that index their arrays only through NumPy/CuPy operations, so they compute the same on a
# channels-last view (engine/tensor_formats.py) as on a LINEAR array; they run HWC layers on that backend.
_RUNS_CHANNELS_LAST = {
    "cpu": frozenset({LayerType.CONVOLUTION, LayerType.POOLING, LayerType.ACTIVATION, LayerType.ELEMENTWISE,
                      LayerType.POINTWISE, LayerType.REFORMAT}),
    "gpu": frozenset({LayerType.CONVOLUTION, LayerType.POOLING, LayerType.ACTIVATION, LayerType.ELEMENTWISE,
                      LayerType.POINTWISE, LayerType.REFORMAT}),
}
# (On the GPU the channels-last pass forms chains only where a tactic other than these runs HWC; these are the
# fallback for a layer variant those refuse, a windowed average pooling say, so an HWC layer always has a tactic.)
# Control-flow kernels read their condition or trip count back to the host, which a capture cannot record.
_READS_DEVICE_VALUES_ON_HOST = frozenset({LayerType.CONDITIONAL, LayerType.LOOP})


def computes_in_float32(layer) -> bool:
    """Whether a HALF layer's reference kernel must widen its float16 inputs first."""
    if layer.precision != DataType.HALF or layer.type in EXACT_IN_HALF:
        return False
    return not (layer.type == LayerType.UNARY and UnaryOperation(layer.params["op"]) in EXACT_UNARY_IN_HALF)


class ReferenceTactic(Tactic):
    heuristic_rank = 50
    is_fallback = True

    def __init__(self, layer_type: LayerType, backend: str):
        self.layer_type = LayerType(layer_type)
        self.backend = backend
        self.name = f"{backend}_reference_{self.layer_type.value.lower()}"
        self.id = 0
        self.capturable = backend != "gpu" or self.layer_type not in _CALLS_CUPY_BLAS | _READS_DEVICE_VALUES_ON_HOST
        if self.layer_type in _RUNS_CHANNELS_LAST.get(backend, ()):
            self.formats = frozenset({TensorFormat.LINEAR, TensorFormat.HWC})

    def supports(self, ctx: TacticContext) -> bool | str:
        if self.layer_type == LayerType.PLUGIN_V2:
            return "plugin layers run through their plugin's own tactics (tactics/plugin_tactic.py)"
        return True

    def prepare(self, ctx: TacticContext) -> Any:
        from ..ops.base import layer_impl

        impl = layer_impl(self.layer_type)
        return (ctx.layer, impl.compute, computes_in_float32(ctx.layer), not impl.static_output_shape)

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        layer, compute, half, data_dependent = state
        inputs = [upcast_bfloat16(a) for a in inputs]  # bfloat16 always computes in float32 (math_helpers.py)
        results = compute(layer, [upcast_half(a, xp) for a in inputs] if half else inputs, xp)
        if data_dependent:  # sized by the data: the step stores these arrays themselves (steps.py)
            outputs[:] = results
            return
        for out, result in zip(outputs, results):
            if out is not None:
                xp.copyto(out, result, casting="unsafe")
