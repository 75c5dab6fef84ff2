"""The channels-last GPU INT8 convolution (engine/tactics/gpu_int8_nhwc.py) on a machine without a GPU: which HWC
INT8 layers it takes and why it refuses the others, the workspace each path claims (counted by hand), and the
operand layout its GEMM reads: rows of an NHWC im2col (written here from the documented order, taps then
channels) times its packed weights give the int64 reference's accumulators, one output pixel per row. The
launches themselves run in tests/gpu/test_gpu_int8_nhwc.py. Also: which tactics let the channels-last pass form
an INT8 chain on the GPU (the IMMA one, not the float64 fallback)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from int8_layer_cases import CASES, CLIP, RELU, conv_layer, int64_conv

from engine.builder import channels_last_check
from engine.dtypes import DataType
from engine.enums import LayerType, TacticSource, TensorFormat
from engine.ir import Node
from engine.tactics import tactics_for
from engine.tactics.gpu_int8_nhwc import is_pointwise, pack_weights

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
BY_NAME = {t.name: t for t in tactics_for(LayerType.CONVOLUTION, "gpu")}
IMMA_NHWC, FALLBACK = BY_NAME["gpu:convolution:int8_imma_nhwc"], BY_NAME["gpu:convolution:int8_nhwc"]
CASES_2D = [name for name in CASES if name.startswith(("conv", "depthwise", "grouped")) and "1d" not in name]
ALL_SOURCES = sum(1 << int(source) for source in TacticSource)


def hwc_context(ctx):
    residual = ctx.layer.epilogue.residual
    formats = [HWC, LINEAR, None if ctx.inputs[2] is None else LINEAR] + ([HWC] if residual is not None else [])
    return dataclasses.replace(ctx, input_formats=tuple(formats), output_formats=(HWC,))


def nhwc_rows(x: np.ndarray, kernel, stride, dilation, pre, post, depth: int) -> np.ndarray:
    """An independent NHWC im2col: row (n, oh, ow), column (kh * KW + kw) * C + c, zero-padded to `depth`."""
    n, c = x.shape[:2]
    padded = np.pad(x.transpose(0, 2, 3, 1), [(0, 0), (pre[0], post[0]), (pre[1], post[1]), (0, 0)])
    kh, kw = kernel
    oh = (padded.shape[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (padded.shape[2] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    rows = np.zeros((n * oh * ow, depth), np.int64)
    for i in range(kh):
        for j in range(kw):
            tap = padded[:, i * dilation[0]:, j * dilation[1]:][:, :oh * stride[0]:stride[0], :ow * stride[1]:stride[1]]
            rows[:, (i * kw + j) * c:(i * kw + j + 1) * c] = tap.reshape(-1, c)
    return rows


@pytest.mark.parametrize("name", CASES_2D)
def test_takes_every_ungrouped_hwc_layer_and_leaves_grouped_ones_to_the_fallback(name):
    layer = CASES[name](np.random.default_rng(2))
    ctx = hwc_context(layer.ctx)
    grouped = int(ctx.layer.params["num_groups"]) > 1
    if grouped:
        assert IMMA_NHWC.supports(ctx) == "grouped INT8 convolutions run on gpu:convolution:int8_nhwc (float64)"
    else:
        assert IMMA_NHWC.supports(ctx) is True
    assert FALLBACK.supports(ctx) is True, "every HWC INT8 convolution has the float64 fallback"
    assert "channels-last build" in IMMA_NHWC.supports(layer.ctx), "LINEAR layers stay on gpu_int8.py"


@pytest.mark.parametrize("case", [
    dict(x=(2, 8, 5, 7), maps=6, kernel=(1, 1)),                                  # 1x1: X read where it lies
    dict(x=(1, 7, 4, 5), maps=5, kernel=(1, 1)),                                  # 1x1, C = 7 padded to 8
    dict(x=(2, 5, 9, 8), maps=6, kernel=(3, 3), pre=(1, 1), post=(1, 1)),         # padded 3x3
    dict(x=(1, 4, 11, 10), maps=3, kernel=(3, 3), stride=(2, 2)),                 # 3x3 stride 2
    dict(x=(1, 6, 9, 9), maps=4, kernel=(1, 1), stride=(2, 2)),                   # 1x1 stride 2: im2col
    dict(x=(1, 3, 10, 9), maps=5, kernel=(3, 2), dilation=(2, 1), pre=(2, 0), post=(1, 1)),
])
def test_the_gemm_operands_give_the_int64_accumulators_in_nhwc_rows(case):
    nd = len(case["kernel"])
    stride, dilation = case.get("stride", (1,) * nd), case.get("dilation", (1,) * nd)
    pre, post = case.get("pre", (0,) * nd), case.get("post", (0,) * nd)
    layer = conv_layer(np.random.default_rng(4), case["x"], case["maps"], case["kernel"], stride=stride,
                       dilation=dilation, pre=pre, post=post)
    x, w = layer.inputs[0], layer.inputs[1]
    g = IMMA_NHWC.geometry(layer.ctx)
    pointwise = is_pointwise(g)
    assert pointwise == (case["kernel"] == (1, 1) and stride == (1, 1) and pre == post == (0, 0))
    cols_spec, acc_spec = IMMA_NHWC.buffers(g)
    rows, maps_pad = acc_spec[0]
    channels, taps = x.shape[1], x.shape[1] * np.prod(case["kernel"])
    depth = -(-channels // 4) * 4 if pointwise else -(-taps // 16) * 16
    assert rows == g.batch * g.out_pixels and maps_pad == -(-case["maps"] // 4) * 4
    assert cols_spec[0] == ((0,) if pointwise and channels % 4 == 0 else (rows, depth))
    acc = nhwc_rows(x, case["kernel"], stride, dilation, pre, post, depth) @ \
        pack_weights(w, depth).astype(np.int64).T
    want = int64_conv(x, w, stride, dilation, pre, post, 1).transpose(0, 2, 3, 1).reshape(rows, -1)
    np.testing.assert_array_equal(acc[:, :case["maps"]], want)
    assert not acc[:, case["maps"]:].any(), "the padded output channels must accumulate zeros"


def test_workspace_counted_by_hand():
    def workspace(x_shape, maps, kernel, **kw):
        layer = conv_layer(np.random.default_rng(0), x_shape, maps, kernel, **kw)
        return IMMA_NHWC.workspace_bytes(hwc_context(layer.ctx))
    assert workspace((2, 8, 5, 7), 6, (1, 1)) == 2 * 35 * 8 * 4  # no cols; int32 acc (70, 8)
    assert workspace((2, 7, 5, 7), 6, (1, 1)) >= 70 * 8 + 70 * 8 * 4  # C 7 -> 8 padded rows, then acc
    assert workspace((1, 5, 9, 8), 6, (3, 3), pre=(1, 1), post=(1, 1)) >= 72 * 48 + 72 * 8 * 4  # 45 taps -> 48


def test_refusals_name_the_reason():
    layer = CASES["conv3x3_pad_relu_int8"](np.random.default_rng(1))
    ctx = hwc_context(layer.ctx)
    float_node = Node(ctx.layer.type, "conv", {k: v for k, v in ctx.layer.params.items() if k != "int8"},
                      precision=DataType.FLOAT)
    assert IMMA_NHWC.supports(dataclasses.replace(ctx, layer=float_node)) == "not an INT8 layer"
    conv1d = CASES["conv1d_float32"](np.random.default_rng(1)).ctx
    ctx1d = dataclasses.replace(conv1d, input_formats=(HWC, LINEAR, LINEAR), output_formats=(HWC,))
    assert IMMA_NHWC.supports(ctx1d) == "HWC tensors are 4-D: a 2-D convolution"


def test_declares_cublas_int8_hwc_and_capture():
    assert IMMA_NHWC.runs_int8 and HWC in IMMA_NHWC.formats and IMMA_NHWC.capturable
    assert IMMA_NHWC.source == TacticSource.CUBLAS
    assert IMMA_NHWC.heuristic_rank < FALLBACK.heuristic_rank
    assert FALLBACK.runs_int8 and HWC in FALLBACK.formats and not FALLBACK.capturable  # CuPy's float64 GEMMs


def test_a_gpu_int8_chain_needs_the_imma_tactic_not_the_fallback():
    node = CASES["conv3x3_pad_relu_int8"](np.random.default_rng(1)).ctx.layer
    assert channels_last_check("gpu", ALL_SOURCES)(node), "the IMMA NHWC tactic runs INT8 convolutions HWC"
    without_cublas = ALL_SOURCES & ~(1 << int(TacticSource.CUBLAS))
    assert channels_last_check("gpu", without_cublas)(node), "cuBLASLt's int8 GEMM tactic runs them HWC too"
    without_gemms = without_cublas & ~(1 << int(TacticSource.CUBLAS_LT))
    assert not channels_last_check("gpu", without_gemms)(node), "the float64 fallback alone forms no GPU chain"
    assert channels_last_check("cpu", 0)(node), "on the CPU cpu:convolution:int8_nhwc runs them"
    depthwise = CASES["depthwise3x3_s2_relu_int8"](np.random.default_rng(1)).ctx.layer
    assert not channels_last_check("gpu", ALL_SOURCES)(depthwise), "grouped INT8 stays LINEAR on the GPU"
    assert channels_last_check("cpu", 0)(depthwise)


CUBLASLT_INT8 = BY_NAME["gpu:convolution:int8_cublaslt_nhwc_h0"]


@pytest.mark.parametrize("build, reason", [
    (lambda rng: conv_layer(rng, (1, 8, 5, 5), 8, (1, 1), output="float16"), "INT8 outputs only"),
    (lambda rng: conv_layer(rng, (1, 8, 5, 5), 8, (3, 3), pre=(1, 1), post=(1, 1), activation=CLIP),
     "ReLU only, not CLIP"),
    (lambda rng: conv_layer(rng, (1, 8, 5, 5), 8, (1, 1), residual="float16"), "INT8 residual only"),
    (lambda rng: conv_layer(rng, (1, 8, 5, 5), 6, (1, 1)), "6 output channels"),
    (lambda rng: conv_layer(rng, (1, 8, 5, 5), 8, (1, 1), groups=2), "grouped INT8 convolutions"),
])
def test_the_cublaslt_int8_tactic_refuses_what_its_epilogue_lacks_by_name(build, reason):
    """cuBLASLt's int8 epilogue requantizes, adds an INT8 C operand and applies ReLU; everything else is left to the
    exact tactics, with the reason (checked before cuBLASLt is asked, so on any machine)."""
    refusal = CUBLASLT_INT8.supports(hwc_context(build(np.random.default_rng(2)).ctx))
    assert isinstance(refusal, str) and reason in refusal, refusal


def test_the_cublaslt_int8_tactic_takes_a_resnet_block_convolution_where_cublaslt_loads():
    from engine.tactics.gpu_cublaslt import cublaslt_unavailable

    layer = conv_layer(np.random.default_rng(2), (1, 16, 5, 5), 16, (1, 1), activation=RELU, residual="int8")
    answer = CUBLASLT_INT8.supports(hwc_context(layer.ctx))
    assert answer == (cublaslt_unavailable() or True), answer
    assert "HWC layers of a channels-last build" in CUBLASLT_INT8.supports(layer.ctx)  # a LINEAR layer
