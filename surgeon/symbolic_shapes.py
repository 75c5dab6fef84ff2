"""Shape arithmetic evaluated with symbols: the values of small integer tensors computed from `Shape`, when some
dims are only known by name.

A PyTorch export computes Reshape/Expand targets at run time (`Shape → Gather → Unsqueeze → Concat`). Constant
folding can evaluate them only when every dim they read is static; here each element is an int, a bool, or a
`Dim` — a dim known by its symbol (the `dim_param` shape inference propagates, which stands for one value
throughout the model) or by its tensor and axis. Rewrites use these values to replace the arithmetic with
constants (`Reshape` to `[0, 0, -1, 64]`) or with an equal tensor computed elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from .rewrite_tools import constant_value, is_int

# Largest vector tracked: shape vectors are short; longer int tensors are data, not shapes.
_MAX_ELEMENTS = 16


@dataclass(frozen=True)
class Dim:
    """A non-negative dim whose value is unknown until run time; equal `Dim`s hold equal values."""

    key: tuple


@dataclass(frozen=True)
class Unknown:
    """An element nothing is known about (equal only to itself)."""

    origin: int
    index: int


Element = int | bool | Dim | Unknown


@dataclass(frozen=True)
class SymbolicValue:
    elements: tuple[Element, ...]
    scalar: bool  # 0-D (one element) rather than 1-D
    dtype: np.dtype

    @property
    def known(self) -> bool:
        return all(isinstance(e, (bool, int, np.bool_, np.integer)) for e in self.elements)

    def array(self) -> np.ndarray:
        values = np.array([int(e) for e in self.elements], dtype=self.dtype)
        return values.reshape(()) if self.scalar else values


def dims_of(tensor: gs.Tensor) -> list[Element] | None:
    """The tensor's dims as elements (ints for static dims), or None when its rank is unknown.

    Looks through Slice with constant axes (onnx's inference forgets every dim when `ends` is computed, though
    the axes it does not slice keep their size) and through ops that keep their input's shape."""
    shape = tensor.shape
    if shape is None:
        return None
    dims: list[Element] = []
    for axis, dim in enumerate(shape):
        if isinstance(dim, (int, np.integer)) and dim >= 0:
            dims.append(int(dim))
        elif isinstance(dim, str) and dim:
            dims.append(Dim(("param", dim)))
        else:
            dims.append(Dim(("tensor", tensor.name, axis)))
    producer = tensor.inputs[0] if len(tensor.inputs) == 1 else None
    if producer is not None and producer.op == "Slice":
        source = dims_of(producer.inputs[0])
        sliced = _sliced_axes(producer)
        if source is not None and sliced is not None and len(source) == len(dims):
            dims = [dims[a] if a % len(dims) in sliced else source[a] for a in range(len(dims))]
    return dims


def _sliced_axes(node: gs.Node) -> set[int] | None:
    """Axes a Slice node slices (as given, maybe negative, and normalized by the caller), None when computed."""
    rank = len(node.inputs[0].shape) if node.inputs[0].shape is not None else None
    if rank is None:
        return None
    if len(node.inputs) > 3 and node.inputs[3].name:
        axes = constant_value(node.inputs[3])
        return None if axes is None else {int(a) % rank for a in axes.reshape(-1)}
    starts = node.inputs[1]
    if starts.shape is None or len(starts.shape) != 1 or not isinstance(starts.shape[0], (int, np.integer)):
        return None
    return set(range(int(starts.shape[0])))


def evaluate(graph: gs.Graph) -> dict[int, SymbolicValue]:
    """Symbolic values of the graph's small integer/bool tensors, by `id(tensor)` (graph must be sorted)."""
    values: dict[int, SymbolicValue] = {}

    def value_of(tensor: gs.Tensor) -> SymbolicValue | None:
        if id(tensor) in values:
            return values[id(tensor)]
        array = constant_value(tensor)
        if array is None or array.ndim > 1 or array.size > _MAX_ELEMENTS \
                or not (np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_):
            return None
        value = SymbolicValue(tuple(array.reshape(-1).tolist()), array.ndim == 0, array.dtype)
        values[id(tensor)] = value
        return value

    for node in graph.nodes:
        if len(node.outputs) != 1 or not node.inputs:
            continue
        try:
            result = _evaluate_node(node, value_of)
        except (ValueError, IndexError, TypeError, ZeroDivisionError):
            result = None
        if result is not None and len(result.elements) <= _MAX_ELEMENTS:
            values[id(node.outputs[0])] = result
    return values


