"""Graph simplifications that constant folding alone leaves behind: the named rewrites of `sanitize`.

Folding a PyTorch export leaves no-op Reshapes/Concats/Casts, zero-bias Adds, Transpose pairs, Reshape chains,
`Reshape → pointwise ops → Reshape back` sandwiches, duplicated subexpressions, and shape arithmetic on dims
known only by name. `REWRITES` lists every rewrite by the name `--skip` takes, in the order one pass runs them.
The rewrites here keep the values of every graph output bit-for-bit (up to the sign of zero) and rely only on
shapes the graph states (static dims, or symbolic dims shape inference propagated); those that fold into
weights (weight_folding) round the folded weights once.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper

from .rewrite_tools import bypass, constant_value, is_int, replace_input, single_reader, static_shape
from .symbolic_shapes import Dim, SymbolicValue, dims_of, evaluate
from .weight_folding import (
    fold_affine_into_conv,
    fold_batchnorm_into_conv,
    fold_pad_into_conv,
    fold_scale_into_matmul,
)

# Ops that return their first input unchanged when the output shape and dtype equal the input's.
_SHAPE_NOOPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Expand", "Tile"}
_VARIADIC = {"Concat", "Sum", "Max", "Min", "Mean"}
_NEUTRAL_OPERAND = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0}
_COMMUTATIVE = {"Add", "Mul"}
_RESHAPES = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}
# One-output ops that map equal-shaped inputs element by element (scalar operands broadcast).
_POINTWISE = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Where", "Equal", "Less", "Greater", "LessOrEqual",
    "GreaterOrEqual", "And", "Or", "Xor", "Not", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Tanh",
    "Sigmoid", "Relu", "LeakyRelu", "Elu", "Selu", "Erf", "Softplus", "Softsign", "HardSigmoid", "HardSwish",
    "Gelu", "Mish", "Clip", "Cast", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "IsNaN", "IsInf", "Identity",
}
_NONDETERMINISTIC = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
                     "Bernoulli", "Dropout"}


@dataclass(frozen=True)
class Rewrite:
    """One named rewrite: `run(graph)` applies it everywhere once and returns how many times it did."""

    name: str  # what `--skip` takes and the report prints
    summary: str
    run: Callable[[gs.Graph], int]


def simplify(graph: gs.Graph, skip: Collection[str] = ()) -> Counter:
    """Run every rewrite not in `skip` once, in table order; returns how many times each ran (by name)."""
    done: Counter = Counter()
    for rewrite in REWRITES:
        if rewrite.name in skip:
            continue
        graph.toposort()
        done[rewrite.name] += rewrite.run(graph)
        graph.cleanup()
    return +done


def rewrite_names() -> list[str]:
    return [rewrite.name for rewrite in REWRITES]


def _same_type(a: gs.Tensor, b: gs.Tensor) -> bool:
    shape = static_shape(a)
    return shape is not None and shape == static_shape(b) and a.dtype is not None and a.dtype == b.dtype


def _broadcast_keeps(data: gs.Tensor, operand_shape: tuple[int, ...]) -> bool:
    """Whether broadcasting `data` with an operand of `operand_shape` leaves data's shape as it is: every operand
    dim (aligned from the right) is 1 or equals data's known dim; data's other dims may be symbolic."""
    shape = data.shape
    if shape is None or len(operand_shape) > len(shape):
        return False
    for dim, operand_dim in zip(reversed(list(shape)), reversed(operand_shape)):
        if operand_dim != 1 and not (isinstance(dim, (int, np.integer)) and dim == operand_dim):
            return False
    return True


def _resize_is_identity(node: gs.Node) -> bool:
    """Scales all 1 (or sizes equal to the input's static shape): every mode samples exactly the input pixels."""
    if node.attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize" or node.attrs.get("axes"):
        return False
    scales = constant_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    sizes = constant_value(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else None
    if scales is not None and scales.size:
        return bool(np.all(scales == 1))
    shape = static_shape(node.inputs[0])
    return sizes is not None and shape is not None and tuple(int(d) for d in sizes.reshape(-1)) == shape


_UNBOUNDED = 1 << 31  # a Slice end at least this large reaches the end of any dim that fits in memory


def _slice_is_full(node: gs.Node) -> bool:
    """Every sliced axis starts at 0 (or before), ends at or past its end, step 1."""
    values = [constant_value(t) if t.name else None for t in node.inputs[1:]]
    if len(values) < 2 or any(v is None for v in values):
        return False
    starts, ends = values[0].reshape(-1), values[1].reshape(-1)
    axes = values[2].reshape(-1) if len(values) > 2 else np.arange(len(starts))
    steps = values[3].reshape(-1) if len(values) > 3 else np.ones(len(starts), np.int64)
    dims = dims_of(node.inputs[0])
    if dims is None:
        return False
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = dims[int(axis) % len(dims)]
        reaches_end = end >= _UNBOUNDED or (is_int(dim) and end >= dim)
        starts_at_zero = start == 0 or (is_int(dim) and start <= -dim)
        if step != 1 or not reaches_end or not starts_at_zero:
            return False
    return True


def _reshape_keeps(data: gs.Tensor, target: np.ndarray, allowzero: int) -> bool:
    """Whether Reshape(data, target) returns data's shape: each target dim copies (0) or equals data's dim."""
    dims = dims_of(data)
    if dims is None or target.ndim != 1 or len(target) != len(dims):
        return False
    return all((d == 0 and not allowzero) or (d > 0 and dim == d) for d, dim in zip(target.tolist(), dims))


def _noop_source(node: gs.Node) -> gs.Tensor | None:
    """The input a node passes through unchanged, or None when it computes something."""
    if len(node.outputs) != 1 or not node.inputs:
        return None
    out, first = node.outputs[0], node.inputs[0]
    if node.op == "Identity":
        return first
    if node.op == "Dropout" and not node.attrs.get("training_mode") and (len(node.inputs) < 3 or not node.inputs[2]):
        return first
    if node.op in _VARIADIC and len(node.inputs) == 1:
        return first
    if node.op == "Cast" and first.dtype is not None and first.dtype == out.dtype:
        return first
    if node.op in _SHAPE_NOOPS and _same_type(first, out):
        return first
    if node.op == "Resize" and _resize_is_identity(node):
        return first
    if node.op == "Slice" and _slice_is_full(node):
        return first
    target = constant_value(node.inputs[1]) if len(node.inputs) == 2 else None
    if node.op == "Expand" and target is not None and target.ndim == 1 \
            and _broadcast_keeps(first, tuple(int(d) for d in target)):
        return first
    if node.op == "Reshape" and target is not None and _reshape_keeps(first, target, node.attrs.get("allowzero", 0)):
        return first
    perm = node.attrs.get("perm")
    if node.op == "Transpose" and perm is not None and list(perm) == list(range(len(perm))):
        return first
    if node.op in _NEUTRAL_OPERAND and len(node.inputs) == 2:
        candidates = [(node.inputs[0], node.inputs[1])]
        if node.op in _COMMUTATIVE:
            candidates.append((node.inputs[1], node.inputs[0]))
        for data, operand in candidates:
            value = constant_value(operand)
            if value is not None and value.size and np.all(value == _NEUTRAL_OPERAND[node.op]) \
                    and _broadcast_keeps(data, value.shape) and data.dtype == out.dtype:
                return data
    return None


def _remove_noops(graph: gs.Graph) -> int:
    removed = 0
    for node in list(graph.nodes):
        source = _noop_source(node)
        if source is not None and node.outputs and bypass(graph, node, node.outputs[0], source):
            removed += 1
    return removed


def _fuse_transposes(graph: gs.Graph) -> int:
    fused = 0
    for node in list(graph.nodes):
        if node.op != "Transpose" or not node.outputs or not node.inputs:
            continue
        source = node.inputs[0]
        first = source.inputs[0] if source.inputs else None
        if first is None or first.op != "Transpose" or not single_reader(graph, source):
            continue
        rank = len(source.shape) if source.shape is not None else None
        if rank is None:
            continue
        inner = list(first.attrs.get("perm", range(rank - 1, -1, -1)))
        outer = list(node.attrs.get("perm", range(rank - 1, -1, -1)))
        composed = [inner[axis] for axis in outer]
        node.inputs[0] = first.inputs[0]
        node.attrs["perm"] = composed
        first.outputs.clear()
        fused += 1
    return fused


def _reshape_to(node: gs.Node, data: gs.Tensor, shape: tuple[int, ...]) -> None:
    node.op = "Reshape"
    node.attrs.clear()
    node.inputs.clear()
    node.inputs.extend([data, gs.Constant(f"{node.name or node.outputs[0].name}_shape",
                                          np.asarray(shape, dtype=np.int64))])


def _fuse_reshapes(graph: gs.Graph) -> int:
    fused = 0
    for node in list(graph.nodes):
        if node.op not in _RESHAPES or not node.outputs or not node.inputs:
            continue
        shape = static_shape(node.outputs[0])
        if shape is None or 0 in shape:
            # A Reshape to a constant target without 0 (copy) depends only on the element count, not on the
            # shape it is given: on dynamic shapes it still absorbs the reshape before it.
            target = constant_value(node.inputs[1]) if node.op == "Reshape" and len(node.inputs) == 2 else None
            if target is None or target.ndim != 1 or (0 in target.tolist() and not node.attrs.get("allowzero")):
                continue
            shape = tuple(int(d) for d in target)
        source = node.inputs[0]
        first = source.inputs[0] if source.inputs else None
        if first is None or first.op not in _RESHAPES or not single_reader(graph, source):
            continue
        _reshape_to(node, first.inputs[0], shape)
        first.outputs.clear()
        fused += 1
    return fused


def _cancel_squeeze_pairs(graph: gs.Graph) -> int:
    """`Squeeze(Unsqueeze(x, axes), axes)` and `Unsqueeze(Squeeze(x, axes), axes)` are x (Squeeze only removes
    dims of size 1, so putting them back restores x), whatever x's shape."""
    cancelled = 0
    for node in list(graph.nodes):
        if node.op not in ("Squeeze", "Unsqueeze") or len(node.inputs) != 2 or not node.outputs:
            continue
        source = node.inputs[0]
        first = source.inputs[0] if source.inputs else None
        pair = {"Squeeze": "Unsqueeze", "Unsqueeze": "Squeeze"}[node.op]
        if first is None or first.op != pair or len(first.inputs) != 2:
            continue
        axes, first_axes = constant_value(node.inputs[1]), constant_value(first.inputs[1])
        rank = len(node.outputs[0].shape) if node.outputs[0].shape is not None else None
        if axes is None or first_axes is None or rank is None:
            continue
        outer_rank = rank + len(axes) if node.op == "Squeeze" else rank
        if sorted(int(a) % outer_rank for a in axes.reshape(-1)) \
                != sorted(int(a) % outer_rank for a in first_axes.reshape(-1)):
            continue
        if bypass(graph, node, node.outputs[0], first.inputs[0]):
            cancelled += 1
    return cancelled


def _cancel_reshape_sandwiches(graph: gs.Graph) -> int:
    """`X → Reshape → pointwise ops (scalar operands) → Reshape back to X's shape` becomes the pointwise ops on X."""
    cancelled = 0
    for node in list(graph.nodes):
        if node.op not in _RESHAPES or not node.outputs or not node.inputs:
            continue
        data, reshaped = node.inputs[0], node.outputs[0]
        inner_shape, outer_shape = static_shape(data), static_shape(reshaped)
        if inner_shape is None or outer_shape is None or inner_shape == outer_shape or reshaped in graph.outputs:
            continue
        region = _pointwise_region(graph, reshaped, outer_shape, inner_shape)
        if region is None:
            continue
        region_nodes, exits = region
        for member in region_nodes:
            replace_input(member, reshaped, data)
            for index, operand in enumerate(member.inputs):
                value = constant_value(operand)
                if value is not None and value.ndim > len(inner_shape):
                    member.inputs[index] = gs.Constant(f"{operand.name}_scalar", value.reshape(()))
            member.outputs[0].shape = list(inner_shape)
        for exit_node in exits:
            bypass(graph, exit_node, exit_node.outputs[0], exit_node.inputs[0])
        cancelled += 1
    return cancelled


def _pointwise_region(graph: gs.Graph, start: gs.Tensor, shape: tuple[int, ...], back: tuple[int, ...]):
    """Pointwise nodes reachable from `start` whose every exit is a reshape back to `back`, or None."""
    members: list[gs.Node] = []
    exits: list[gs.Node] = []
    tensors = {id(start)}
    frontier = [start]
    while frontier:
        tensor = frontier.pop()
        for consumer in tensor.outputs:
            if consumer in members or consumer in exits:
                continue
            if consumer.op in _RESHAPES and static_shape(consumer.outputs[0]) == back \
                    and consumer.inputs[0] is tensor:
                exits.append(consumer)
                continue
            if consumer.op not in _POINTWISE or len(consumer.outputs) != 1 \
                    or static_shape(consumer.outputs[0]) != shape or consumer.outputs[0] in graph.outputs:
                return None
            members.append(consumer)
            tensors.add(id(consumer.outputs[0]))
            frontier.append(consumer.outputs[0])
    if not exits:
        return None
    for member in members:
        for operand in member.inputs:
            value = constant_value(operand)
            if id(operand) not in tensors and (value is None or value.size != 1):
                return None
    return members, exits


def _input_key(tensor: gs.Tensor):
    value = constant_value(tensor)
    if value is None:
        return id(tensor)
    if value.size > 1 << 20:
        return id(tensor)
    return ("const", str(value.dtype), value.shape, hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest())


def _merge_duplicates(graph: gs.Graph) -> int:
    """Common subexpressions: a node equal to an earlier one (op, attributes, inputs) reuses its outputs. Equal
    constants are shared first (not counted), so nodes reading equal constants compare equal."""
    shared: dict = {}
    for node in graph.nodes:
        for index, tensor in enumerate(node.inputs):
            if isinstance(tensor, gs.Constant) and tensor not in graph.outputs:
                keep = shared.setdefault(_input_key(tensor), tensor)
                if keep is not tensor:
                    node.inputs[index] = keep
    seen: dict = {}
    merged = 0
    for node in list(graph.nodes):
        if not node.inputs or node.op in _NONDETERMINISTIC:
            continue
        if any(isinstance(v, gs.Graph) for v in node.attrs.values()):
            continue
        key = (node.op, node.domain, repr(sorted(node.attrs.items())), tuple(_input_key(t) for t in node.inputs),
               len(node.outputs))
        original = seen.get(key)
        if original is None:
            seen[key] = node
            continue
        if any(out in graph.outputs for out in node.outputs):
            continue
        for dup, keep in zip(list(node.outputs), list(original.outputs)):
            for consumer in list(dup.outputs):
                replace_input(consumer, dup, keep)
        node.outputs.clear()
        merged += 1
    return merged


def _simplify_shape_arithmetic(graph: gs.Graph) -> int:
    """Shape arithmetic on partially known shapes (see symbolic_shapes): a value known in full becomes a
    constant; a value equal to one computed earlier reuses it; a Reshape target becomes a constant with 0 (copy
    that dim) and -1 (the one dim left); an Expand target becomes a constant with 1 where it repeats the input's
    dim, and the Expand goes when it broadcasts nothing."""
    values = evaluate(graph)
    seen: dict[tuple, gs.Tensor] = {}
    changed = 0
    for node in list(graph.nodes):
        if len(node.outputs) != 1:
            continue
        out = node.outputs[0]
        value = values.get(id(out))
        if value is not None and out not in graph.outputs and out.outputs:
            if value.known:
                _redirect(out, gs.Constant(f"{out.name}_value", value.array()))
                changed += 1
                continue
            key = (value.dtype.str, value.scalar, value.elements)
            earlier = seen.setdefault(key, out)
            if earlier is not out:
                _redirect(out, earlier)
                changed += 1
                continue
        if node.op == "Reshape" and len(node.inputs) == 2 and not node.attrs.get("allowzero"):
            changed += _constant_reshape_target(graph, node, values.get(id(node.inputs[1])))
        elif node.op == "Expand" and len(node.inputs) == 2:
            changed += _constant_expand_target(graph, node, values.get(id(node.inputs[1])))
    return changed


def _redirect(out: gs.Tensor, replacement: gs.Tensor) -> None:
    for consumer in list(out.outputs):
        replace_input(consumer, out, replacement)


def _constant_reshape_target(graph: gs.Graph, node: gs.Node, target: SymbolicValue | None) -> int:
    if target is None or target.scalar or isinstance(node.inputs[1], gs.Constant):
        return 0
    known_dims = dims_of(node.inputs[0])
    dims = known_dims or []
    shape: list[int | None] = []
    for axis, element in enumerate(target.elements):
        if is_int(element):
            shape.append(int(element))
        elif isinstance(element, Dim) and axis < len(dims) and dims[axis] == element:
            shape.append(0)  # allowzero=0: copy the input's dim at this axis
        else:
            shape.append(None)
    if shape.count(None) + shape.count(-1) > 1:
        return 0
    shape = [-1 if d is None else d for d in shape]
    if known_dims is not None and shape == [0] * len(dims) and node.outputs[0] not in graph.outputs:
        return int(bypass(graph, node, node.outputs[0], node.inputs[0]))
    node.inputs[1] = gs.Constant(f"{node.outputs[0].name}_target", np.asarray(shape, np.int64))
    return 1


def _constant_expand_target(graph: gs.Graph, node: gs.Node, target: SymbolicValue | None) -> int:
    if target is None or target.scalar or isinstance(node.inputs[1], gs.Constant):
        return 0
    dims = dims_of(node.inputs[0])
    if dims is None:
        return 0
    shape = []
    offset = len(target.elements) - len(dims)
    for axis, element in enumerate(target.elements):
        if is_int(element):
            shape.append(int(element))
        elif isinstance(element, Dim) and axis >= offset and dims[axis - offset] == element:
            shape.append(1)  # broadcasting 1 keeps the input's dim
        else:
            return 0
    if offset <= 0 and all(d == 1 for d in shape) and node.outputs[0] not in graph.outputs:
        return int(bypass(graph, node, node.outputs[0], node.inputs[0]))
    node.inputs[1] = gs.Constant(f"{node.outputs[0].name}_target", np.asarray(shape, np.int64))
    return 1


# Element types whose every value another type holds exactly: a Cast through the wider type loses nothing.
_EXACT_WIDENINGS = {
    TensorProto.BOOL: {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16,
                       TensorProto.INT32, TensorProto.UINT32, TensorProto.INT64, TensorProto.UINT64,
                       TensorProto.FLOAT16, TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.INT8: {TensorProto.INT16, TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT16,
                       TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.UINT8: {TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32,
                        TensorProto.INT64, TensorProto.UINT64, TensorProto.FLOAT16, TensorProto.FLOAT,
                        TensorProto.DOUBLE},
    TensorProto.INT16: {TensorProto.INT32, TensorProto.INT64, TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.INT32: {TensorProto.INT64, TensorProto.DOUBLE},
    TensorProto.FLOAT16: {TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.BFLOAT16: {TensorProto.FLOAT, TensorProto.DOUBLE},
    TensorProto.FLOAT: {TensorProto.DOUBLE},
}


def _element_type(tensor: gs.Tensor) -> int | None:
    if tensor.dtype is None:
        return None
    try:
        return int(helper.np_dtype_to_tensor_dtype(np.dtype(tensor.dtype)))
    except (TypeError, KeyError, ValueError):
        return None


def _fuse_casts(graph: gs.Graph) -> int:
    """`Cast(Cast(x, A), B)` where A holds every value of x's type exactly: `Cast(x, B)`, or x when B is x's type."""
    fused = 0
    for node in list(graph.nodes):
        if node.op != "Cast" or not node.inputs or not node.outputs:
            continue
        source = node.inputs[0]
        first = source.inputs[0] if source.inputs else None
        if first is None or first.op != "Cast" or not first.inputs:
            continue
        original = _element_type(first.inputs[0])
        if original is None or first.attrs.get("to") not in _EXACT_WIDENINGS.get(original, ()):
            continue
        if node.attrs.get("to") == original:
            if bypass(graph, node, node.outputs[0], first.inputs[0]):
                fused += 1
            continue
        node.inputs[0] = first.inputs[0]
        fused += 1
    return fused


def _merge_concat_of_slices(graph: gs.Graph) -> int:
    """`Concat(axis=a)` of step-1 Slices of one tensor along a that tile it from its start to its end: the
    tensor itself."""
    merged = 0
    for node in list(graph.nodes):
        if node.op != "Concat" or len(node.inputs) < 2 or not node.outputs:
            continue
        pieces = [_slice_range(t) for t in node.inputs]
        if any(p is None for p in pieces) or len({id(p[0]) for p in pieces}) != 1:
            continue
        source = pieces[0][0]
        dims = dims_of(source)
        if dims is None or any(p[1] != node.attrs.get("axis", 0) % len(dims) for p in pieces):
            continue
        bounds = [(p[2], p[3]) for p in pieces]
        axis_dim = dims[pieces[0][1]]
        contiguous = all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
        ends_at_end = bounds[-1][1] >= _UNBOUNDED or (is_int(axis_dim) and bounds[-1][1] == axis_dim)
        if contiguous and bounds[0][0] == 0 and ends_at_end and bypass(graph, node, node.outputs[0], source):
            merged += 1
    return merged


def _slice_range(tensor: gs.Tensor) -> tuple[gs.Tensor, int, int, int] | None:
    """(source, axis, start, end) of a tensor made by a one-axis, step-1, non-negative-bounds Slice."""
    node = tensor.inputs[0] if len(tensor.inputs) == 1 else None
    if node is None or node.op != "Slice" or len(node.inputs) < 4 or node.inputs[0].shape is None:
        return None
    values = [constant_value(t) if t.name else None for t in node.inputs[1:]]
    if any(v is None or v.size != 1 for v in values):
        return None
    start, end, axis = (int(v.reshape(-1)[0]) for v in values[:3])
    step = int(values[3].reshape(-1)[0]) if len(values) > 3 else 1
    if step != 1 or start < 0 or end < 0:
        return None
    return node.inputs[0], axis % len(node.inputs[0].shape), start, end


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("conv-batchnorm", "Conv followed by an inference BatchNormalization folded into the Conv",
            fold_batchnorm_into_conv),
    Rewrite("conv-affine", "Mul/Add by a per-channel constant after a Conv folded into its weights and bias",
            fold_affine_into_conv),
    Rewrite("matmul-affine", "Mul by a per-column constant after MatMul (constant 2-D weight), and Mul/Add after "
            "Gemm, folded into the weight and bias", fold_scale_into_matmul),
    Rewrite("pad-into-conv", "zero Pad of spatial axes before Conv/AveragePool folded into their pads",
            fold_pad_into_conv),
    Rewrite("cast-chain", "Cast through an exactly wider type merged into one Cast (or removed)", _fuse_casts),
    Rewrite("shape-arithmetic", "shape computations on partially known shapes replaced by constants or an equal "
            "tensor; Reshape/Expand targets made constant (0/-1 and 1 for symbolic dims)",
            _simplify_shape_arithmetic),
    Rewrite("noop", "no-op nodes removed (Identity, Dropout, same-type Cast, Reshape to the same shape, "
            "Add/Sub 0, Mul/Div 1 that broadcast nothing, identity Transpose, one-input Concat/Sum)", _remove_noops),
    Rewrite("transpose-chain", "Transpose of a Transpose fused into one", _fuse_transposes),
    Rewrite("reshape-chain", "Reshape-like op of a Reshape-like op fused into one Reshape", _fuse_reshapes),
    Rewrite("concat-slices", "Concat of Slices that tile a tensor replaced by the tensor", _merge_concat_of_slices),
    Rewrite("squeeze-pair", "Unsqueeze/Squeeze of the same axes undone", _cancel_squeeze_pairs),
    Rewrite("reshape-sandwich", "Reshape → pointwise ops → Reshape back: both Reshapes removed",
            _cancel_reshape_sandwiches),
    Rewrite("cse", "duplicate subexpressions (same op, attributes and inputs) merged", _merge_duplicates),
)
