"""Fusion rules for transformer blocks (rows of FUSION_RULES in fusion_rules.py):

- attention_fusion: MatMul(q, k^T) → scale (Mul/Div by a constant, on q, on k or on the scores, any of them) →
  optional additive mask Add → Softmax(last axis) → optional IsNaN/Where guard → MatMul(., v) becomes one
  ATTENTION node (ops/attention.py). The pure Transposes around it (q, k and v moved to (batch, heads, seq, dim),
  K^T, the output moved back) are absorbed as the node's operand permutations, MatMul's own transpose flag too.
- shape_of_transpose: Shape(Transpose(x)) → Gather(Shape(x), perm): a Transpose whose shape something reads (BERT's
  exports take the Shape of q and v) is then read by attention alone and can be absorbed.
- masked_softmax_fusion: Add(scores, mask) → Softmax(last axis) (→ guard) where no attention was matched → one
  MASKED_SOFTMAX node (ops/masked_softmax.py).
- residual_norm_fusion: Add(x, residual) → NORMALIZATION over trailing axes → one RESIDUAL_NORMALIZATION node
  (ops/residual_normalization.py); when the sum is read elsewhere too (pre-LN blocks), it becomes the node's
  second output.

Each matcher refuses what the fused node cannot compute exactly as the chain did: another axis, a log-softmax, a
mask that would enlarge the scores, a scale that is not a constant scalar, an intermediate that something else
reads (a graph output included), INT8 layers, layers pinned to different precisions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..dtypes import DataType
from ..enums import ElementWiseOperation, LayerType, MatrixOperation, UnaryOperation
from ..errors import EngineError
from ..ir import Graph, Node, Value
from ..ops.attention import attention_dims
from ..ops.masked_softmax import check_mask_shape
from ..ops.residual_normalization import normalized_axis_count
from .match import is_elementwise, scalar, sole_reader


def _plain(node: Node) -> bool:
    """Nothing fused into it, not INT8: a node the fused one can stand for."""
    return node.epilogue.empty and "int8" not in node.params and node.precision.value != "INT8"


def _one_precision(nodes: list[Node]) -> bool:
    """The nodes do not carry user-set precisions that differ (a pinned layer keeps its own)."""
    return len({node.precision for node in nodes if node.precision_is_set}) <= 1


def _fused_node(graph: Graph, layer_type: LayerType, inputs: list[Value | None], chain: list[Node], params: dict,
                extra_outputs: int = 0) -> Node:
    """The fused node, placed before the chain's last node, whose output (name and readers) it takes over; the
    rest of the chain is erased, last first."""
    last = chain[-1]
    out = last.outputs[0]
    pinned = [node for node in chain if node.precision_is_set]
    outputs = [(graph.fresh_name(f"{last.name}.fused"), out.dtype, out.shape)]
    outputs += [(graph.fresh_name(f"{last.name}.fused_{i + 1}"), out.dtype, out.shape) for i in range(extra_outputs)]
    node = graph.add_node(layer_type, inputs, outputs, params, name=f"{last.name}.{layer_type.value.lower()}",
                          before=last, precision=(pinned or [last])[0].precision, precision_is_set=bool(pinned),
                          metadata={"fused_from": [name for n in chain for name in n.metadata.get("fused_from",
                                                                                                  [n.name])]})
    graph.take_over_output(node, last)
    return node


def _erase(graph: Graph, nodes: list[Node]) -> None:
    for node in reversed(nodes):
        graph.erase(node)


# ---------------------------------------------------------------------------------------------- shared walks
def _scale_of(node: Node | None) -> tuple[Value, float] | None:
    """(x, factor) when `node` computes x * c, c * x or x / c for a constant scalar c."""
    if is_elementwise(node, ElementWiseOperation.PROD):
        for x, c in ((node.inputs[0], node.inputs[1]), (node.inputs[1], node.inputs[0])):
            factor = scalar(c)
            if factor is not None and scalar(x) is None and math.isfinite(factor):
                return x, factor
        return None
    if is_elementwise(node, ElementWiseOperation.DIV):
        divisor = scalar(node.inputs[1])
        if divisor is not None and divisor != 0 and math.isfinite(divisor) and scalar(node.inputs[0]) is None:
            return node.inputs[0], 1.0 / divisor
    return None


def _pure_transpose(node: Node | None) -> list[int] | None:
    """The permutation of a Shuffle that only transposes (no reshape), else None."""
    if node is None or node.type != LayerType.SHUFFLE or len(node.inputs) != 1 or node.params.get("axes_op") or \
            not _plain(node):
        return None
    p = node.params
    if p.get("reshape_dims") is not None or p.get("second_transpose") is not None or not p.get("first_transpose"):
        return None
    return list(p["first_transpose"])


@dataclass
class Operand:
    """A chain input after peeling the scales and transposes between it and its reader: the logical operand is
    transpose(value, perm) * factor."""

    value: Value
    perm: list[int]
    factor: float = 1.0
    nodes: list[Node] = field(default_factory=list)  # the peeled nodes, outermost (nearest the source) first


def _peel(graph: Graph, value: Value, reader: Node, perm: list[int], transposes: bool = True) -> Operand:
    """Walk up from `value` (read by `reader`; the logical operand is transpose(value, perm)) through
    constant-scalar scales and pure transposes whose only reader is the next node of the walk."""
    operand = Operand(value, list(perm))
    while sole_reader(graph, operand.value) is reader:
        producer = operand.value.producer
        scaled = _scale_of(producer) if producer is not None else None
        transpose = _pure_transpose(producer) if transposes else None
        if scaled is not None:
            operand.value, operand.factor = scaled[0], operand.factor * scaled[1]
        elif transpose is not None and len(transpose) == len(operand.perm):
            operand.value, operand.perm = producer.inputs[0], [transpose[a] for a in operand.perm]
        else:
            break
        operand.nodes.insert(0, producer)
        reader = producer
    return operand


def _is_plain_matmul(node: Node | None, op1_ok: tuple[MatrixOperation, ...]) -> bool:
    if node is None or node.type != LayerType.MATRIX_MULTIPLY or not _plain(node):
        return False
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        return False
    return MatrixOperation(node.params["op0"]) == MatrixOperation.NONE and \
        MatrixOperation(node.params["op1"]) in op1_ok


def _last_axis_softmax(softmax: Node) -> bool:
    x = softmax.inputs[0]
    return x.shape is not None and len(x.shape) >= 1 and not softmax.params.get("log") and _plain(softmax) and \
        int(softmax.params["axes"]) == 1 << (len(x.shape) - 1) and x.dtype.is_floating


def _nan_guard(graph: Graph, probs: Value) -> tuple[list[Node], Value] | None:
    """([IsNaN, Where], guarded value) when `probs` is read only by Where(IsNaN(probs), 0, probs), the guard newer
    exports put after a Softmax so a fully masked row gives zeros instead of NaN."""
    if probs in graph.outputs or len(probs.uses) != 2:
        return None
    readers = {node.type: node for node, _ in probs.uses}
    isnan, where = readers.get(LayerType.UNARY), readers.get(LayerType.SELECT)
    if isnan is None or where is None or UnaryOperation(isnan.params["op"]) != UnaryOperation.ISNAN:
        return None
    if sole_reader(graph, isnan.outputs[0]) is not where or where.inputs[0] is not isnan.outputs[0] or \
            where.inputs[2] is not probs or scalar(where.inputs[1]) != 0.0:
        return None
    if where.outputs[0].dtype != probs.dtype or where.outputs[0].shape != probs.shape:
        return None
    return [isnan, where], where.outputs[0]


def _after_softmax(graph: Graph, softmax: Node) -> tuple[list[Node], Value, Node | None]:
    """(guard nodes, the value the chain continues from, its sole reader)."""
    guard = _nan_guard(graph, softmax.outputs[0])
    nodes, value = guard if guard is not None else ([], softmax.outputs[0])
    return nodes, value, sole_reader(graph, value)


def _split_mask_add(graph: Graph, softmax: Node) -> tuple[Node, list[tuple[Value, Value]]] | None:
    """The Add feeding the softmax and its (scores, mask) orders worth trying."""
    add = softmax.inputs[0].producer
    if not is_elementwise(add, ElementWiseOperation.SUM) or not _plain(add) or \
            sole_reader(graph, add.outputs[0]) is not softmax or add.inputs[0] is add.inputs[1]:
        return None
    a, b = add.inputs
    return add, [(a, b), (b, a)]


def _mask_fits(mask: Value, scores: Value, scores_shape: tuple[int, ...], node: Node) -> bool:
    if mask.dtype != scores.dtype or mask.shape is None:
        return False
    try:
        check_mask_shape(node, mask.shape, scores_shape)
    except EngineError:
        return False
    return True


# ---------------------------------------------------------------------------------------------- attention
@dataclass
class Attention:
    chain: list[Node]           # every node fused, in graph order, the one whose output the fused node takes last
    q: Operand
    k: Operand
    v: Operand
    mask: Value | None
    scale: float
    out_perm: list[int]
    nan_to_zero: bool


def _scores_chain(graph: Graph, scores: Value, reader: Node) -> tuple[Node, Operand] | None:
    """(the Q·K MatMul, the peeled scores operand) when `scores` is a scaled MatMul."""
    operand = _peel(graph, scores, reader, list(range(len(scores.shape or ()))), transposes=False)
    matmul = operand.value.producer
    if not _is_plain_matmul(matmul, (MatrixOperation.NONE, MatrixOperation.TRANSPOSE)) or \
            sole_reader(graph, operand.value) is not (operand.nodes[0] if operand.nodes else reader):
        return None
    return matmul, operand


def _output_transpose(graph: Graph, pv: Node) -> tuple[list[Node], list[int]]:
    """The pure transpose the attention output goes through (heads back behind the sequence), if it is its only
    reader: ([that Shuffle], its perm), else ([], identity)."""
    out = pv.outputs[0]
    identity = list(range(len(out.shape)))
    reader = sole_reader(graph, out)
    perm = _pure_transpose(reader)
    return ([reader], perm) if perm is not None and len(perm) == len(identity) else ([], identity)


def match_attention(graph: Graph, softmax: Node) -> Attention | None:
    if not _last_axis_softmax(softmax) or len(softmax.inputs[0].shape) not in (3, 4):
        return None
    rank = len(softmax.inputs[0].shape)
    identity, swap = list(range(rank)), list(range(rank - 2)) + [rank - 1, rank - 2]
    guard, probs, pv = _after_softmax(graph, softmax)
    if not _is_plain_matmul(pv, (MatrixOperation.NONE,)) or pv.inputs[0] is not probs:
        return None
    split = _split_mask_add(graph, softmax)
    candidates = [(softmax.inputs[0], None, softmax, [])] if split is None else \
        [(scores, mask, split[0], [split[0]]) for scores, mask in split[1]]
    for scores, mask, reader, add_nodes in candidates:
        found = _scores_chain(graph, scores, reader)
        if found is None:
            continue
        qk, scores_operand = found
        q = _peel(graph, qk.inputs[0], qk, identity)
        k_is_transposed = MatrixOperation(qk.params["op1"]) == MatrixOperation.NONE  # the operand is K^T
        k = _peel(graph, qk.inputs[1], qk, swap if k_is_transposed else identity)
        v = _peel(graph, pv.inputs[1], pv, identity)
        out_nodes, out_perm = _output_transpose(graph, pv)
        scale = q.factor * k.factor * scores_operand.factor
        if v.factor != 1.0:  # a scaled v is not part of the pattern: keep v's Mul outside
            v = Operand(pv.inputs[1], identity)
        values = (q.value, k.value, v.value)
        if not math.isfinite(scale) or len({x.dtype for x in values}) != 1 or not q.value.dtype.is_floating or \
                any(x.shape is None for x in values):
            continue
        params = {"q_perm": q.perm, "k_perm": k.perm, "v_perm": v.perm, "out_perm": out_perm}
        probe = Node(LayerType.ATTENTION, softmax.name, params)
        try:
            leading, sq, sk, _, _ = attention_dims(probe, *(x.shape for x in values))
        except EngineError:
            continue
        if mask is not None and not _mask_fits(mask, scores, leading + (sq, sk), probe):
            continue
        chain = q.nodes + k.nodes + v.nodes + [qk] + scores_operand.nodes + add_nodes + [softmax] + guard + [pv] + \
            out_nodes
        if not _one_precision(chain) or not all(_plain(node) for node in chain):
            continue
        order = {id(node): i for i, node in enumerate(graph.nodes)}
        chain.sort(key=lambda node: order[id(node)])
        return Attention(chain, q, k, v, mask, scale, out_perm, bool(guard))
    return None


def make_attention(graph: Graph, m: Attention) -> list[str]:
    inputs = [m.q.value, m.k.value, m.v.value] + ([m.mask] if m.mask is not None else [])
    _fused_node(graph, LayerType.ATTENTION, inputs, m.chain,
                {"scale": m.scale, "q_perm": m.q.perm, "k_perm": m.k.perm, "v_perm": m.v.perm,
                 "out_perm": m.out_perm, "nan_to_zero": m.nan_to_zero})
    _erase(graph, m.chain[:-1])
    return [node.name for node in m.chain]


# ---------------------------------------------------------------------------------------------- shape of transpose
def match_shape_of_transpose(graph: Graph, shape: Node) -> tuple[Node, list[int]] | None:
    """(the Shape node, the Transpose's perm) when a Shape reads a pure Transpose that something else reads too."""
    transposed = shape.inputs[0]
    perm = _pure_transpose(transposed.producer)
    if perm is None or len(transposed.uses) < 2:
        return None
    return shape, perm


def read_shape_before_transpose(graph: Graph, m: tuple[Node, list[int]]) -> list[str]:
    shape, perm = m
    source = shape.inputs[0].producer.inputs[0]
    indices = np.array([perm[i] for i in range(len(perm))[slice(shape.params["start"], shape.params["end"])]],
                       np.int64)
    whole = graph.add_node(LayerType.SHAPE, [source], [(graph.fresh_name(f"{shape.name}.untransposed"),
                                                        DataType.INT64, (len(perm),))],
                           {"start": 0, "end": None}, name=f"{shape.name}.untransposed", before=shape)
    picks = graph.add_node(LayerType.CONSTANT, [], [(graph.fresh_name(f"{shape.name}.perm"), DataType.INT64,
                                                     indices.shape)],
                           {"weights": indices, "shape": list(indices.shape)}, name=f"{shape.name}.perm", before=shape)
    gather = graph.add_node(LayerType.GATHER, [whole.outputs[0], picks.outputs[0]],
                            [(graph.fresh_name(f"{shape.name}.permuted"), DataType.INT64, indices.shape)],
                            {"axis": 0, "mode": "DEFAULT", "num_elementwise_dims": 0}, name=f"{shape.name}.permuted",
                            before=shape, metadata={"fused_from": [shape.name]})
    graph.take_over_output(gather, shape)
    return [shape.name]


# ---------------------------------------------------------------------------------------------- masked softmax
def match_masked_softmax(graph: Graph, softmax: Node) -> tuple[list[Node], Value, Value, bool] | None:
    """(chain, scores, mask, nan_to_zero) for Add(scores, mask) → Softmax(last axis) (→ guard)."""
    if not _last_axis_softmax(softmax):
        return None
    split = _split_mask_add(graph, softmax)
    if split is None:
        return None
    add, orders = split
    if add.outputs[0].shape is None:
        return None
    shape = tuple(add.outputs[0].shape)
    guard = _nan_guard(graph, softmax.outputs[0])
    chain = [add, softmax] + (guard[0] if guard else [])
    if not _one_precision(chain) or not all(_plain(node) for node in chain):
        return None
    for scores, mask in orders:
        if scores.shape is not None and tuple(scores.shape) == shape and _mask_fits(mask, scores, shape, softmax):
            return chain, scores, mask, guard is not None
    return None


def make_masked_softmax(graph: Graph, m: tuple[list[Node], Value, Value, bool]) -> list[str]:
    chain, scores, mask, nan_to_zero = m
    _fused_node(graph, LayerType.MASKED_SOFTMAX, [scores, mask], chain, {"nan_to_zero": nan_to_zero})
    _erase(graph, chain[:-1])
    return [node.name for node in chain]


# ---------------------------------------------------------------------------------------------- residual + norm
def _same_shape(*values: Value) -> bool:
    """One rank and, per dim, one known size (unknown dims agree at run time in every export we know; if they
    do not, the fused layer still broadcasts as the Add did, only its GPU kernel's fast path is lost)."""
    shapes = [v.shape for v in values]
    if any(s is None for s in shapes) or len({len(s) for s in shapes}) != 1:
        return False
    return all(len({d for d in dims if d >= 0}) <= 1 and (1 not in dims or set(dims) == {1}) for dims in zip(*shapes))


def match_residual_norm(graph: Graph, norm: Node) -> tuple[Node, Node, bool] | None:
    """(add, norm, whether the sum is read elsewhere too) for Add(x, r) → LayerNorm over trailing axes."""
    x = norm.inputs[0]
    add = x.producer
    if int(norm.params.get("num_groups", 1)) != 1 or not _plain(norm) or not is_elementwise(
            add, ElementWiseOperation.SUM) or not _plain(add) or x in graph.outputs:
        return None
    a, b = add.inputs
    if a is b or not x.dtype.is_floating or a.dtype != b.dtype or not _same_shape(a, b, x):
        return None
    if sum(1 for node, position in x.uses if node is norm) != 1 or norm.inputs[0] is not x or \
            not _one_precision([add, norm]):
        return None
    try:
        normalized_axis_count(norm, len(x.shape))
    except EngineError:
        return None
    return add, norm, len(x.uses) > 1


def make_residual_norm(graph: Graph, m: tuple[Node, Node, bool]) -> list[str]:
    add, norm, keep_sum = m
    inputs = list(add.inputs) + (list(norm.inputs[1:3]) + [None, None])[:2]
    params = {"axes": list(norm.params["axes"]), "epsilon": float(norm.params["epsilon"]),
              "outputs": 2 if keep_sum else 1}
    node = _fused_node(graph, LayerType.RESIDUAL_NORMALIZATION, inputs, [add, norm], params,
                       extra_outputs=1 if keep_sum else 0)
    if keep_sum:
        total = add.outputs[0]
        graph.replace_all_uses_with(total, node.outputs[1])
        name = total.name
        graph.erase(add)
        graph.rename(node.outputs[1], name)
    else:
        graph.erase(add)
    return [add.name, norm.name]
