"""The operator registry: one registration per layer type and per ONNX op feeds every part of the engine.

A *layer implementation* (`register_layer`) gives, for one LayerType:
  - `infer(layer, inputs) -> [(shape, dtype), ...]`: output shapes/dtypes from input TensorInfo. Shapes may contain
    -1 (unknown until run time); `TensorInfo.value` holds the input's value when it is known (constants, shape
    arithmetic), which is how Reshape/Expand/Slice learn their output shape from a shape tensor.
  - `compute(layer, inputs, xp) -> [array, ...]`: the reference kernel, written against the array module `xp`
    (NumPy on CPU, CuPy on GPU). It is the default tactic, the constant folder and the shape-value evaluator.

An *ONNX importer* (`onnx_op`) turns one ONNX node into layers through the NetworkDefinition API and returns the
node's output tensors. It raises `UnsupportedError` (via `ctx.unsupported`) for attribute values or dtypes it
cannot handle, which is what `inspect capability` reports.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType
from ..errors import EngineError


class TensorInfo(NamedTuple):
    """What shape inference knows about one input: shape (-1 = unknown dim), dtype, and value if known."""

    shape: tuple[int, ...] | None
    dtype: DataType
    value: np.ndarray | None = None


InferFn = Callable[[Any, list[TensorInfo | None]], list[tuple[tuple[int, ...] | None, DataType]]]
ComputeFn = Callable[[Any, list[Any], Any], list[Any]]


@dataclass(frozen=True)
class LayerImpl:
    type: LayerType
    infer: InferFn
    compute: ComputeFn
    # False for layers whose output shape depends on input *values* that are not shape tensors (NonZero, NMS):
    # `infer` gives -1 for those dims, `compute` returns arrays of the size the data asks for, and the runtime
    # learns the size only after running the layer (docs/dynamic-shapes.md).
    static_output_shape: bool = True
    # Input positions that `compute` reads as host values (Slice bounds, Reshape dims, TopK k, ...). When such an
    # input is known on the host (a constant or shape arithmetic), device execution passes the host array, so
    # the layer reads no value back from the GPU and the execution can be captured into a CUDA graph.
    host_operands: frozenset[int] = frozenset()
    # Data-dependent layers only: output shapes no run can exceed, from the input infos (TensorRT times and plans
    # such layers at an upper bound, e.g. NonZero's input size).
    upper_bound: InferFn | None = None


LAYER_IMPLS: dict[LayerType, LayerImpl] = {}


def register_layer(layer_type: LayerType, infer: InferFn, compute: ComputeFn, static_output_shape: bool = True,
                   host_operands: Sequence[int] = (), upper_bound: InferFn | None = None) -> None:
    layer_type = LayerType(layer_type)
    if layer_type in LAYER_IMPLS:
        raise EngineError(f"layer type {layer_type.value} is registered twice")
    if static_output_shape == (upper_bound is not None):
        raise EngineError(f"layer type {layer_type.value}: a data-dependent layer needs an upper bound, "
                          "and only such a layer has one")
    LAYER_IMPLS[layer_type] = LayerImpl(layer_type, infer, compute, static_output_shape, frozenset(host_operands),
                                        upper_bound)


def layer_impl(layer_type: LayerType) -> LayerImpl:
    try:
        return LAYER_IMPLS[LayerType(layer_type)]
    except KeyError:
        raise EngineError(f"no implementation is registered for layer type {LayerType(layer_type).value}") from None


@dataclass(frozen=True)
class OnnxImporter:
    op_type: str
    domain: str
    fn: Callable[[Any], Sequence[Any]]
    # Oldest opset whose semantics the importer implements; newer versions are assumed compatible unless
    # `max_opset` says otherwise.
    min_opset: int = 1
    max_opset: int | None = None


ONNX_IMPORTERS: dict[tuple[str, str], OnnxImporter] = {}


def onnx_op(*op_types: str, domain: str = "", min_opset: int = 1, max_opset: int | None = None):
    """Decorator registering an importer for one or more ONNX op types (same function for all)."""

    def wrap(fn):
        for op_type in op_types:
            key = (domain, op_type)
            if key in ONNX_IMPORTERS:
                raise EngineError(f"ONNX op {op_type!r} (domain {domain!r}) has two importers")
            ONNX_IMPORTERS[key] = OnnxImporter(op_type, domain, fn, min_opset, max_opset)
        return fn

    return wrap


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    """Map a possibly negative axis into [0, rank); raises EngineError naming `what` otherwise."""
    if not -rank <= axis < max(rank, 1):
        raise EngineError(f"{what} {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy broadcasting on shapes that may hold -1 (unknown). Raises EngineError when they cannot broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        known = {d for d in dims if d not in (1, -1)}
        if len(known) > 1:
            raise EngineError(f"shapes {[tuple(s) for s in shapes]} cannot be broadcast together")
        if known:
            out.append(known.pop())
        elif -1 in dims:
            out.append(-1)
        else:
            out.append(1)
    return tuple(out)


def same_as_input(index: int = 0) -> InferFn:
    """Infer function for layers whose single output has the shape and dtype of input `index`."""

    def infer(layer, inputs):
        info = inputs[index]
        return [(info.shape, info.dtype)]

    return infer
