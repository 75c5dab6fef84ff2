"""Fused pointwise layers (LayerType.POINTWISE, TensorRT's PointWise): a chain or tree of elementwise, activation
and unary layers that the pointwise-fusion pass (passes/pointwise_fusion.py) merged into one layer, so the GPU runs
it as one generated kernel (tactics/gpu_fused_pointwise.py) instead of one launch and one round trip through memory
per op.

params `program`: the steps in order, each {"layer": ELEMENTWISE|ACTIVATION|UNARY, "params": {...the layer's own
params, enums as their names...}, "args": [ref, ...]}, where a ref is ["input", i] (the layer's input i) or
["step", j] (an earlier step's result); the last step's result is the output. Every input broadcasts to the output
shape, as the layers it replaces did. The reference kernel runs each step with that layer type's own kernel, in
float32 for HALF layers, so the result equals the unfused layers' up to the rounding of intermediates.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ..dtypes import DataType
from ..enums import ActivationType, ElementWiseOperation, LayerType, UnaryOperation
from ..errors import EngineError
from .base import broadcast_shapes, layer_impl, register_layer

# The ops a POINTWISE step may hold: float in, float out, one value per element.
STEP_OPS: dict[LayerType, tuple[str, type]] = {
    LayerType.ELEMENTWISE: ("op", ElementWiseOperation),
    LayerType.ACTIVATION: ("activation_type", ActivationType),
    LayerType.UNARY: ("op", UnaryOperation),
}
STEP_ARITY = {LayerType.ELEMENTWISE: 2, LayerType.ACTIVATION: 1, LayerType.UNARY: 1}


def step_layer(layer, index: int, step: Any, num_inputs: int) -> SimpleNamespace:
    """One step as the layer its kernel expects (type, name, params with enums), after checking it: a plan's
    program is validated here before anything runs."""
    where = f"layer '{layer.name}' program step {index}"
    if not isinstance(step, dict) or not isinstance(step.get("params"), dict) or not isinstance(step.get("args"),
                                                                                                 list):
        raise EngineError(f"{where}: expected {{layer, params, args}}, got {step!r:.80}")
    try:
        layer_type = LayerType(step.get("layer"))
        key, enum = STEP_OPS[layer_type]
        params = dict(step["params"])
        params[key] = enum(params[key])
    except (ValueError, KeyError) as exc:
        raise EngineError(f"{where}: not a pointwise step ({exc})") from None
    if len(step["args"]) != STEP_ARITY[layer_type]:
        raise EngineError(f"{where}: {layer_type.value} takes {STEP_ARITY[layer_type]} argument(s), the program gives "
                          f"{len(step['args'])}")
    for ref in step["args"]:
        if not (isinstance(ref, list) and len(ref) == 2 and ref[0] in ("input", "step") and isinstance(ref[1], int)
                and 0 <= ref[1] < (num_inputs if ref[0] == "input" else index)):
            raise EngineError(f"{where}: argument {ref!r} is not an input of the layer or an earlier step")
    return SimpleNamespace(type=layer_type, name=f"{layer.name}/{index}", params=params,
                           precision=getattr(layer, "precision", DataType.FLOAT))


def _steps(layer, num_inputs: int) -> list[tuple[SimpleNamespace, list]]:
    program = layer.params.get("program")
    if not isinstance(program, list) or not program:
        raise EngineError(f"layer '{layer.name}': POINTWISE needs a non-empty program")
    return [(step_layer(layer, i, step, num_inputs), step["args"]) for i, step in enumerate(program)]


def _infer(layer, inputs):
    _steps(layer, len(inputs))
    dtypes = {x.dtype for x in inputs}
    if len(dtypes) != 1 or not next(iter(dtypes)).is_floating:
        raise EngineError(f"layer '{layer.name}': POINTWISE inputs must share one floating type, got "
                          f"{sorted(d.value for d in dtypes)}")
    return [(broadcast_shapes(*(x.shape for x in inputs)), inputs[0].dtype)]


def _compute(layer, inputs, xp):
    results: list[Any] = []
    for step, args in _steps(layer, len(inputs)):
        operands = [inputs[i] if kind == "input" else results[i] for kind, i in args]
        results.append(layer_impl(step.type).compute(step, operands, xp)[0])
    out = results[-1]
    shape = broadcast_shapes(*(x.shape for x in inputs))
    return [xp.broadcast_to(out, shape) if tuple(out.shape) != tuple(shape) else out]


register_layer(LayerType.POINTWISE, _infer, _compute)
