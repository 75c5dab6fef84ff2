"""Eager execution: run a network whose shapes are known only while it runs, layer by layer.

A loop with a data-dependent trip count (an ONNX Loop's `cond`) stacks as many scan values as it runs iterations,
and a conditional whose branches give different shapes decides its output shape by its condition: no shape of
what follows is known before that layer has run, so the ExecutionContext cannot plan one arena and one step
list ahead. Such engines run here instead: each layer's output shapes are inferred from its inputs' actual
shapes (and host values) just before it runs, its outputs are allocated then, and it runs through the tactic the
builder chose (control-flow and data-dependent layers such as NonZero through their kernel, which returns its
outputs). The builder's tactic sweep
uses `trial_shapes` to learn the shapes at its opt-shape sample inputs in the same way.

Only networks with a control-flow layer take this path: always when they also hold a data-dependent layer (NonZero,
NMS), else when planning their shapes fails. Data-dependent layers without control flow run in stages instead
(engine/binding.py; docs/dynamic-shapes.md).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .bfloat16 import storage_dtype
from .dtypes import DataType, nptype
from .enums import LayerType
from .errors import EngineError, ExecutionError
from .evaluator import compute_host_layer, output_infos
from .graph import LoweredGraph, ResolvedShapes, tactic_context
from .ir.epilogue import OUTPUT_SCALE, apply_epilogue
from .ops.base import TensorInfo, layer_impl
from .steps import make_step, run_step
from .subgraph import CONTROL_FLOW_TYPES
from .tactics.reference import ReferenceTactic
from .tensor_formats import empty_in_format


def has_control_flow(graph: LoweredGraph) -> bool:
    return any(spec.layer.type in CONTROL_FLOW_TYPES for spec in graph.layers)


def run_eagerly(graph: LoweredGraph, states: list[Any] | None, device: str, backend: Any, inputs: dict[int, Any],
                input_values: dict[int, np.ndarray], device_constants: dict[int, Any] | None = None
                ) -> tuple[list[Any], list[tuple[int, ...] | None], dict[int, np.ndarray]]:
    """Run every layer in order on `inputs` (device arrays by tensor index) and the shape inputs' host values.
    `states`: per layer the (tactic, prepared state) to run it with; None runs every device layer through its
    reference kernel (the builder's shape trial). Returns (tensor slots, their shapes, host values)."""
    xp = backend.xp
    count = len(graph.tensors)
    slots: list[Any] = [None] * count
    shapes: list[tuple[int, ...] | None] = [None] * count
    host: dict[int, np.ndarray] = {}
    for index, array in graph.constants.items():
        host[index] = array
        slots[index] = device_constants[index] if device_constants and index in device_constants else \
            backend.to_device(array)
        shapes[index] = tuple(array.shape)
    for index, array in inputs.items():
        slots[index], shapes[index] = array, tuple(array.shape)
    for index, value in input_values.items():
        host[index] = np.asarray(value)
        slots[index], shapes[index] = backend.to_device(host[index]), tuple(host[index].shape)
    for position, spec in enumerate(graph.layers):
        layer = spec.layer
        if layer.type == LayerType.CONSTANT:
            continue
        infos = [None if i is None else TensorInfo(shapes[i], graph.tensors[i].dtype, host.get(i))
                 for i in spec.inputs]
        try:
            if spec.host:
                for out, value in zip(spec.outputs, compute_host_layer(layer, infos)):
                    host[out] = np.asarray(value, dtype=nptype(graph.tensors[out].dtype))
                    slots[out], shapes[out] = backend.to_device(host[out]), tuple(host[out].shape)
                continue
            chosen = None if states is None else states[position]
            data_dependent = not layer_impl(layer.type).static_output_shape
            if layer.type not in CONTROL_FLOW_TYPES and touches_bfloat16(graph, spec):
                # bfloat16 runs as a step does (widened to float32, rounded once; on the GPU the tensors hold the
                # bits, which no kernel reads as they are): the trial through the reference tactic
                if chosen is None:
                    tactic = ReferenceTactic(layer.type, device)
                    chosen = tactic, tactic.prepare(tactic_context(graph, spec, device, shapes))
            elif chosen is None or layer.type in CONTROL_FLOW_TYPES or data_dependent:
                ins = [None if i is None else slots[i] for i in spec.inputs]
                results = layer_impl(layer.type).compute(layer, ins, xp)
                for out, result in zip(spec.outputs, results):
                    result = xp.asarray(result)
                    dtype = np.dtype(nptype(graph.tensors[out].dtype))
                    slots[out] = result if result.dtype == dtype else result.astype(dtype)
                    shapes[out] = tuple(slots[out].shape)
                # The kernel computes the layer as parsed; what fusion added (a residual, the fused ReLU) is the
                # epilogue's. Without it the shape trial saw other values than the engine computes, and a
                # data-dependent count after a fused Conv+ReLU (RetinaNet's score threshold) came out wrong.
                # An INT8 output scale is left out: only the INT8 tactic can quantize.
                epilogue = layer.epilogue.without({OUTPUT_SCALE})
                if not epilogue.empty:
                    slots[spec.outputs[0]] = xp.array(slots[spec.outputs[0]], copy=True)
                    apply_epilogue(epilogue, slots[spec.outputs[0]], ins, xp)
                continue
            for out, (shape, _) in zip(spec.outputs, [] if data_dependent else output_infos(layer, infos)):
                if shape is None or any(d < 0 for d in shape):
                    raise ExecutionError(f"output '{graph.tensors[out].name}' has shape {shape} even with its inputs "
                                         "known")
                shapes[out] = tuple(int(d) for d in shape)
                slots[out] = empty_in_format(xp, shapes[out], storage_dtype(graph.tensors[out].dtype, device),
                                             graph.tensors[out].format)
            tactic, state = chosen
            need = int(tactic.workspace_bytes(tactic_context(graph, spec, device, shapes,
                                                             widen=not tactic.reads_bfloat16)))
            run_step(make_step(spec, tactic, state, host, graph), slots, backend.allocate(need) if need else None, xp)
            for out in spec.outputs if data_dependent else ():  # the step put arrays of the sizes the data asked for
                shapes[out] = tuple(slots[out].shape)
        except ExecutionError as exc:
            raise ExecutionError(f"layer '{layer.name}' ({layer.type.value}): {exc}") from None
        except EngineError as exc:
            raise ExecutionError(f"layer '{layer.name}' ({layer.type.value}): {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a kernel failing on these values: name the layer
            raise ExecutionError(f"layer '{layer.name}' ({layer.type.value}): {type(exc).__name__}: {exc}") from exc
    return slots, shapes, host


def touches_bfloat16(graph: LoweredGraph, spec: Any) -> bool:
    """Whether a layer reads or writes a BF16 tensor."""
    return any(i is not None and graph.tensors[i].dtype == DataType.BF16 for i in (*spec.inputs, *spec.outputs))


def trial_shapes(graph: LoweredGraph, backend: Any, inputs: dict[int, Any],
                 input_values: dict[int, np.ndarray]) -> ResolvedShapes:
    """Every tensor's shape (and the host values) when the network runs on these sample inputs, by running it
    through the reference kernels: the builder's sweep of a network with data-dependent shapes."""
    _, shapes, host = run_eagerly(graph, None, "cpu" if backend.xp is np else "gpu", backend, inputs, input_values)
    return ResolvedShapes(shapes, host)
