"""Arrays in a tensor format: what an HWC (channels-last) tensor looks like to the code that runs layers.

A tensor keeps its NCHW-ordered dims in every format, as TensorRT's tensors and the cuDNN frontend's do; the format
says only how the elements lie in memory. An HWC tensor is therefore handed to kernels as an NCHW-shaped view of
NHWC-ordered memory (`np.transpose` of an (N, H, W, C) buffer): NumPy and CuPy index it correctly, so a stride-aware
kernel needs no change, and a kernel that wants the memory itself takes `storage_order(array)`, which is
C-contiguous. Every place that allocates a tensor's buffer (the runtime's arena, the builder's trial run) goes
through `empty_in_format` / `view_in_format`.
"""
from __future__ import annotations

from typing import Any

from .enums import TensorFormat

# What a tactic whose kernels index every operand through its strides runs (a CuPy elementwise kernel, copyto).
STRIDED_FORMATS = frozenset({TensorFormat.LINEAR, TensorFormat.HWC})
# Dims of a channels-last buffer taken from the NCHW dims, and back.
TO_CHANNELS_LAST = (0, 2, 3, 1)
FROM_CHANNELS_LAST = (0, 3, 1, 2)


def storage_shape(shape: tuple[int, ...], tensor_format: TensorFormat) -> tuple[int, ...]:
    """The dims in memory order (N, H, W, C for HWC)."""
    if tensor_format == TensorFormat.HWC:
        return tuple(shape[d] for d in TO_CHANNELS_LAST)
    return tuple(shape)


def view_in_format(flat: Any, shape: tuple[int, ...], tensor_format: TensorFormat) -> Any:
    """A 1-D buffer of the right size seen as a tensor of NCHW-ordered `shape` stored in `tensor_format`."""
    array = flat.reshape(storage_shape(shape, tensor_format))
    return array.transpose(FROM_CHANNELS_LAST) if tensor_format == TensorFormat.HWC else array


def empty_in_format(xp: Any, shape: tuple[int, ...], dtype: Any, tensor_format: TensorFormat) -> Any:
    """A new uninitialized tensor of NCHW-ordered `shape` stored in `tensor_format`."""
    array = xp.empty(storage_shape(shape, tensor_format), dtype=dtype)
    return array.transpose(FROM_CHANNELS_LAST) if tensor_format == TensorFormat.HWC else array


def storage_order(array: Any) -> Any:
    """An HWC tensor's NCHW-shaped view turned back into its memory order (N, H, W, C): C-contiguous when the
    tensor was made by `view_in_format`/`empty_in_format`."""
    return array.transpose(TO_CHANNELS_LAST)


def is_channels_last(array: Any) -> bool:
    """Whether a 4-D NCHW-shaped array lies in memory channels-last (its N, H, W, C view is C-contiguous)."""
    return array.ndim == 4 and bool(storage_order(array).flags.c_contiguous)


def layer_formats(ctx: Any) -> set[TensorFormat]:
    """The tensor formats a tactic must handle to run the layer of TacticContext `ctx` (LINEAR alone for a layer
    whose tensors are all LINEAR)."""
    return {f for f in (*ctx.input_formats, *ctx.output_formats) if f is not None} or {TensorFormat.LINEAR}
