"""Sliding-window geometry shared by convolution, deconvolution and pooling, written once for N spatial dims.

All three layer types describe their window with the TensorRT parameters `stride_nd`, `dilation_nd`,
`pre_padding`, `post_padding` and `padding_mode`; these helpers turn them into output sizes and effective
paddings for concrete (or -1) input sizes, so infer and compute can never disagree.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from ..enums import PaddingMode
from ..errors import EngineError, UnsupportedCategory


def window_geometry(in_sizes: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                    dilations: Sequence[int], pre: Sequence[int], post: Sequence[int],
                    mode: PaddingMode | str) -> tuple[list[int], list[int], list[int]]:
    """(output sizes, pre paddings, post paddings) of a forward window op; -1 input sizes give -1 outputs.

    EXPLICIT_ROUND_UP is ONNX ceil_mode, including the rule that the last window must start inside the input or
    the leading padding; the returned post padding then covers the windows' overhang past the explicit padding.
    SAME_UPPER/SAME_LOWER ignore the explicit paddings and split the needed total (odd extra at the end/start).
    """
    outs, pres, posts = [], [], []
    for size, k, s, d, p0, p1 in zip(in_sizes, kernel, strides, dilations, pre, post):
        extent = d * (k - 1) + 1
        if size < 0:
            outs.append(-1)
            pres.append(p0)
            posts.append(p1)
            continue
        if mode in (PaddingMode.SAME_UPPER, PaddingMode.SAME_LOWER):
            out = -(-size // s)
            total = max((out - 1) * s + extent - size, 0)
            p0 = total // 2 if mode == PaddingMode.SAME_UPPER else total - total // 2
            p1 = total - p0
        else:
            span = size + p0 + p1 - extent
            if span < 0:
                raise EngineError(f"window of extent {extent} does not fit in input size {size} padded by "
                                  f"({p0}, {p1})")
            if mode == PaddingMode.EXPLICIT_ROUND_UP:
                out = -(-span // s) + 1
                if (out - 1) * s >= size + p0:
                    out -= 1
            else:
                out = span // s + 1
            p1 = (out - 1) * s + extent - size - p0
        outs.append(out)
        pres.append(p0)
        posts.append(p1)
    return outs, pres, posts


def layer_window(layer: Any, kernel: Sequence[int], in_sizes: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """window_geometry from a layer's TensorRT-style params."""
    p = layer.params
    n = len(kernel)
    return window_geometry(in_sizes, kernel, _vec(p["stride_nd"], n), _vec(p["dilation_nd"], n),
                           _vec(p["pre_padding"], n), _vec(p["post_padding"], n), p["padding_mode"])


def _vec(values: Sequence[int] | int, n: int) -> list[int]:
    values = [values] if isinstance(values, int) else list(values)
    return values * n if len(values) == 1 and n > 1 else values


def kernel_offsets(kernel: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every position inside an N-D kernel, row-major (the weight layout order)."""
    return itertools.product(*(range(k) for k in kernel))


def window_slice(offset: Sequence[int], out_sizes: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int]) -> tuple[slice, ...]:
    """Spatial slice of the *padded* input that kernel position `offset` reads for every output position."""
    return tuple(slice(o * d, o * d + (n - 1) * s + 1, s)
                 for o, n, s, d in zip(offset, out_sizes, strides, dilations))


def pad_spatial(x: Any, pre: Sequence[int], post: Sequence[int], value: Any, xp: Any) -> Any:
    """Pad (or crop, for negative amounts) the trailing len(pre) dims of x with a constant."""
    lead = x.ndim - len(pre)
    crop = tuple([slice(None)] * lead + [slice(max(-a, 0), x.shape[lead + i] - max(-b, 0))
                                         for i, (a, b) in enumerate(zip(pre, post))])
    x = x[crop]
    widths = [(0, 0)] * lead + [(max(a, 0), max(b, 0)) for a, b in zip(pre, post)]
    if not any(a or b for a, b in widths):
        return x
    return xp.pad(x, widths, mode="constant", constant_values=value)


def onnx_window_attrs(ctx: Any, n: int) -> dict[str, Any]:
    """TensorRT window params from an ONNX Conv/ConvTranspose/Pool node's strides, dilations, pads, auto_pad."""
    auto_pad = ctx.attr("auto_pad", "NOTSET")
    pads = list(ctx.attr("pads", [0] * (2 * n)))
    if len(pads) != 2 * n:
        ctx.unsupported(f"pads has {len(pads)} values, expected {2 * n}", UnsupportedCategory.OTHER)
    modes = {"NOTSET": PaddingMode.EXPLICIT_ROUND_DOWN, "VALID": PaddingMode.EXPLICIT_ROUND_DOWN,
             "SAME_UPPER": PaddingMode.SAME_UPPER, "SAME_LOWER": PaddingMode.SAME_LOWER}
    if auto_pad not in modes:
        ctx.unsupported(f"auto_pad={auto_pad!r} is not supported", UnsupportedCategory.ATTRIBUTE)
    if auto_pad != "NOTSET":
        pads = [0] * (2 * n)
    params = {"stride_nd": list(ctx.attr("strides", [1] * n)), "dilation_nd": list(ctx.attr("dilations", [1] * n)),
              "pre_padding": pads[:n], "post_padding": pads[n:], "padding_mode": modes[auto_pad]}
    for key in ("stride_nd", "dilation_nd"):
        if len(params[key]) != n or min(params[key]) < 1:
            ctx.unsupported(f"{key.split('_')[0]}s {params[key]} must be {n} positive values",
                            UnsupportedCategory.OTHER)
    return params
