"""The cuBLASLt 1x1-convolution tactics' CPU-side parts (engine/tactics/gpu_cublaslt_conv.py; the GEMMs run on the
GPU in tests/gpu/test_gpu_cublaslt_conv.py): identity and source, the layers refused with their reasons, the
column-major GEMM views of HWC arrays checked against the float64 convolution (NumPy arrays standing in for CuPy
ones), the epilogue split with the residual as the C operand, and when a 1x1 convolution may join an HWC chain."""
from __future__ import annotations

import numpy as np
import pytest
from conv_reference import conv_float64
from scipy.special import erf

import engine.tactics.gpu_cublaslt_conv as lt_conv
from engine.builder import channels_last_check
from engine.dtypes import from_numpy
from engine.enums import ALL_TACTIC_SOURCES, ActivationType, LayerType, TacticSource, TensorFormat, allowed_by_sources
from engine.errors import PlanFormatError
from engine.ir import Activation, Epilogue, Node
from engine.ir.epilogue import apply_epilogue
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id
from engine.tactics.catalog import tactic_source_name
from engine.tactics.gpu_cublaslt import ALGORITHMS_PER_MODE, WORKSPACE_BYTES, cublaslt_unavailable
from engine.tactics.gpu_cublaslt_conv import (
    column_major_result,
    conv_epilogue_plan,
    gemm_input_shape,
    nhwc_gemm_operands,
)
from engine.tensor_formats import empty_in_format, storage_order

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
RNG = np.random.default_rng(17)


def lt_conv_tactics():
    """The float 1x1 tactics (the INT8 cuBLASLt ones, gpu_int8_cublaslt.py, are tested with the INT8 tactics)."""
    return [t for t in tactics_for(LayerType.CONVOLUTION, "gpu")
            if t.source == TacticSource.CUBLAS_LT and not t.runs_int8]


def tactic(mode="fp32", rank=0):
    return tactic_by_id(stable_tactic_id(f"gpu:conv:cublaslt_nhwc_{mode}_h{rank}"))


