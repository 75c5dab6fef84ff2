"""The GPU INT8 tactics (engine/tactics/gpu_int8.py) on a machine without a GPU: which INT8 layers they take and
why they refuse the others, what they declare (source, capturable), the workspace their padding claims, and the
int64 reference the GPU tests hold them to (tests/gpu/test_gpu_int8_tactics.py), checked here against the CPU
INT8 tactic bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from int8_layer_cases import CASES, conv_layer, gpu_int8_tactic_name, matmul_layer

from engine.dtypes import DataType
from engine.enums import ActivationType, LayerType, TacticSource
from engine.ir import Activation, Node
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id

CONV, MATMUL, GROUPED = (tactic_by_id(stable_tactic_id(name)) for name in (
    "gpu:convolution:int8_imma_gemm", "gpu:matrix_multiply:int8_imma_gemm", "gpu:convolution:int8_direct_grouped"))


@pytest.mark.parametrize("name", CASES)
def test_reference_is_the_cpu_int8_tactic_bit_for_bit_and_the_gpu_tactic_takes_the_layer(name):
    layer = CASES[name](np.random.default_rng(5))
    cpu = next(t for t in tactics_for(layer.ctx.layer.type, "cpu") if t.runs_int8)
    out = np.empty(layer.ctx.outputs[0].shape, layer.out_dtype)
    cpu.run(cpu.prepare(layer.ctx), layer.inputs, [out], None, np)
    np.testing.assert_array_equal(out, layer.reference)
    meant = tactic_by_id(stable_tactic_id(gpu_int8_tactic_name(layer)))
    assert meant.supports(layer.ctx) is True
    others = [t for t in (CONV, GROUPED) if t is not meant and t.layer_type == meant.layer_type]
    assert all(t.supports(layer.ctx) is not True for t in others), "one GPU INT8 tactic per convolution kind"


def test_the_tactics_declare_cublas_int8_and_capture():
    assert GROUPED.source == TacticSource.JIT_CONVOLUTIONS
    for tactic in (CONV, MATMUL, GROUPED):
        assert tactic.runs_int8 and tactic.capturable and tactic.source in (TacticSource.CUBLAS,
                                                                             TacticSource.JIT_CONVOLUTIONS)
        assert tactic.backend == "gpu" and {"residual", "activation", "output_scale"} <= tactic.absorbs
        fallback = next(t for t in tactics_for(tactic.layer_type, "gpu") if t.name.endswith("int8_exact"))
        assert not fallback.capturable and tactic.heuristic_rank < fallback.heuristic_rank


def test_refusals_name_the_reason():
    rng = np.random.default_rng(1)
    grouped = conv_layer(rng, (1, 4, 5, 5), 4, (3, 3), groups=2)
    assert "int8_direct_grouped" in CONV.supports(grouped.ctx)
    assert "int8_imma_gemm" in GROUPED.supports(conv_layer(rng, (1, 4, 5, 5), 4, (3, 3)).ctx)
    three_d = conv_layer(rng, (1, 2, 3, 4, 4), 4, (1, 1, 1))
    assert "3-D" in CONV.supports(three_d.ctx)
    assert "3-D" in GROUPED.supports(conv_layer(rng, (1, 2, 3, 4, 4), 2, (1, 1, 1), groups=2).ctx)
    sigmoid = conv_layer(rng, (1, 4, 5, 5), 4, (3, 3), activation=Activation(ActivationType.SIGMOID))
    assert "sigmoid" in CONV.supports(sigmoid.ctx).lower()
    float_layer = conv_layer(rng, (1, 4, 5, 5), 4, (3, 3))
    float_layer.ctx.layer.params.pop("int8")
    assert "not an INT8 layer" in CONV.supports(float_layer.ctx)
    residual = conv_layer(rng, (1, 4, 5, 5), 4, (3, 3), pre=(1, 1), post=(1, 1), residual="float32")
    residual.ctx.layer.params["int8"]["residual_scale"] = 0.5  # a scale, but the residual is not INT8
    assert "residual" in CONV.supports(residual.ctx)
    wide_bias = matmul_layer(rng, (4, 8), 4)
    wide_bias.ctx.inputs[2] = wide_bias.ctx.inputs[2]._replace(value=np.zeros((4, 4), np.float32))
    assert "bias" in MATMUL.supports(wide_bias.ctx)
    missing_scale = conv_layer(rng, (1, 4, 5, 5), 4, (3, 3), output="float32")
    missing_scale.ctx.outputs[0] = missing_scale.ctx.outputs[0]._replace(dtype=DataType.INT8)
    assert "output scale" in CONV.supports(missing_scale.ctx)


def test_workspace_is_the_padded_columns_and_accumulators():
    rng = np.random.default_rng(2)
    # 2 samples, 3 channels x 5x5 taps = 75 -> 80; 3x3 = 9 output pixels -> 12; 6 maps -> 8
    conv = conv_layer(rng, (2, 3, 7, 7), 6, (5, 5), stride=(2, 2), pre=(1, 1), post=(1, 1))
    assert conv.ctx.outputs[0].shape == (2, 6, 3, 3)
    assert CONV.workspace_bytes(conv.ctx) == 2 * 12 * 80 + 2 * 8 * 12 * 4  # 1920 and 768 bytes, 64-byte multiples
    # rows 15, K 7 -> 8: the input is copied padded (120 -> 128 bytes); N 5 -> 8: 15 x 8 int32 accumulators
    # (480 -> 512 bytes: every buffer starts and ends on 64 bytes)
    matmul = matmul_layer(rng, (3, 5, 7), 5)
    assert MATMUL.workspace_bytes(matmul.ctx) == 128 + 512
    aligned = matmul_layer(rng, (3, 5, 8), 8)  # K a multiple of 4: no copy of the input
    assert MATMUL.workspace_bytes(aligned.ctx) == 512
    depthwise = conv_layer(rng, (2, 6, 9, 8), 6, (3, 3), stride=(2, 2), pre=(1, 1), post=(1, 1), groups=6)
    assert GROUPED.workspace_bytes(depthwise.ctx) == 2 * 6 * 5 * 4 * 4  # the int32 accumulators only: 960 bytes


def test_per_shape_state_reads_all_channels_or_the_groups_channels_and_is_made_once():
    """The tap table the im2col (all input channels, padded to 16 taps) and grouped (one group's channels) kernels
    read, built with NumPy standing in for CuPy: channel offsets are multiples of the 5x5 input plane."""
    rng = np.random.default_rng(4)
    for tactic, groups, length in ((CONV, 1, 48), (GROUPED, 2, 18)):  # 4 channels x 3x3 = 36 -> 48; 2 x 3x3 = 18
        layer = conv_layer(rng, (1, 4, 5, 5), 4, (3, 3), groups=groups)
        kernel_shape = layer.ctx.inputs[1].value.shape
        state = {"geometry": {}, "layer": layer.ctx.layer, "kernel_shape": kernel_shape,
                 "w": np.zeros((4, length), np.int8)}
        g, specs, taps = tactic.shape_state(state, (1, 4, 5, 5), np)
        channels = 4 // groups
        assert (g.channels, g.groups, specs) == (4, groups, tactic.buffers(g))
        assert taps.shape == (3, length)
        np.testing.assert_array_equal(taps[0, :9 * channels], np.repeat(np.arange(channels) * 25, 9))
        np.testing.assert_array_equal(taps[1, :9], [0, 0, 0, 1, 1, 1, 2, 2, 2])  # row offsets r * dilation
        assert (taps[1, 9 * channels:] < -(1 << 29)).all(), "padding taps must point outside every input"
        assert tactic.shape_state(state, (1, 4, 5, 5), np)[2] is taps, "made on the first run at a shape only"


def quantize_context(x_dtype=np.float32, scale=0.1, zero=3, out=DataType.INT8):
    scale = np.asarray(scale, np.float32)
    zero = None if zero is None else np.asarray(zero, np.int8)
    node = Node(LayerType.QUANTIZE, "q", {"output_type": out})
    inputs = [TensorInfo((2, 5), DataType.FLOAT if x_dtype == np.float32 else DataType.HALF),
              TensorInfo(np.shape(scale), DataType.FLOAT, np.asarray(scale))]
    if zero is not None:
        inputs.append(TensorInfo(np.shape(zero), DataType.INT8, np.asarray(zero)))
    return TacticContext(node, inputs, [TensorInfo((2, 5), out)], "gpu")


def test_quantize_kernel_takes_per_tensor_float_to_int8_and_says_why_not_otherwise():
    quantize = tactic_by_id(stable_tactic_id("gpu:quantize:int8_kernel"))
    assert quantize.capturable and not quantize.runs_int8 and quantize.source is None
    assert quantize.supports(quantize_context()) is True
    assert quantize.supports(quantize_context(np.float16, zero=None)) is True
    assert quantize.prepare(quantize_context()) == (np.float32(0.1), 3)
    assert "per tensor" in quantize.supports(quantize_context(scale=[0.1, 0.2]))
    assert "UINT8" in quantize.supports(quantize_context(out=DataType.UINT8))
    assert "zero point" in quantize.supports(quantize_context(zero=[0, 0]))
