"""Depthwise convolution as a compiled C kernel (backends/kernels/depthwise_conv2d.c, OpenMP over planes).

NumPy needs one full pass over the activation per kernel tap for a depthwise convolution, which is what makes
MobileNet-style networks slow on the CPU; the C kernel does all taps of a plane while it sits in cache. Where no
C compiler is available the tactic reports why and the NumPy tactics remain.
"""
from __future__ import annotations

import ctypes

import numpy as np

from ..backends.native import NativeUnavailable, load_kernel
from .base import stable_tactic_id
from .cpu_conv import ConvTactic
from .registry import register_tactic

_INT = ctypes.c_int
_PTR = ctypes.c_void_p


def _kernel():
    function = load_kernel("depthwise_conv2d").depthwise_conv2d_f32
    function.restype = ctypes.c_int
    function.argtypes = [_PTR, _PTR, _PTR, _PTR] + [_INT] * 15
    return function


class NativeDepthwise(ConvTactic):
    name = "cpu:conv:native_depthwise"
    id = stable_tactic_id(name)
    heuristic_rank = 5

    def supports_geometry(self, g):
        if g.groups != g.channels or g.groups == 1:
            return "not a depthwise convolution (groups must equal the input channels)"
        if len(g.kernel) != 2:
            return "only 2-D depthwise convolutions have a native kernel"
        try:
            _kernel()
        except NativeUnavailable as exc:
            return str(exc)
        return True

    def prepare(self, ctx):
        state = super().prepare(ctx)
        if state["dtype"] != np.float32:
            state["dtype"] = np.float32  # the kernel is float32; FP64 layers are not eligible (see supports)
        return state

    def supports(self, ctx):
        ok = super().supports(ctx)
        if ok is True and ctx.inputs[0].dtype.value == "DOUBLE":
            return "the native kernel computes in float32 only"
        return ok

    def prepare_weights(self, w, g):
        weights = np.ascontiguousarray(w.reshape(g.maps, -1), dtype=np.float32)
        return {"w": weights, "kernel_fn": _kernel()}

    def convolve(self, state, g, x, y, buffers, xp):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not y.flags.c_contiguous:
            raise ValueError("native depthwise needs a contiguous output buffer")
        bias = state["bias"]
        bias_ptr = None if bias is None else bias.ctypes.data
        (h, wd), (oh, ow) = g.in_sizes, g.out_sizes
        status = state["kernel_fn"](x.ctypes.data, state["w"].ctypes.data, bias_ptr, y.ctypes.data,
                                    g.batch, g.channels, h, wd, g.maps // g.channels, g.kernel[0], g.kernel[1], oh, ow,
                                    g.strides[0], g.strides[1], g.pre[0], g.pre[1], g.dilations[0], g.dilations[1])
        if status != 0:
            raise MemoryError("native depthwise convolution: out of memory for its scratch plane")


register_tactic(NativeDepthwise())