def conv_context(x_shape=(2, 8, 5, 6), maps=12, kernel=(1, 1), stride=(1, 1), pre=(0, 0), post=(0, 0), groups=1,
                 dilation=(1, 1), dtype=np.float32, bias=True, constant_kernel=True, constant_bias=True,
                 out_format=HWC, epilogue=None, tf32=False):
    w = RNG.standard_normal((maps, x_shape[1] // groups, *kernel)).astype(dtype)
    b = RNG.standard_normal(maps).astype(dtype) if bias else None
    net = NetworkDefinition()
    kind = from_numpy(np.dtype(dtype))
    layer = net.add_convolution_nd(net.add_input("x", kind, x_shape), maps, kernel, w, b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = list(stride), list(dilation), groups
    layer.pre_padding, layer.post_padding = list(pre), list(post)
    node = Node(layer.type, "conv", layer.params, precision=kind, epilogue=epilogue or Epilogue())
    inputs = [TensorInfo(x_shape, kind), TensorInfo(w.shape, kind, w if constant_kernel else None),
              None if b is None else TensorInfo(b.shape, kind, b if constant_bias else None)]
    y_shape = layer.get_output(0).shape
    formats = (out_format, LINEAR, None if b is None else LINEAR)
    return TacticContext(node, inputs, [TensorInfo(y_shape, kind)], "gpu", {"tf32": tf32},
                         input_formats=formats, output_formats=(out_format,))


def test_one_tactic_per_mode_and_heuristic_rank_running_hwc_with_the_cublaslt_source():
    tactics = lt_conv_tactics()
    assert {t.name for t in tactics} == {f"gpu:conv:cublaslt_nhwc_{mode}_h{rank}" for mode in ("fp32", "tf32", "fp16")
                                         for rank in range(ALGORITHMS_PER_MODE)}
    for t in tactics:
        assert t.id == stable_tactic_id(t.name) and tactic_by_id(t.id) is t
        assert tactic_source_name(t.id) == "CUBLAS_LT"
        # HWC activations beside LINEAR weights and bias; layers whose activations are LINEAR are refused with
        # the reason (the bias would be per column of the GEMM: test_layers_that_are_not_one_gemm...)
        assert t.formats == {HWC, LINEAR}
        assert t.absorbs == {"residual", "activation"} and t.capturable and not t.runs_int8
    all_ids = [t.id for layer in LayerType for backend in ("cpu", "gpu") for t in tactics_for(layer, backend)]
    assert len(all_ids) == len(set(all_ids)), "tactic ids must be unique across every layer type and backend"


def test_tactic_sources_select_and_deselect_them():
    only_lt = 1 << int(TacticSource.CUBLAS_LT)
    for t in lt_conv_tactics():
        assert allowed_by_sources(t, only_lt) and allowed_by_sources(t, ALL_TACTIC_SOURCES)
        assert not allowed_by_sources(t, ALL_TACTIC_SOURCES & ~only_lt)
        assert not allowed_by_sources(t, 1 << int(TacticSource.CUDNN))


def test_unavailable_library_is_a_reason_not_an_error(no_nvmath):
    reason = cublaslt_unavailable()
    assert reason and "nvmath-python" in reason
    for t in lt_conv_tactics():
        assert t.supports(conv_context()) == reason and t.unavailable() == reason, t.name
    with pytest.raises(PlanFormatError, match=r"layer 'conv' runs on cuBLASLt \(tactic "
                                              r"gpu:conv:cublaslt_nhwc_fp32_h0\), which is not usable here: "
                                              r"cuBLASLt tactics need nvmath-python"):
        tactic().prepare(conv_context())  # a loaded plan on a machine without the library


@pytest.mark.parametrize("case, reason", [
    (dict(kernel=(3, 3), pre=(1, 1), post=(1, 1)), "only 1x1 convolutions"),
    (dict(pre=(1, 0), post=(0, 1)), "padding [1, 0] / [0, 1]"),
    (dict(groups=2), "grouped convolution (2 groups)"),
    (dict(out_format=LINEAR), "HWC (channels-last) layers only"),
    (dict(dtype=np.float16), "fp32 GEMM needs FLOAT input and output, got HALF -> HALF"),
    (dict(constant_kernel=False), "kernel is not a build-time constant"),
    (dict(constant_bias=False), "bias is not a build-time constant"),
    (dict(x_shape=(2, 8, 5)), "HWC tensors are 4-D"),
    (dict(x_shape=(0, 8, 5, 6)), "empty tensor"),
])
def test_layers_that_are_not_one_gemm_on_nhwc_memory_are_refused_with_the_reason(case, reason):
    refusal = tactic("fp32").static_refusal(conv_context(**case))
    assert refusal is not None and reason in refusal, refusal


@pytest.mark.parametrize("x_shape, stride, gathered", [
    ((2, 8, 5, 6), (2, 2), 2 * 8 * 3 * 3 * 4),  # odd H: its last row is read; even W: its last column is not
    ((2, 8, 5, 6), (1, 3), 2 * 8 * 5 * 2 * 4),
    ((2, 8, 5, 6), (1, 1), 0),  # stride 1: X is read where it lies, no gathered copy
])
def test_a_strided_1x1_convolution_is_a_gemm_over_its_gathered_pixels(x_shape, stride, gathered):
    """ResNet's downsample convolutions: taken (not refused), with workspace for the pixels at the stride after
    cuBLASLt's own, rounded to 256 bytes; the gathered pixels times the kernel are the convolution (float64)."""
    ctx = conv_context(x_shape=x_shape, stride=stride)
    assert tactic("fp32").static_refusal(ctx) is None
    y_shape = tuple(ctx.outputs[0].shape)
    assert gemm_input_shape(x_shape, y_shape) == (x_shape[0], x_shape[1], *y_shape[2:])
    assert tactic("fp32").workspace_bytes(ctx) == WORKSPACE_BYTES + -(-gathered // 256) * 256
    x = RNG.standard_normal(x_shape)
    w = ctx.inputs[1].value.astype(np.float64)
    oh, ow = y_shape[2:]
    pixels = x.transpose(0, 2, 3, 1)[:, :oh * stride[0]:stride[0], :ow * stride[1]:stride[1], :]  # run()'s gather
    got = pixels.reshape(-1, x_shape[1]) @ w.reshape(w.shape[0], -1).T
    want = conv_float64(x, w, None, stride, (1, 1), (0, 0), (0, 0), 1)
    np.testing.assert_allclose(got.reshape(x_shape[0], oh, ow, -1).transpose(0, 3, 1, 2), want, rtol=1e-12)


def test_modes_take_their_own_types_and_tf32_needs_the_builder_flag():
    assert tactic("fp32").static_refusal(conv_context()) is None
    assert tactic("fp32").static_refusal(conv_context(dilation=(2, 3))) is None, "a 1x1 kernel ignores dilation"
    assert tactic("fp16", 2).static_refusal(conv_context(dtype=np.float16)) is None
    assert "fp16 GEMM needs HALF input and output, got FLOAT" in tactic("fp16").static_refusal(conv_context())
    assert "BuilderFlag.TF32" in tactic("tf32").static_refusal(conv_context())
    assert tactic("tf32", 3).static_refusal(conv_context(tf32=True)) is None
    relu_residual = Epilogue(residual=3, activation=Activation(ActivationType.RELU))
    assert tactic("fp32").static_refusal(conv_context(epilogue=relu_residual)) is None
    int8_out = Epilogue(output_scale=0.5)
    assert "INT8 output scale" in tactic("fp32").static_refusal(conv_context(epilogue=int8_out))


def hwc(array: np.ndarray) -> np.ndarray:
    view = empty_in_format(np, array.shape, array.dtype, HWC)
    view[...] = array
    return view


def test_gemm_views_of_hwc_arrays_compute_conv_bias_residual_relu_in_their_own_memory():
    """left @ right + C + bias per row, ReLU, written to `result`, must be the float64 convolution + bias +
    residual -> ReLU in the HWC output's NHWC memory; the views are the HWC arrays themselves (nothing copied),
    with the strides of the column-major GEMM cuBLASLt is given."""
    n, c, h, w_, m = 2, 8, 5, 6, 12
    x = RNG.standard_normal((n, c, h, w_))
    kernel = RNG.standard_normal((m, c, 1, 1))
    bias, residual = RNG.standard_normal(m), RNG.standard_normal((n, m, h, w_))
    x_hwc, r_hwc = hwc(x), hwc(residual)
    out = empty_in_format(np, (n, m, h, w_), np.float64, HWC)
    out[...] = np.nan
    w2 = np.ascontiguousarray(kernel.reshape(m, c))  # what prepare makes of the kernel
    left, right, result = nhwc_gemm_operands(x_hwc, w2, out)
    item = 8
    assert left.shape == (m, c) and left.strides == (c * item, item), "W (M x C), row-major"
    assert right.shape == (c, n * h * w_) and right.strides == (item, c * item), "X^T, column-major with ld C"
    assert result.shape == (m, n * h * w_) and result.strides == (item, m * item), "out^T, column-major with ld M"
    assert np.shares_memory(left, w2) and np.shares_memory(right, storage_order(x_hwc))
    assert np.shares_memory(result, storage_order(out))
    addend = column_major_result(r_hwc)
    assert addend.shape == result.shape and addend.strides == result.strides, "C is laid out as D"
    assert np.shares_memory(addend, storage_order(r_hwc))
    result[...] = np.maximum(left @ right + addend + bias[:, None], 0)
    want = np.maximum(conv_float64(x, kernel, bias, (1, 1), (1, 1), (0, 0), (0, 0), 1) + residual, 0)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("residual, activation, has_bias, half, epilog, beta, left", [
    (3, ActivationType.RELU, True, False, "RELU_BIAS", 1.0, None),  # ResNet's conv + bias + residual -> ReLU
    (3, None, False, False, None, 1.0, None),
    (None, ActivationType.RELU, False, True, "RELU", 0.0, None),
    (None, None, True, True, "BIAS", 0.0, None),
    (3, ActivationType.GELU_ERF, True, True, "GELU_BIAS", 1.0, None),  # FP16: within its bounds as tanh
    (3, ActivationType.GELU_ERF, True, False, "BIAS", 1.0, ActivationType.GELU_ERF),  # FP32: exact, after
    (2, ActivationType.LEAKY_RELU, True, True, "BIAS", 1.0, ActivationType.LEAKY_RELU),
])
def test_epilogue_split_puts_the_residual_in_the_gemm(residual, activation, has_bias, half, epilog, beta, left):
    epilogue = Epilogue(residual=residual, activation=None if activation is None else Activation(activation, 0.1))
    got_epilog, got_beta, after = conv_epilogue_plan(epilogue, has_bias, half)
    assert (got_epilog, got_beta) == (epilog, beta)
    assert (None if after is None else after.activation.type) == left
    if after is not None:
        assert after.residual is None, "the residual is the GEMM's C operand: never added twice"
        assert after.activation.alpha == 0.1


def test_an_activation_left_after_the_gemm_follows_the_residual_as_onnx_orders_them():
    """FP32 erf GELU: the GEMM gives conv + residual + bias (C operand, BIAS epilogue); the helper then applies GELU
    alone. Checked against GELU(conv + bias + residual) in float64."""
    y, residual, bias = RNG.standard_normal((2, 4, 3, 3)), RNG.standard_normal((2, 4, 3, 3)), RNG.standard_normal(4)
    epilog, beta, after = conv_epilogue_plan(Epilogue(residual=1, activation=Activation(ActivationType.GELU_ERF)),
                                             True, False)
    assert epilog == "BIAS" and beta == 1.0
    gemm_out = y + beta * residual + bias.reshape(1, -1, 1, 1)  # what cuBLASLt writes with that plan
    apply_epilogue(after, gemm_out, [None, residual], np)
    pre = y + bias.reshape(1, -1, 1, 1) + residual
    np.testing.assert_allclose(gemm_out, 0.5 * pre * (1 + erf(pre / np.sqrt(2))), rtol=1e-6, atol=1e-6)


def test_a_1x1_convolution_joins_an_hwc_chain_through_these_tactics_only_when_cublaslt_may_run(monkeypatch):
    monkeypatch.setattr(lt_conv, "cublaslt_unavailable", lambda: None)  # as on a GPU machine with nvmath-python
    pointwise, spatial = conv_context().layer, conv_context(kernel=(3, 3), pre=(1, 1), post=(1, 1)).layer
    strided = conv_context(stride=(2, 2)).layer
    padded = conv_context(pre=(1, 0), post=(0, 1)).layer  # a 1x1 kernel over added pixels: not one GEMM either
    only_lt = 1 << int(TacticSource.CUBLAS_LT)
    assert tactic().may_run_channels_last(pointwise) and tactic().may_run_channels_last(strided)
    assert not any(tactic().may_run_channels_last(node) for node in (spatial, padded))
    assert not channels_last_check("gpu", only_lt)(padded), "a padded 1x1 convolution would only have the " \
        "reference kernel in HWC: it must not join a chain on cuBLASLt's account"
    assert not tactic().may_run_channels_last(conv_context(groups=2).layer)
    assert channels_last_check("gpu", only_lt)(pointwise)
    assert not channels_last_check("gpu", only_lt)(spatial), "a 3x3 convolution is cuDNN's, not a GEMM"
    assert not channels_last_check("gpu", ALL_TACTIC_SOURCES & ~only_lt & ~(1 << int(TacticSource.CUDNN)))(
        pointwise), "without cuBLASLt and cuDNN no GPU tactic runs a convolution HWC"

