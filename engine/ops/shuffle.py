"""Shuffle layer (TensorRT IShuffleLayer: transpose → reshape → transpose); ONNX Reshape, Flatten, Squeeze,
Unsqueeze, Transpose.

TensorRT params: `first_transpose`, `reshape_dims`, `second_transpose` (None = skip that step) and
`zero_is_placeholder` (a 0 in the reshape dims copies the input dim at the same index; -1 is inferred). Optional
input 1 is a runtime shape tensor holding the reshape dims.

polyx extension, for ONNX ops whose target shape is a function of the input shape that reshape dims cannot always
express on dynamic dims: param `axes_op` = "SQUEEZE" | "UNSQUEEZE" (input 1 holds the ONNX axes, which may be a
runtime tensor; SQUEEZE without input 1 drops every dim of size 1) or "FLATTEN" (param `axis`). The importers use
plain reshape dims whenever the input shape and the axes are static.
"""
from __future__ import annotations

import math

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import TensorInfo, normalize_axis, onnx_op, register_layer
from .shape_values import dims_from_value, host_ints

SQUEEZE, UNSQUEEZE, FLATTEN = "SQUEEZE", "UNSQUEEZE", "FLATTEN"


def _permute(shape: list[int], perm: list[int] | None) -> list[int]:
    if perm is None:
        return list(shape)
    if sorted(perm) != list(range(len(shape))):
        raise EngineError(f"transpose permutation {perm} does not fit rank {len(shape)}")
    return [shape[p] for p in perm]


def resolve_reshape(src: list[int], dims: list[int], zero_is_placeholder: bool) -> list[int]:
    """TensorRT reshape dims → output dims. `src` may hold -1 (unknown); the result then holds -1 where the
    dim cannot be known, except that unknown source dims copied by 0 cancel out when inferring the -1 dim."""
    out, copied_from = [], []
    for i, d in enumerate(dims):
        if d == 0 and zero_is_placeholder:
            if i >= len(src):
                raise EngineError(f"reshape dim {i} is 0 (copy) but the input has rank {len(src)}")
            out.append(src[i])
            copied_from.append(i)
        elif d < -1:
            raise EngineError(f"invalid reshape dim {d} in {dims}")
        else:
            out.append(d)
            copied_from.append(None)
    inferred = [j for j, d in enumerate(dims) if d == -1]
    if len(inferred) > 1:
        raise EngineError(f"reshape dims {dims} hold more than one -1")
    unknown_src = {i for i, d in enumerate(src) if d < 0}
    if inferred:
        j = inferred[0]
        copied_unknown = {copied_from[k] for k, d in enumerate(out) if d < 0 and k != j}
        if unknown_src == copied_unknown:
            total = math.prod(d for d in src if d >= 0)
            rest = math.prod(d for k, d in enumerate(out) if d >= 0 and k != j)
            if rest == 0 or total % rest:
                raise EngineError(f"cannot reshape {tuple(src)} to {dims}: the -1 dim is not a whole number")
            out[j] = total // rest
    elif not unknown_src and all(d >= 0 for d in out) and math.prod(src) != math.prod(out):
        raise EngineError(f"cannot reshape {tuple(src)} ({math.prod(src)} elements) to {tuple(out)}")
    return out


def _squeeze_dims(src: list[int], axes: list[int] | None) -> list[int]:
    if axes is None:
        if any(d < 0 for d in src):
            raise EngineError(f"Squeeze without axes needs a static input shape, got {tuple(src)}")
        return [d for d in src if d != 1]
    axes = {normalize_axis(a, len(src), "squeeze axis") for a in axes}
    for a in axes:
        if src[a] not in (1, -1):
            raise EngineError(f"cannot squeeze axis {a} of size {src[a]}")
    return [d for i, d in enumerate(src) if i not in axes]


def _unsqueeze_dims(src: list[int], axes: list[int]) -> list[int]:
    rank = len(src) + len(axes)
    axes_set = {normalize_axis(a, rank, "unsqueeze axis") for a in axes}
    if len(axes_set) != len(axes):
        raise EngineError(f"unsqueeze axes {axes} repeat an axis")
    rest = iter(src)
    return [1 if i in axes_set else next(rest) for i in range(rank)]


def _flatten_dims(src: list[int], axis: int) -> list[int]:
    def part(dims):
        return -1 if any(d < 0 for d in dims) else math.prod(dims)

    return [part(src[:axis]), part(src[axis:])]


def _output_dims(layer, src: list[int], second: TensorInfo | None) -> list[int]:
    """Output dims from the (possibly partly unknown) input dims and input 1, the same at build and run time."""
    params = layer.params
    op = params.get("axes_op")
    if op == FLATTEN:
        return _flatten_dims(src, params["axis"])
    if op == SQUEEZE:
        if second is None:
            return _squeeze_dims(src, None)
        if second.value is None:
            return [-1] * (len(src) - len(dims_from_value(second, "squeeze axes")))
        return _squeeze_dims(src, host_ints(second.value))
    if op == UNSQUEEZE:
        if second.value is None:
            return [-1] * (len(src) + len(dims_from_value(second, "unsqueeze axes")))
        return _unsqueeze_dims(src, host_ints(second.value))
    if op is not None:
        raise EngineError(f"unknown shuffle axes_op {op!r}")
    shape = _permute(src, params["first_transpose"])
    if second is not None and second.value is None:
        shape = dims_from_value(second, "the reshape shape tensor")
    elif second is not None:
        shape = resolve_reshape(shape, host_ints(second.value), params["zero_is_placeholder"])
    elif params["reshape_dims"] is not None:
        shape = resolve_reshape(shape, list(params["reshape_dims"]), params["zero_is_placeholder"])
    return _permute(shape, params["second_transpose"])


