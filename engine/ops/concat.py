"""Concatenation layer (TensorRT IConcatenationLayer) and a Split layer; ONNX Concat and Split.

SPLIT (polyx layer type; TensorRT's parser emits one Slice per output instead, which cannot follow a dynamic
split dim) cuts input 0 along param `axis` into `num_outputs` pieces. Piece sizes come from param `split`, or
from optional input 1 (a runtime size tensor), or else are ceil(dim / num_outputs) with a smaller last piece
(ONNX Split-18 `num_outputs` semantics, which equals the even split of older opsets when the dim divides).
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer
from .shape_values import host_ints


def _infer_concat(layer, inputs):
    present = [i for i in inputs if i is not None]
    rank = len(present[0].shape)
    axis = normalize_axis(layer.params["axis"], rank, "concat axis")
    out = list(present[0].shape)
    for info in present[1:]:
        if len(info.shape) != rank:
            raise EngineError(f"concat inputs have different ranks: {[i.shape for i in present]}")
        for k, d in enumerate(info.shape):
            if k != axis and d >= 0:
                if out[k] >= 0 and out[k] != d:
                    raise EngineError(f"concat inputs differ outside axis {axis}: {[i.shape for i in present]}")
                out[k] = d
    sizes = [i.shape[axis] for i in present]
    out[axis] = -1 if any(d < 0 for d in sizes) else sum(sizes)
    return [(tuple(out), present[0].dtype)]


def _compute_concat(layer, inputs, xp):
    present = [x for x in inputs if x is not None]
    axis = normalize_axis(layer.params["axis"], present[0].ndim, "concat axis")
    return [xp.concatenate(present, axis=axis)]


register_layer(LayerType.CONCATENATION, _infer_concat, _compute_concat)


def _split_sizes(layer, dim: int, sizes: list[int] | None) -> list[int]:
    """Piece sizes along the axis; -1 where unknown. `sizes` are explicit sizes when given."""
    n = layer.params["num_outputs"]
    if sizes is not None:
        if len(sizes) != n:
            raise EngineError(f"split sizes {sizes} do not give {n} outputs")
        if dim >= 0 and all(s >= 0 for s in sizes) and sum(sizes) != dim:
            raise EngineError(f"split sizes {sizes} do not add up to the dim {dim}")
        return sizes
    if dim < 0:
        return [-1] * n
    chunk = -(-dim // n)
    if chunk * (n - 1) > dim:
        raise EngineError(f"a dim of {dim} cannot be split into {n} non-empty pieces")
    return [chunk] * (n - 1) + [dim - chunk * (n - 1)]


def _infer_split(layer, inputs):
    x = inputs[0]
    axis = normalize_axis(layer.params["axis"], len(x.shape), "split axis")
    n = layer.params["num_outputs"]
    sizes = layer.params["split"]
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = [-1] * n if inputs[1].value is None else host_ints(inputs[1].value)
    sizes = _split_sizes(layer, x.shape[axis], sizes)
    return [(x.shape[:axis] + (s,) + x.shape[axis + 1:], x.dtype) for s in sizes]


def _compute_split(layer, inputs, xp):
    x = inputs[0]
    axis = normalize_axis(layer.params["axis"], x.ndim, "split axis")
    sizes = layer.params["split"]
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = host_ints(inputs[1])
    sizes = _split_sizes(layer, x.shape[axis], sizes)
    outs, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        outs.append(x[index])
        start += size
    return outs


register_layer(LayerType.SPLIT, _infer_split, _compute_split, host_operands=(1,))


@onnx_op("Concat")
def import_concat(ctx):
    inputs = [t for t in ctx.inputs() if t is not None]
    layer = ctx.network.add_concatenation(inputs, name=ctx.layer_name())
    rank = len(inputs[0].shape)
    layer.axis = normalize_axis(int(ctx.attr("axis", 1 if ctx.opset < 4 else 0)), rank, "concat axis")
    return [layer.get_output(0)]


@onnx_op("Split")
def import_split(ctx):
    x = ctx.input(0)
    n = ctx.num_outputs
    axis = normalize_axis(int(ctx.attr("axis", 0)), len(x.shape), "split axis")
    inputs, sizes = [x], None
    if ctx.opset < 13 or ctx.input(1) is None:
        split = ctx.attr("split") if ctx.opset < 13 else None
        if ctx.opset < 13 and ctx.input(1) is not None:  # Split-2..11 took the sizes as an optional input (v1)
            split = ctx.const(1)
            if split is None:
                ctx.unsupported("the split input must be a constant", UnsupportedCategory.DYNAMIC_SHAPE)
        sizes = None if split is None else host_ints(split)
    elif ctx.const(1) is not None:
        sizes = host_ints(ctx.const(1))
    else:
        inputs.append(ctx.input(1))
    if ctx.opset >= 18 and sizes is None and len(inputs) == 1:
        num_outputs = ctx.attr("num_outputs")
        if num_outputs is None:
            ctx.unsupported("Split-18 needs either the split input or the num_outputs attribute",
                            UnsupportedCategory.ATTRIBUTE)
        if int(num_outputs) != n:
            ctx.unsupported(f"num_outputs={num_outputs} but the node has {n} outputs", UnsupportedCategory.OTHER)
    params = {"axis": axis, "num_outputs": n, "split": sizes}
    layer = ctx.network.add_layer(LayerType.SPLIT, inputs, params, num_outputs=n, name=ctx.layer_name())
    return list(layer.outputs)
