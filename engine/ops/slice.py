"""Slice layer in two forms; ONNX Slice (opset 1 attributes, opset 10+ inputs).

TensorRT form (`add_slice`): params `start`, `shape` (the output shape), `stride` (one entry per input dim;
stride 0 repeats an element) and `mode`: DEFAULT (every read must be in bounds), WRAP (index mod dim), CLAMP
(nearest edge element), FILL (out-of-bounds reads give input 4, default 0) or REFLECT (mirror about the edges
without repeating them, like ONNX Pad 'reflect'). Optional inputs 1, 2, 3 override start, shape, stride at run
time.

ONNX form (polyx extension): param `onnx_semantics: True`, inputs (data, starts, ends, axes?, steps?) exactly as
ONNX Slice-13 takes them, so the bounds may be runtime shape tensors: negative starts/ends count from the back,
then starts and ends clamp to [0, dim] ([0, dim-1] and [-1, dim-1] for negative steps), so ends like INT64_MAX
mean "to the end". The importer emits the TensorRT form whenever the data shape and all bounds are static.
"""
from __future__ import annotations

from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer
from .shape_values import dims_from_value, host_ints, vector_length

DEFAULT, WRAP, CLAMP, FILL, REFLECT = "DEFAULT", "WRAP", "CLAMP", "FILL", "REFLECT"


