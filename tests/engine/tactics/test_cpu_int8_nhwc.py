"""The channels-last INT8 convolution on the CPU (tactics/cpu_int8_nhwc.py): on HWC tensors (input, residual and
output in NHWC memory) it equals the int64 reference of int8_layer_cases and the LINEAR INT8 tactic bit for bit,
over 1x1, strided, padded, dilated, grouped/depthwise, residual (int8, float16, float32) and activation cases;
LINEAR layers and 1-D convolutions are refused with the reason."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from int8_layer_cases import CASES

from engine.dtypes import DataType
from engine.enums import LayerType, TensorFormat
from engine.ir import Node
from engine.tactics import tactics_for
from engine.tensor_formats import empty_in_format, is_channels_last

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
BY_NAME = {t.name: t for t in tactics_for(LayerType.CONVOLUTION, "cpu")}
TACTIC, LINEAR_TACTIC = BY_NAME["cpu:convolution:int8_nhwc"], BY_NAME["cpu:convolution:int8_exact"]
CASES_2D = [name for name in CASES if name.startswith(("conv", "depthwise", "grouped")) and "1d" not in name]


def hwc(array: np.ndarray) -> np.ndarray:
    view = empty_in_format(np, array.shape, array.dtype, HWC)
    view[...] = array
    return view


def hwc_context(ctx):
    """The layer's context as the channels-last pass leaves it: activations HWC, weights and bias LINEAR."""
    residual = ctx.layer.epilogue.residual
    formats = [HWC, LINEAR, None if ctx.inputs[2] is None else LINEAR] + ([HWC] if residual is not None else [])
    return dataclasses.replace(ctx, backend="cpu", input_formats=tuple(formats), output_formats=(HWC,))


@pytest.mark.parametrize("name", CASES_2D)
def test_hwc_layers_match_the_int64_reference_and_the_linear_tactic_bit_for_bit(name):
    layer = CASES[name](np.random.default_rng(11))
    ctx = hwc_context(layer.ctx)
    assert TACTIC.supports(ctx) is True
    inputs = [hwc(layer.inputs[0]), *layer.inputs[1:3]] + [hwc(r) for r in layer.inputs[3:]]
    out = empty_in_format(np, ctx.outputs[0].shape, layer.out_dtype, HWC)
    out[...] = 0
    TACTIC.run(TACTIC.prepare(ctx), inputs, [out], None, np)
    assert is_channels_last(out), "the output must be written into its NHWC memory"
    np.testing.assert_array_equal(out, layer.reference, err_msg=f"{name}: HWC INT8 tactic vs the int64 reference")
    linear = np.empty(ctx.outputs[0].shape, layer.out_dtype)
    LINEAR_TACTIC.run(LINEAR_TACTIC.prepare(layer.ctx), layer.inputs, [linear], None, np)
    assert linear.tobytes() == np.ascontiguousarray(out).tobytes(), f"{name}: HWC and LINEAR bits differ"


def test_refuses_linear_layers_1d_convolutions_and_non_int8_layers():
    layer = CASES["conv3x3_pad_relu_int8"](np.random.default_rng(1))
    assert "channels-last build" in TACTIC.supports(dataclasses.replace(layer.ctx, backend="cpu"))
    conv1d = CASES["conv1d_float32"](np.random.default_rng(1)).ctx
    ctx = dataclasses.replace(conv1d, input_formats=(HWC, LINEAR, LINEAR), output_formats=(HWC,))
    assert TACTIC.supports(ctx) == "HWC tensors are 4-D: a 2-D convolution"
    node = layer.ctx.layer
    float_node = Node(node.type, "conv", {k: v for k, v in node.params.items() if k != "int8"},
                      precision=DataType.FLOAT)
    float_layer = dataclasses.replace(hwc_context(layer.ctx), layer=float_node)
    assert TACTIC.supports(float_layer) == "not an INT8 layer"


def test_declares_hwc_int8_and_ranks_ahead_of_the_linear_tactic():
    assert TACTIC.runs_int8 and HWC in TACTIC.formats and TACTIC.backend == "cpu"
    assert TACTIC.heuristic_rank < LINEAR_TACTIC.heuristic_rank
    assert HWC not in LINEAR_TACTIC.formats, "the LINEAR INT8 tactic stays LINEAR-only"
