"""SLICE layer in its TensorRT form (modes against NumPy indexing references) and its ONNX form (bounds from
runtime shape arithmetic, against onnxruntime); ONNX Slice backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import EngineError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl

RNG = np.random.default_rng(4)
F = TensorProto.FLOAT
INT64_MAX = np.iinfo(np.int64).max
X = RNG.standard_normal((5, 6, 7)).astype(np.float32)


@pytest.mark.parametrize("case", cases_for({"Slice"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1], [INT64_MAX], [1], [1]),
    ([-1], [-INT64_MAX], [2], [-1]),
    ([4, -2], [-100, 100], [0, 2], [-2, 1]),
    ([10], [20], [1], [1]),
    ([0, 1], [3, -1], None, None),
    ([-3], [INT64_MAX], [-1], [2]),
])
def test_constant_bounds_on_dynamic_dims(starts, ends, axes, steps):
    inits = {"starts": np.array(starts), "ends": np.array(ends)}
    names = ["x", "starts", "ends"]
    if axes is not None:
        inits |= {"axes": np.array(axes), "steps": np.array(steps)}
        names += ["axes", "steps"]
    model = graph_model([helper.make_node("Slice", names, ["y"])], {"x": (F, ["a", 6, "c"])}, ["y"], inits)
    check_model_against_ort(model, {"x": X})


def test_ends_from_runtime_shape_arithmetic():
    """x[:, :, : dim1 - 1]: the end is computed from a dynamic dim (as position-id slicing in exports)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
             helper.make_node("Sub", ["s", "one"], ["end"]),
             helper.make_node("Slice", ["x", "zero", "end", "two"], ["y"]),
             helper.make_node("Slice", ["x", "end", "zero", "two", "minus_one"], ["z"])]
    inits = {"one": np.array([1]), "zero": np.array([0]), "two": np.array([2]), "minus_one": np.array([-1])}
    model = graph_model(nodes, {"x": (F, ["a", "b", 7])}, ["y", "z"], inits)
    network = parse_onnx(model)
    assert network.find_tensor("y").shape == (-1, -1, -1)
    check_model_against_ort(model, {"x": X})


def test_opset1_attributes():
    model = graph_model([helper.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[1000, -1], axes=[0, 2])],
                        {"x": (F, [5, 6, 7])}, ["y"], opset=9)
    check_model_against_ort(model, {"x": X})


def _trt_slice(x, start, shape, stride, mode, fill=None):
    network = NetworkDefinition()
    tensor = network.add_input("x", DataType.FLOAT, x.shape)
    layer = network.add_slice(tensor, start, shape, stride)
    layer.mode = mode
    inputs = [x, None, None, None, None if fill is None else np.array(fill, np.float32)]
    assert layer.get_output(0).shape == tuple(shape)
    return layer_impl(LayerType.SLICE).compute(layer, inputs, np)[0]


def _reference(x, start, shape, stride, mode, fill=0.0):
    """Per-axis index vectors mapped with NumPy's own take modes / pad reflect, gathered with np.ix_."""
    grids, valid = [], []
    for s, n, st, d in zip(start, shape, stride, x.shape):
        raw = s + np.arange(n) * st
        if mode == "WRAP":
            idx = np.mod(raw, d)
        elif mode == "REFLECT":
            idx = np.pad(np.arange(d), (3 * d, 3 * d), mode="reflect")[raw + 3 * d]
        else:
            idx = np.clip(raw, 0, d - 1)
        grids.append(idx)
        valid.append((raw >= 0) & (raw < d))
    out = x[np.ix_(*grids)]
    if mode == "FILL":
        mask = valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :]
        out = np.where(mask, out, np.float32(fill))
    return out


@pytest.mark.parametrize("mode", ["WRAP", "CLAMP", "FILL", "REFLECT"])
def test_trt_modes_read_outside_the_input(mode):
    start, shape, stride = [-3, 4, 2], [9, 5, 4], [1, -2, 3]
    got = _trt_slice(X, start, shape, stride, mode, fill=2.5 if mode == "FILL" else None)
    np.testing.assert_array_equal(got, _reference(X, start, shape, stride, mode, fill=2.5))


def test_trt_default_mode_with_zero_and_negative_strides():
    got = _trt_slice(X, [4, 0, 6], [3, 4, 3], [-1, 0, -3], "DEFAULT")
    np.testing.assert_array_equal(got, X[4:1:-1][:, [0, 0, 0, 0]][:, :, 6::-3])
    with pytest.raises(EngineError, match="out of bounds"):
        _trt_slice(X, [4, 0, 0], [3, 2, 2], [1, 1, 1], "DEFAULT")


def test_trt_runtime_start_shape_stride_inputs():
    layer = NetworkDefinition().add_slice(NetworkDefinition().add_input("x", DataType.FLOAT, (5, 6, 7)),
                                          [0, 0, 0], [1, 1, 1], [1, 1, 1])
    shape_info = TensorInfo((3,), DataType.INT64)
    infos = [TensorInfo((5, 6, 7), DataType.FLOAT), None, shape_info]
    assert layer_impl(LayerType.SLICE).infer(layer, infos)[0][0] == (-1, -1, -1)
    args = [X, np.array([1, 2, 3]), np.array([2, 2, 2]), np.array([2, 1, 2])]
    np.testing.assert_array_equal(layer_impl(LayerType.SLICE).compute(layer, args, np)[0], X[1:5:2, 2:4, 3:7:2])