def onnx_slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int, int]:
    """ONNX Slice clamping for one axis of known size: (first index, Python stop or -1 for 'before 0', length)."""
    if step == 0:
        raise EngineError("Slice steps must not be 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    length = max(0, -(-(end - start) // step))
    return start, end, length


def _onnx_axes_params(rank: int, starts, ends, axes, steps) -> dict[int, tuple[int, int, int]]:
    """{axis: (start, end, step)} from ONNX Slice inputs given as int lists (axes/steps may be None)."""
    if len(starts) != len(ends):
        raise EngineError(f"Slice starts {starts} and ends {ends} differ in length")
    axes = list(range(len(starts))) if axes is None else [normalize_axis(a, rank, "slice axis") for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if len(axes) != len(starts) or len(steps) != len(starts) or len(set(axes)) != len(axes):
        raise EngineError(f"Slice axes {axes} / steps {steps} do not match starts {starts}")
    return {a: (s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)}


def _optional(inputs, index):
    return inputs[index] if len(inputs) > index else None


def _infer_onnx_slice(layer, inputs):
    x = inputs[0]
    shape = list(x.shape)
    rank = len(shape)
    starts, ends, axes, steps = inputs[1], inputs[2], _optional(inputs, 3), _optional(inputs, 4)
    bounds = [starts, ends] + [t for t in (axes, steps) if t is not None]
    if all(t.value is not None for t in bounds):
        spec = _onnx_axes_params(rank, host_ints(starts.value), host_ints(ends.value),
                                 None if axes is None else host_ints(axes.value),
                                 None if steps is None else host_ints(steps.value))
        for a, (s, e, st) in spec.items():
            shape[a] = onnx_slice_bounds(s, e, st, shape[a])[2] if shape[a] >= 0 else -1
    elif axes is None:
        count = vector_length(starts, "slice starts")
        sliced = range(rank) if count < 0 else range(count)
        for a in sliced:
            shape[a] = -1
    elif axes.value is not None:
        for a in host_ints(axes.value):
            shape[normalize_axis(a, rank, "slice axis")] = -1
    else:
        shape = [-1] * rank
    return [(tuple(shape), x.dtype)]


def _compute_onnx_slice(layer, inputs, xp):
    x = inputs[0]
    axes, steps = _optional(inputs, 3), _optional(inputs, 4)
    spec = _onnx_axes_params(x.ndim, host_ints(inputs[1]), host_ints(inputs[2]),
                             None if axes is None else host_ints(axes), None if steps is None else host_ints(steps))
    index = [slice(None)] * x.ndim
    for a, (s, e, st) in spec.items():
        start, end, _ = onnx_slice_bounds(s, e, st, x.shape[a])
        index[a] = slice(start, None if end < 0 else end, st)
    return [x[tuple(index)]]


def _trt_param(layer, inputs, index: int, key: str) -> list[int]:
    tensor = _optional(inputs, index)
    return host_ints(tensor) if tensor is not None else list(layer.params[key])


def _infer_slice(layer, inputs):
    if layer.params.get("onnx_semantics"):
        return _infer_onnx_slice(layer, inputs)
    shape_input = _optional(inputs, 2)
    shape = dims_from_value(shape_input, "the slice shape") if shape_input is not None else layer.params["shape"]
    if len(shape) != len(inputs[0].shape):
        raise EngineError(f"slice shape {shape} does not match the input rank {len(inputs[0].shape)}")
    return [(tuple(shape), inputs[0].dtype)]


def _mapped_indices(indices, dim: int, mode: str, xp):
    """Map possibly out-of-bounds indices into [0, dim) following the slice mode; also the in-bounds mask."""
    valid = (indices >= 0) & (indices < dim)
    if mode == WRAP:
        return indices % dim, valid
    if mode == REFLECT:
        if dim == 1:
            return xp.zeros_like(indices), valid
        period = 2 * (dim - 1)
        folded = indices % period
        return xp.where(folded < dim, folded, period - folded), valid
    return xp.clip(indices, 0, dim - 1), valid


def _compute_slice(layer, inputs, xp):
    if layer.params.get("onnx_semantics"):
        return _compute_onnx_slice(layer, inputs, xp)
    x = inputs[0]
    start, shape, stride = (_trt_param(layer, inputs, i, k) for i, k in ((1, "start"), (2, "shape"), (3, "stride")))
    mode = layer.params["mode"]
    if mode == DEFAULT:
        index = []
        for a, (s, n, st, dim) in enumerate(zip(start, shape, stride, x.shape)):
            last = s + (n - 1) * st
            if n > 0 and not (0 <= s < dim and 0 <= last < dim):
                raise EngineError(f"slice reads out of bounds on axis {a} "
                                  f"(start {s}, stride {st}, size {n}, dim {dim})")
            if st == 0:
                index.append(xp.full(n, s, dtype=xp.int64))
            else:
                stop = s + n * st
                index.append(slice(s, None if stop < 0 else stop, st) if n > 0 else slice(0, 0))
        arrays = [i for i in index if not isinstance(i, slice)]
        if not arrays:
            return [x[tuple(index)]]
        index = [xp.arange(x.shape[a])[i] if isinstance(i, slice) else i for a, i in enumerate(index)]
        return [x[xp.ix_(*index)]]
    if any(dim == 0 for dim in x.shape) and mode != FILL:
        raise EngineError(f"slice mode {mode} cannot read from an empty input of shape {x.shape}")
    mapped, mask = [], None
    for a, (s, n, st, dim) in enumerate(zip(start, shape, stride, x.shape)):
        raw = s + xp.arange(n, dtype=xp.int64) * st
        idx, valid = _mapped_indices(raw, max(dim, 1), mode, xp)
        mapped.append(idx)
        if mode == FILL:
            view = (1,) * a + (n,) + (1,) * (x.ndim - a - 1)
            valid = valid.reshape(view)
            mask = valid if mask is None else mask & valid
    if mode != FILL:
        return [x[xp.ix_(*mapped)]]
    fill_input = _optional(inputs, 4)
    fill = xp.asarray(0 if fill_input is None else fill_input, dtype=x.dtype).reshape(())
    if x.size == 0:
        return [xp.broadcast_to(fill, tuple(shape)).copy()]
    gathered = x[xp.ix_(*mapped)] if x.ndim else x
    return [xp.where(mask, gathered, fill) if mask is not None else gathered]


register_layer(LayerType.SLICE, _infer_slice, _compute_slice, host_operands=(1, 2, 3, 4))


@onnx_op("Slice")
def import_slice(ctx):
    x = ctx.input(0)
    if ctx.opset < 10:
        starts, ends, axes = ctx.attr("starts"), ctx.attr("ends"), ctx.attr("axes")
        tensors = [ctx.constant(v, dtype="int64") for v in (starts, ends)]
        tensors += [ctx.constant(axes, dtype="int64") if axes is not None else None, None]
        values = [starts, ends, axes, None]
    else:
        tensors = [ctx.input(i) for i in range(1, 5)]
        values = [ctx.const(i) if t is not None else None for i, t in zip(range(1, 5), tensors)]
    static_bounds = all(v is not None for v, t in zip(values, tensors) if t is not None)
    if static_bounds and all(d >= 0 for d in x.shape):
        spec = _onnx_axes_params(len(x.shape), host_ints(values[0]), host_ints(values[1]),
                                 None if values[2] is None else host_ints(values[2]),
                                 None if values[3] is None else host_ints(values[3]))
        start, shape, stride = [0] * len(x.shape), list(x.shape), [1] * len(x.shape)
        for a, (s, e, st) in spec.items():
            first, _, length = onnx_slice_bounds(s, e, st, x.shape[a])
            start[a], shape[a], stride[a] = (first, length, st) if length > 0 else (0, 0, 1)
        return [ctx.network.add_slice(x, start, shape, stride, name=ctx.layer_name()).get_output(0)]
    while tensors and tensors[-1] is None:
        tensors.pop()
    if any(t is None for t in tensors):
        tensors = [t if t is not None else _default_bound(ctx, tensors, i) for i, t in enumerate(tensors)]
    layer = ctx.network.add_layer(LayerType.SLICE, [x, *tensors], {"onnx_semantics": True}, name=ctx.layer_name())
    return [layer.get_output(0)]


def _default_bound(ctx, tensors, index):
    """An omitted axes input (index 2) before a given steps input: the first len(starts) axes."""
    count = ctx.const(1)
    if count is None:
        ctx.unsupported("Slice with steps but without axes needs constant starts", UnsupportedCategory.DYNAMIC_SHAPE)
    return ctx.constant(list(range(len(host_ints(count)))), dtype="int64")