def _evaluate_node(node: gs.Node, value_of) -> SymbolicValue | None:
    op = node.op
    if op == "Shape":
        dims = dims_of(node.inputs[0])
        if dims is None:
            return None
        start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
        return SymbolicValue(tuple(dims[start:end]), False, np.dtype(np.int64))
    inputs = [value_of(t) if t.name else None for t in node.inputs]
    first = inputs[0]
    if first is None:
        return None
    if op == "Gather" and node.attrs.get("axis", 0) == 0 and not first.scalar and inputs[1] is not None \
            and inputs[1].known:
        picked = tuple(first.elements[int(i)] for i in inputs[1].elements)
        return SymbolicValue(picked, inputs[1].scalar, first.dtype)
    if op == "Unsqueeze" and first.scalar:
        return SymbolicValue(first.elements, False, first.dtype)
    if op == "Squeeze" and not first.scalar and len(first.elements) == 1:
        return SymbolicValue(first.elements, True, first.dtype)
    if op == "Concat" and all(v is not None and not v.scalar and v.dtype == first.dtype for v in inputs):
        return SymbolicValue(tuple(e for v in inputs for e in v.elements), False, first.dtype)
    if op == "Cast" and node.attrs.get("to") in (6, 7) and np.issubdtype(first.dtype, np.integer):
        dtype = np.dtype(np.int64 if node.attrs["to"] == 7 else np.int32)
        return SymbolicValue(first.elements, first.scalar, dtype)
    if op == "Slice" and not first.scalar and all(v is not None and v.known for v in inputs[1:]):
        starts, ends = inputs[1].elements, inputs[2].elements
        axes = inputs[3].elements if len(inputs) > 3 else (0,)
        steps = inputs[4].elements if len(inputs) > 4 else (1,)
        if len(starts) != 1 or tuple(axes) not in ((0,), (-1,)):
            return None
        end = max(min(int(ends[0]), 1 << 62), -(1 << 62))
        return SymbolicValue(first.elements[slice(int(starts[0]), end, int(steps[0]))], False, first.dtype)
    if op in ("Equal", "Add", "Sub", "Mul") and inputs[1] is not None:
        return _elementwise(op, first, inputs[1], id(node))
    if op == "Where" and all(v is not None for v in inputs) and first.known:
        operands = [_broadcast(v, len(first.elements)) for v in inputs[1:]]
        if None in operands or inputs[1].dtype != inputs[2].dtype:
            return None
        chosen = tuple(a if bool(c) else b for c, a, b in zip(first.elements, *operands))
        return SymbolicValue(chosen, all(v.scalar for v in inputs), inputs[1].dtype)
    return None


def _broadcast(value: SymbolicValue, length: int) -> tuple[Element, ...] | None:
    if len(value.elements) == length:
        return value.elements
    if len(value.elements) == 1:
        return value.elements * length
    return None


def _elementwise(op: str, a: SymbolicValue, b: SymbolicValue, origin: int) -> SymbolicValue | None:
    length = max(len(a.elements), len(b.elements))
    left, right = _broadcast(a, length), _broadcast(b, length)
    if left is None or right is None or a.dtype != b.dtype:
        return None
    scalar = a.scalar and b.scalar
    if op == "Equal":
        return SymbolicValue(tuple(_equal(x, y, origin, i) for i, (x, y) in enumerate(zip(left, right))), scalar,
                             np.dtype(np.bool_))
    if not np.issubdtype(a.dtype, np.integer):
        return None
    return SymbolicValue(tuple(_arith(op, x, y, origin, i) for i, (x, y) in enumerate(zip(left, right))), scalar,
                         a.dtype)


def _equal(x: Element, y: Element, origin: int, index: int) -> Element:
    if is_int(x) and is_int(y):
        return int(x) == int(y)
    if isinstance(x, Dim) and isinstance(y, Dim) and x == y:
        return True
    for dim, other in ((x, y), (y, x)):
        if isinstance(dim, Dim) and is_int(other) and other < 0:
            return False  # dims are never negative
    return Unknown(origin, index)


def _arith(op: str, x: Element, y: Element, origin: int, index: int) -> Element:
    if is_int(x) and is_int(y):
        return {"Add": int(x) + int(y), "Sub": int(x) - int(y), "Mul": int(x) * int(y)}[op]
    if op in ("Add", "Sub") and is_int(y) and y == 0:
        return x
    if op == "Add" and is_int(x) and x == 0:
        return y
    if op == "Mul" and is_int(y) and y == 1:
        return x
    if op == "Mul" and is_int(x) and x == 1:
        return y
    return Unknown(origin, index)