def _second_input(inputs) -> TensorInfo | None:
    return inputs[1] if len(inputs) > 1 else None


def _infer_shuffle(layer, inputs):
    return [(tuple(_output_dims(layer, list(inputs[0].shape), _second_input(inputs))), inputs[0].dtype)]


def _compute_shuffle(layer, inputs, xp):
    x = inputs[0]
    second = _second_input(inputs)
    second_info = None if second is None else TensorInfo(tuple(second.shape), None, second)
    if layer.params.get("axes_op") is not None:
        return [x.reshape(_output_dims(layer, list(x.shape), second_info))]
    params = layer.params
    if params["first_transpose"] is not None:
        x = xp.transpose(x, params["first_transpose"])
    if second_info is not None or params["reshape_dims"] is not None:
        dims = host_ints(second) if second_info is not None else list(params["reshape_dims"])
        x = x.reshape(resolve_reshape(list(x.shape), dims, params["zero_is_placeholder"]))
    if params["second_transpose"] is not None:
        x = xp.transpose(x, params["second_transpose"])
    return [x]


register_layer(LayerType.SHUFFLE, _infer_shuffle, _compute_shuffle, host_operands=(1,))


def _is_static(shape) -> bool:
    return shape is not None and all(d >= 0 for d in shape)


def _static_or_axes_op(ctx, x, static_dims, axes_op: str, axes_tensor=None, params=None):
    """Plain reshape when the target is static, else the shape-function form that resolves at run time."""
    if static_dims is not None:
        layer = ctx.network.add_shuffle(x, name=ctx.layer_name())
        layer.zero_is_placeholder = False
        layer.reshape_dims = list(static_dims)
        return [layer.get_output(0)]
    inputs = [x] if axes_tensor is None else [x, axes_tensor]
    all_params = {"first_transpose": None, "reshape_dims": None, "second_transpose": None,
                  "zero_is_placeholder": True, "axes_op": axes_op, **(params or {})}
    return [ctx.network.add_layer(LayerType.SHUFFLE, inputs, all_params, name=ctx.layer_name()).get_output(0)]


@onnx_op("Reshape")
def import_reshape(ctx):
    x = ctx.input(0)
    layer = ctx.network.add_shuffle(x, name=ctx.layer_name())
    layer.zero_is_placeholder = not bool(ctx.attr("allowzero", 0))
    if ctx.opset < 5:
        layer.reshape_dims = [int(d) for d in ctx.attr("shape")]
        return [layer.get_output(0)]
    dims = ctx.const(1)
    if dims is not None:
        layer.reshape_dims = host_ints(dims)
    else:
        layer.set_input(1, ctx.input(1))
    return [layer.get_output(0)]


@onnx_op("Flatten")
def import_flatten(ctx):
    x = ctx.input(0)
    rank = len(x.shape)
    axis = int(ctx.attr("axis", 1))
    if not -rank <= axis <= rank:
        ctx.unsupported(f"flatten axis {axis} is out of range for rank {rank}", UnsupportedCategory.OTHER)
    axis = axis + rank if axis < 0 else axis
    static = _flatten_dims(list(x.shape), axis) if _is_static(x.shape) else None
    return _static_or_axes_op(ctx, x, static, FLATTEN, params={"axis": axis})


def _axes_input(ctx, required: bool):
    """(axes list or None, axes tensor or None): attribute before opset 13, input 1 from opset 13."""
    if ctx.opset < 13:
        axes = ctx.attr("axes")
        if axes is None and required:
            ctx.unsupported("Unsqueeze needs the 'axes' attribute", UnsupportedCategory.ATTRIBUTE)
        return (None if axes is None else [int(a) for a in axes]), None
    tensor = ctx.input(1)
    if tensor is None:
        if required:
            ctx.unsupported("Unsqueeze needs the axes input", UnsupportedCategory.OTHER)
        return None, None
    value = ctx.const(1)
    return (None if value is None else host_ints(value)), tensor


@onnx_op("Squeeze")
def import_squeeze(ctx):
    x = ctx.input(0)
    axes, tensor = _axes_input(ctx, required=False)
    if axes is None and tensor is None and not _is_static(x.shape):
        ctx.unsupported(f"Squeeze without axes needs a static input shape, got {x.shape}",
                        UnsupportedCategory.DYNAMIC_SHAPE)
    if _is_static(x.shape) and (axes is not None or tensor is None):
        return _static_or_axes_op(ctx, x, _squeeze_dims(list(x.shape), axes), SQUEEZE)
    if tensor is None:
        tensor = ctx.constant(axes, dtype="int64")
    return _static_or_axes_op(ctx, x, None, SQUEEZE, tensor)


@onnx_op("Unsqueeze")
def import_unsqueeze(ctx):
    x = ctx.input(0)
    axes, tensor = _axes_input(ctx, required=True)
    if _is_static(x.shape) and axes is not None:
        return _static_or_axes_op(ctx, x, _unsqueeze_dims(list(x.shape), axes), UNSQUEEZE)
    if tensor is None:
        tensor = ctx.constant(axes, dtype="int64")
    return _static_or_axes_op(ctx, x, None, UNSQUEEZE, tensor)


@onnx_op("Transpose")
def import_transpose(ctx):
    x = ctx.input(0)
    perm = ctx.attr("perm")
    perm = list(range(len(x.shape)))[::-1] if perm is None else [normalize_axis(int(p), len(x.shape)) for p in perm]
    layer = ctx.network.add_shuffle(x, name=ctx.layer_name())
    layer.first_transpose = perm
    return [layer.get_output(0)]
