"""Graph simplifications that constant folding alone leaves behind, once shapes are static.

Folding a PyTorch export leaves no-op Reshapes/Concats/Casts, zero-bias Adds, Transpose pairs, Reshape chains,
`Reshape → pointwise ops → Reshape back` sandwiches and duplicated subexpressions. Each rewrite here keeps
the values of every graph output bit-for-bit (up to the sign of zero) and needs only shapes the graph already
states; none of them invents a value.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import onnx_graphsurgeon as gs

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


def simplify(graph: gs.Graph) -> Counter:
    """Run every rewrite once; returns how many of each kind happened (graph is cleaned up afterwards)."""
    done: Counter = Counter()
    graph.toposort()
    done["no-op node removed"] += _remove_noops(graph)
    done["transpose pair fused"] += _fuse_transposes(graph)
    done["reshape chain fused"] += _fuse_reshapes(graph)
    done["reshape pair cancelled"] += _cancel_reshape_sandwiches(graph)
    graph.cleanup()
    graph.toposort()
    done["duplicate node merged"] += _merge_duplicates(graph)
    graph.cleanup()
    return +done


def _static_shape(tensor: gs.Tensor) -> tuple[int, ...] | None:
    shape = tensor.shape
    if shape is None or any(not isinstance(d, (int, np.integer)) or d < 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)


def _same_type(a: gs.Tensor, b: gs.Tensor) -> bool:
    shape = _static_shape(a)
    return shape is not None and shape == _static_shape(b) and a.dtype is not None and a.dtype == b.dtype


def _bypass(graph: gs.Graph, node: gs.Node, out: gs.Tensor, keep: gs.Tensor) -> bool:
    """Make every reader of `out` read `keep` instead, so `node` (producing `out`) becomes dead."""
    if out in graph.outputs:
        # Graph outputs keep their names: let `keep`'s producer produce `out` instead.
        if isinstance(keep, gs.Constant) or not keep.inputs or keep in graph.outputs or keep in graph.inputs:
            return False
        producer = keep.inputs[0]
        for consumer in list(keep.outputs):
            _replace_input(consumer, keep, out)
        node.outputs.clear()
        producer.outputs[producer.outputs.index(keep)] = out
        return True
    for consumer in list(out.outputs):
        _replace_input(consumer, out, keep)
    node.outputs.clear()
    return True


def _replace_input(node: gs.Node, old: gs.Tensor, new: gs.Tensor) -> None:
    for index, tensor in enumerate(node.inputs):
        if tensor is old:
            node.inputs[index] = new


def _constant_value(tensor: gs.Tensor) -> np.ndarray | None:
    return tensor.values if isinstance(tensor, gs.Constant) else None


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
    perm = node.attrs.get("perm")
    if node.op == "Transpose" and perm is not None and list(perm) == list(range(len(perm))):
        return first
    if node.op in _NEUTRAL_OPERAND and len(node.inputs) == 2:
        candidates = [(node.inputs[0], node.inputs[1])]
        if node.op in _COMMUTATIVE:
            candidates.append((node.inputs[1], node.inputs[0]))
        for data, operand in candidates:
            value = _constant_value(operand)
            if value is not None and value.size and np.all(value == _NEUTRAL_OPERAND[node.op]) \
                    and _same_type(data, out):
                return data
    return None


def _remove_noops(graph: gs.Graph) -> int:
    removed = 0
    for node in list(graph.nodes):
        source = _noop_source(node)
        if source is not None and node.outputs and _bypass(graph, node, node.outputs[0], source):
            removed += 1
    return removed


def _single_reader(graph: gs.Graph, tensor: gs.Tensor) -> bool:
    return len(tensor.outputs) == 1 and tensor not in graph.outputs


def _fuse_transposes(graph: gs.Graph) -> int:
    fused = 0
    for node in list(graph.nodes):
        if node.op != "Transpose" or not node.outputs or not node.inputs:
            continue
        source = node.inputs[0]
        first = source.inputs[0] if source.inputs else None
        if first is None or first.op != "Transpose" or not _single_reader(graph, source):
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
        shape = _static_shape(node.outputs[0])
        source = node.inputs[0]
        first = source.inputs[0] if source.inputs else None
        if shape is None or 0 in shape or first is None or first.op not in _RESHAPES:
            continue
        if not _single_reader(graph, source):
            continue
        _reshape_to(node, first.inputs[0], shape)
        first.outputs.clear()
        fused += 1
    return fused


def _cancel_reshape_sandwiches(graph: gs.Graph) -> int:
    """`X → Reshape → pointwise ops (scalar operands) → Reshape back to X's shape` becomes the pointwise ops on X."""
    cancelled = 0
    for node in list(graph.nodes):
        if node.op not in _RESHAPES or not node.outputs or not node.inputs:
            continue
        data, reshaped = node.inputs[0], node.outputs[0]
        inner_shape, outer_shape = _static_shape(data), _static_shape(reshaped)
        if inner_shape is None or outer_shape is None or inner_shape == outer_shape or reshaped in graph.outputs:
            continue
        region = _pointwise_region(graph, reshaped, outer_shape, inner_shape)
        if region is None:
            continue
        region_nodes, exits = region
        for member in region_nodes:
            _replace_input(member, reshaped, data)
            for index, operand in enumerate(member.inputs):
                value = _constant_value(operand)
                if value is not None and value.ndim > len(inner_shape):
                    member.inputs[index] = gs.Constant(f"{operand.name}_scalar", value.reshape(()))
            member.outputs[0].shape = list(inner_shape)
        for exit_node in exits:
            _bypass(graph, exit_node, exit_node.outputs[0], exit_node.inputs[0])
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
            if consumer.op in _RESHAPES and _static_shape(consumer.outputs[0]) == back \
                    and consumer.inputs[0] is tensor:
                exits.append(consumer)
                continue
            if consumer.op not in _POINTWISE or len(consumer.outputs) != 1 \
                    or _static_shape(consumer.outputs[0]) != shape or consumer.outputs[0] in graph.outputs:
                return None
            members.append(consumer)
            tensors.add(id(consumer.outputs[0]))
            frontier.append(consumer.outputs[0])
    if not exits:
        return None
    for member in members:
        for operand in member.inputs:
            value = _constant_value(operand)
            if id(operand) not in tensors and (value is None or value.size != 1):
                return None
    return members, exits


def _input_key(tensor: gs.Tensor):
    value = _constant_value(tensor)
    if value is None:
        return id(tensor)
    if value.size > 1 << 20:
        return id(tensor)
    return ("const", str(value.dtype), value.shape, hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest())


def _merge_duplicates(graph: gs.Graph) -> int:
    """Common subexpressions: a node equal to an earlier one (op, attributes, inputs) reuses its outputs."""
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
                _replace_input(consumer, dup, keep)
        node.outputs.clear()
        merged += 1
    return merged
