"""Padding layer (polyx form of TensorRT IPaddingLayer, covering every ONNX Pad mode); ONNX Pad.

Inputs (x, pads?, value?, axes?); params:
  pads   ONNX layout [begin_0, ..., begin_{n-1}, end_0, ..., end_{n-1}] for the axes in `axes`, or None when
         input 1 holds them (a runtime INT tensor); negative entries crop.
  axes   the axes `pads` refer to (ONNX Pad-18), or None when input 3 holds them or for all axes in order.
  mode   "constant" (fill with input 2, default 0), "reflect", "edge" or "wrap" (ONNX names).
"""
from __future__ import annotations

from ..dtypes import nptype
from ..enums import LayerType
from ..errors import EngineError, UnsupportedCategory
from .base import normalize_axis, onnx_op, register_layer
from .shape_values import host_ints, host_scalar

MODES = ("constant", "reflect", "edge", "wrap")


def _full_pads(pads: list[int], axes: list[int] | None, rank: int) -> list[tuple[int, int]]:
    """(begin, end) per axis of the input."""
    axes = list(range(rank)) if axes is None else [normalize_axis(a, rank, "pad axis") for a in axes]
    if len(pads) != 2 * len(axes):
        raise EngineError(f"pads {pads} need {2 * len(axes)} entries for axes {axes}")
    full = [(0, 0)] * rank
    for k, a in enumerate(axes):
        full[a] = (pads[k], pads[k + len(axes)])
    return full


def _input(inputs, index):
    return inputs[index] if len(inputs) > index else None


def _param_or_input(layer, key: str, value) -> list[int] | None:
    """A list param, else the value of the input standing for it (None when unknown at build time)."""
    if layer.params[key] is not None:
        return list(layer.params[key])
    return None if value is None else host_ints(value)


def _infer_padding(layer, inputs):
    x = inputs[0]
    pads_info, axes_info = _input(inputs, 1), _input(inputs, 3)
    pads = _param_or_input(layer, "pads", None if pads_info is None else pads_info.value)
    axes = _param_or_input(layer, "axes", None if axes_info is None else axes_info.value)
    if pads is None or (axes is None and axes_info is not None):
        return [(tuple(-1 for _ in x.shape), x.dtype)]
    full = _full_pads(pads, axes, len(x.shape))
    shape = []
    for d, (begin, end) in zip(x.shape, full):
        size = d + begin + end if d >= 0 else (-1 if begin or end else d)
        if d >= 0 and size < 0:
            raise EngineError(f"pads {pads} crop more than the input shape {x.shape} holds")
        shape.append(size)
    return [(tuple(shape), x.dtype)]


def _compute_padding(layer, inputs, xp):
    x = inputs[0]
    pads = _param_or_input(layer, "pads", _input(inputs, 1))
    full = _full_pads(pads, _param_or_input(layer, "axes", _input(inputs, 3)), x.ndim)
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for d, (b, e) in zip(x.shape, full))
    x = x[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in full]
    mode = layer.params["mode"]
    if mode == "constant":
        value = _input(inputs, 2) if _input(inputs, 2) is not None else 0
        return [xp.pad(x, widths, mode="constant", constant_values=host_scalar(value))]
    if mode not in MODES:
        raise EngineError(f"unknown pad mode {mode!r}")
    return [xp.pad(x, widths, mode=mode)]


register_layer(LayerType.PADDING, _infer_padding, _compute_padding, host_operands=(1, 2, 3))


@onnx_op("Pad")
def import_pad(ctx):
    x = ctx.input(0)
    mode = ctx.attr("mode", "constant")
    if mode not in MODES or (mode == "wrap" and ctx.opset < 19):
        ctx.unsupported(f"pad mode '{mode}' is not supported", UnsupportedCategory.ATTRIBUTE)
    inputs = [x]
    if ctx.opset < 11:
        pads = [int(p) for p in ctx.attr("pads" if ctx.opset >= 2 else "paddings")]
        value = float(ctx.attr("value", 0.0))
        params = {"pads": pads, "axes": None, "mode": mode}
        inputs = [x, None, ctx.constant(value, dtype=nptype(x.dtype))] if value != 0 else [x]
        return [ctx.network.add_layer(LayerType.PADDING, inputs, params, name=ctx.layer_name()).get_output(0)]
    pads, axes = ctx.const(1), ctx.const(3)
    params = {"pads": None if pads is None else host_ints(pads), "axes": None if axes is None else host_ints(axes),
              "mode": mode}
    inputs = [x, None if pads is not None else ctx.input(1), ctx.input(2), None if axes is not None else ctx.input(3)]
    while inputs[-1] is None:
        inputs.pop()
    return [ctx.network.add_layer(LayerType.PADDING, inputs, params, name=ctx.layer_name()).get_output(0)]
