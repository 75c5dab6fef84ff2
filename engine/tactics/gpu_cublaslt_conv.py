"""1x1 convolutions of channels-last (HWC) layers as one cuBLASLt GEMM each (TacticSource.CUBLAS_LT), with the
bias, a fused residual and ReLU/GELU inside the GEMM, as TensorRT runs an NHWC ResNet's pointwise convolutions.

Why it is a GEMM: on NHWC memory a 1x1, stride-1, unpadded, ungrouped convolution is the row-major product
`out (N*H*W x M) = X (N*H*W x C) @ W (M x C)^T`, where X and out are the HWC tensors' own memory
(engine/tensor_formats.py) and W is the kernel prepared once as an (M, C) matrix. A strided one (ResNet's
downsample convolutions) reads every s-th pixel: those pixels are first gathered into a contiguous NHWC buffer in
the tactic's workspace (one coalesced copy of a quarter of the input at stride 2), then the same GEMM runs on
it. Planned, like the MatMul
tactics (gpu_cublaslt.py, whose plan/enqueue helpers this module uses), as the column-major product
`out^T (M x N*H*W) = W @ X^T`, whose bias is one value per row, which cuBLASLt's BIAS epilogues add. With NCHW
tensors the bias would be per column: that is why only HWC layers come here (NCHW 1x1 convolutions are the cuBLAS
GEMM tactics of gpu_conv_gemm.py).

A fused residual is cuBLASLt's C operand with beta = 1: `D = W @ X^T + R`, then the epilogue adds the bias and
applies the activation (cuBLASLt's epilogue works on alpha*A@B + beta*C), which is ONNX's order conv + bias +
residual -> activation. The activation follows the MatMul tactics' rules (epilogue_plan): ReLU and GELU in
cuBLASLt's epilogue (an erf GELU only in FP16 layers; FP32 ones apply it exactly afterwards), others after the GEMM
through the shared epilogue helper. A residual that is not laid out as the output (another format, dtype,
broadcast, or less aligned than the planned GEMM assumes) is copied into the output first, which is then C and D.

Tactic identity: `gpu:conv:cublaslt_nhwc_<mode>_h<k>`, mode fp32 / tf32 (BuilderFlag.TF32) / fp16, k the rank in
cuBLASLt's heuristic (0..3), as the MatMul tactics; the builder times them against cuDNN's HWC engines.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, TensorFormat
from ..ir.epilogue import ACTIVATION, RESIDUAL, Epilogue, apply_epilogue
from ..tensor_formats import FROM_CHANNELS_LAST, STRIDED_FORMATS, empty_in_format, is_channels_last, storage_order
from .base import TacticContext
from .cpu_conv import conv_geometry
from .gpu_cublaslt import (
    ALGORITHMS_PER_MODE,
    HEURISTIC_COUNTS,
    MODES,
    STORAGE,
    WORKSPACE_BYTES,
    RankedCublasLtTactic,
    alignment,
    cublaslt_unavailable,
    enqueue_gemm,
    epilogue_plan,
    gemm_views,
    plan_gemm,
    plan_key,
)
from .registry import register_tactic


def _as_list(values: Any) -> list:
    """A window param as a list: NetworkDefinition stores an int for every spatial dim or one value per dim."""
    return [values] if isinstance(values, int) else list(values)


def pointwise_refusal(layer: Any, x_shape: tuple[int, ...], kernel_shape: tuple[int, ...]) -> str | None:
    """Why a convolution is not the GEMM of this module (None: it is): 2-D, a 1x1 kernel, no padding, one group
    (any stride: a strided one gathers its pixels first). Dilation does not matter for a 1x1 kernel."""
    if len(x_shape) != 4 or len(kernel_shape) != 4:
        return "HWC tensors are 4-D: a 2-D convolution"
    g = conv_geometry(layer, x_shape, kernel_shape)
    if g.kernel != (1, 1):
        return f"only 1x1 convolutions are a GEMM on NHWC memory, not a {g.kernel[0]}x{g.kernel[1]} kernel"
    if any(g.pre) or any(v > 0 for v in g.post):  # a negative post padding: pixels past the last stride, unread
        return f"padding {list(g.pre)} / {list(g.post)} adds pixels the GEMM does not have"
    if g.groups != 1:
        return f"a grouped convolution ({g.groups} groups) is not one GEMM"
    return None


def conv_epilogue_plan(epilogue: Epilogue, has_bias: bool, half: bool) -> tuple[str | None, float, Epilogue | None]:
    """cuBLASLt's epilogue name (None: a plain GEMM), beta (1 when the residual is the C operand, else 0) and what
    the shared helper applies after the GEMM (an activation cuBLASLt lacks; None when nothing is left)."""
    epilog, after = epilogue_plan(epilogue.activation, has_bias, half)
    return epilog, (0.0 if epilogue.residual is None else 1.0), after


def nhwc_gemm_operands(x: Any, w: Any, out: Any) -> tuple[Any, Any, Any]:
    """The column-major GEMM `out^T = w @ x^T` of a 1x1 convolution: (left, right, result) as views of the HWC
    arrays' own memory (x and out NCHW-shaped views of NHWC memory, w the (M, C) kernel). Works on NumPy and CuPy
    arrays alike."""
    rows_x = storage_order(x).reshape(-1, x.shape[1])  # (N*H*W, C): no copy for a plain NHWC view
    rows_out = storage_order(out).reshape(-1, out.shape[1])  # (N*H*W, M)
    return gemm_views(rows_x, w, rows_out, False, True)


def column_major_result(array: Any) -> Any:
    """An HWC tensor of the output's shape seen as the GEMM's column-major result (M x N*H*W): how a residual is
    handed to cuBLASLt as the C operand, laid out exactly as D."""
    return storage_order(array).reshape(-1, array.shape[1]).swapaxes(-1, -2)


class CublasLtConv1x1(RankedCublasLtTactic):
    layer_type = LayerType.CONVOLUTION
    absorbs = frozenset({RESIDUAL, ACTIVATION})
    # The weights and bias are LINEAR constants, the activations HWC: a layer's formats are both (static_refusal
    # turns away layers whose activations are not channels-last).
    formats = STRIDED_FORMATS
    name_stem = "gpu:conv:cublaslt_nhwc"
    problem = "this 1x1 convolution's GEMM"

    def unavailable(self) -> str | None:
        return cublaslt_unavailable()

    def may_run_channels_last(self, node: Any) -> bool:
        """Only 1x1, unpadded, ungrouped convolutions (any stride); the others are cuDNN's."""
        p = node.params
        return (int(p.get("num_groups", 1)) == 1 and all(int(k) == 1 for k in p.get("kernel_size_nd", ()))
                and not any(int(v) for key in ("pre_padding", "post_padding") for v in _as_list(p.get(key, 0))))

    # ------------------------------------------------------------------ eligibility
    def static_refusal(self, ctx: TacticContext) -> str | None:
        """What rules the layer out before asking cuBLASLt (None: nothing does)."""
        if not ctx.channels_last:
            return "it runs HWC (channels-last) layers only: on NCHW tensors the bias would be per column of the " \
                   "column-major GEMM, which cuBLASLt's epilogue does not add (the cuBLAS tactics take them)"
        x, w, y = ctx.inputs[0], ctx.inputs[1], ctx.outputs[0]
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        want = MODES[self.mode]
        if x.dtype != want or y.dtype != want:
            return f"the {self.mode} GEMM needs {want.value} input and output, got {x.dtype.value} -> {y.dtype.value}"
        if self.mode == "tf32" and not ctx.extra.get("tf32"):
            return "TF32 is used only when BuilderFlag.TF32 is set"
        if w.value is None:
            return "the kernel is not a build-time constant (it is prepared once as an (M, C) matrix)"
        if bias is not None and bias.value is None:
            return "the bias is not a build-time constant (cuBLASLt's epilogue reads one fixed bias vector)"
        if ctx.epilogue.output_scale is not None:
            return "an INT8 output scale is the INT8 tactics'"
        if x.shape is None or any(d < 0 for d in x.shape):
            return "the input shape is not concrete"
        refusal = pointwise_refusal(ctx.layer, tuple(x.shape), tuple(w.value.shape))
        if refusal:
            return refusal
        if any(d == 0 for d in x.shape) or w.value.shape[0] == 0:
            return "an empty tensor: nothing for cuBLASLt to multiply"
        return None

    def workspace_bytes(self, ctx: TacticContext) -> int:
        """cuBLASLt's workspace, then (strided convolutions) the gathered input pixels."""
        return WORKSPACE_BYTES + gathered_bytes(tuple(ctx.inputs[0].shape), tuple(ctx.outputs[0].shape),
                                                STORAGE[MODES[self.mode]])

    # ------------------------------------------------------------------ build / load
    def prepare(self, ctx: TacticContext) -> dict:
        """The (M, C) kernel and the bias on the device in the layer's storage type, the epilogue split, and at
        static shapes the planned GEMM."""
        self.require_available(ctx, "cuBLASLt")
        import cupy

        state = self._state(ctx)
        x_shape, y_shape = tuple(ctx.inputs[0].shape), tuple(ctx.outputs[0].shape)
        if all(d >= 0 for d in x_shape + y_shape):  # static shapes: plan now, not in the first run
            self._plan(state, empty_in_format(cupy, gemm_input_shape(x_shape, y_shape), state["storage"],
                                              TensorFormat.HWC),
                       empty_in_format(cupy, y_shape, state["storage"], TensorFormat.HWC))
        return state

    def _state(self, ctx: TacticContext) -> dict:
        import cupy

        storage = STORAGE[MODES[self.mode]]
        kernel = np.asarray(ctx.inputs[1].value)
        bias = ctx.inputs[2] if len(ctx.inputs) > 2 else None
        epilog, beta, after = conv_epilogue_plan(ctx.epilogue, bias is not None, MODES[self.mode] == DataType.HALF)
        return {"w": cupy.asarray(np.ascontiguousarray(kernel.reshape(kernel.shape[0], -1), dtype=storage)),
                "bias": None if bias is None else cupy.asarray(np.asarray(bias.value, storage).reshape(-1)),
                "alpha": 1.0, "beta": beta, "epilog": epilog, "after": after, "residual": ctx.epilogue.residual,
                "storage": storage, "layer": ctx.layer.name, "plans": {},
                "strides": tuple(int(v) for v in _as_list(ctx.layer.params.get("stride_nd", (1, 1))))}

    def _plan(self, state: dict, x: Any, out: Any):
        left, right, result = nhwc_gemm_operands(x, state["w"], out)
        return plan_gemm(state, left, right, result, self.mode, self.rank, self._count_key(state, x.shape))

    def _heuristic_count(self, ctx: TacticContext) -> int:
        """How many algorithms cuBLASLt's heuristic offers for the layer's GEMM (planned once per problem)."""
        import cupy

        state = self._state(ctx)
        x_shape = gemm_input_shape(tuple(ctx.inputs[0].shape), tuple(ctx.outputs[0].shape))
        key = self._count_key(state, x_shape)
        if key not in HEURISTIC_COUNTS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a missing rank is reported by supports, not warned
                planned = self._plan(state, empty_in_format(cupy, x_shape, state["storage"], TensorFormat.HWC),
                                     empty_in_format(cupy, tuple(ctx.outputs[0].shape), state["storage"],
                                                     TensorFormat.HWC))
            planned.matmul.free()
        return HEURISTIC_COUNTS[key]

    def _count_key(self, state: dict, x_shape: tuple[int, ...]) -> tuple:
        import cupy

        return (cupy.cuda.Device().id, "conv1x1_nhwc", self.mode, state["epilog"], state["beta"],
                tuple(state["w"].shape), tuple(x_shape))

    # ------------------------------------------------------------------ run
    def run(self, state, inputs, outputs, workspace, xp) -> None:
        x, out = inputs[0], outputs[0]
        sh, sw = state["strides"]
        if (sh, sw) != (1, 1) or not is_channels_last(x):
            # the strided pixels (or an input not in plain NHWC memory) gathered into the workspace's tail
            shape = gemm_input_shape(tuple(x.shape), tuple(out.shape))
            nbytes = math.prod(shape) * np.dtype(state["storage"]).itemsize
            if workspace is not None and workspace.nbytes >= WORKSPACE_BYTES + nbytes:
                nhwc = workspace[WORKSPACE_BYTES:WORKSPACE_BYTES + nbytes].view(state["storage"])
                plain = nhwc.reshape(shape[0], *shape[2:], shape[1]).transpose(FROM_CHANNELS_LAST)
                workspace = workspace[:WORKSPACE_BYTES]
            else:  # no room given (a first run at a larger shape, not captured)
                plain = empty_in_format(xp, shape, state["storage"], TensorFormat.HWC)
            oh, ow = shape[2:]
            xp.copyto(storage_order(plain), storage_order(x)[:, :oh * sh:sh, :ow * sw:sw, :], casting="unsafe")
            x = plain
        target = out if is_channels_last(out) else empty_in_format(xp, out.shape, out.dtype, TensorFormat.HWC)
        left, right, result = nhwc_gemm_operands(x, state["w"], target)
        planned = state["plans"].get(plan_key(left, right, result)) or self._plan(state, x, target)
        addend = result
        if state["residual"] is not None:
            addend = self._residual_operand(inputs[state["residual"]], target, result, xp)
        enqueue_gemm(planned, left, right, result, addend, workspace)
        if state["after"] is not None:
            apply_epilogue(state["after"], target, inputs, xp)
        if target is not out:
            xp.copyto(out, target)

    @staticmethod
    def _residual_operand(residual: Any, target: Any, result: Any, xp: Any) -> Any:
        """cuBLASLt's C operand for the residual, laid out as `result` (the GEMM planned C so): the residual's own
        memory when it is a plain NHWC tensor like the output and at least as aligned, else the output itself after
        the residual is copied into it (C and D the same memory, which cuBLASLt allows)."""
        if (residual.shape == target.shape and residual.dtype == target.dtype and is_channels_last(residual)
                and alignment(residual.data.ptr) >= alignment(result.data.ptr)):
            return column_major_result(residual)
        xp.copyto(target, xp.broadcast_to(residual, target.shape), casting="unsafe")
        return result


def gemm_input_shape(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The pixels the GEMM reads, NCHW dims: the input's channels at the output's positions (the input itself at
    stride 1)."""
    return (x_shape[0], x_shape[1], *y_shape[2:])


def gathered_bytes(x_shape: tuple[int, ...], y_shape: tuple[int, ...], storage: str) -> int:
    """Workspace for a strided convolution's gathered input pixels (0 at stride 1: X is read where it lies)."""
    shape = gemm_input_shape(x_shape, y_shape)
    if shape == tuple(x_shape) or any(d < 0 for d in shape):
        return 0
    return -(-math.prod(shape) * np.dtype(storage).itemsize // 256) * 256


for _mode in MODES:
    for _rank in range(ALGORITHMS_PER_MODE):
        register_tactic(CublasLtConv1x1(_mode, _rank))
