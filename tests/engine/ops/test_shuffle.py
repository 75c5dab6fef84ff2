"""SHUFFLE layer and ONNX Reshape/Flatten/Squeeze/Unsqueeze/Transpose: backend cases, dynamic-shape models
against onnxruntime (shape tensors computed from dynamic dims, as PyTorch exports build them), shape inference."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import EngineError, ParseError
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo, layer_impl
from engine.ops.shuffle import resolve_reshape

RNG = np.random.default_rng(2)
CASES = cases_for({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
F = TensorProto.FLOAT
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


def test_reshape_from_runtime_shape_arithmetic():
    """GPT-2 style: new shape = Concat(Gather(Shape(x), 0), Gather(Shape(x), 1), [4, -1])."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["d0"], axis=0),
        helper.make_node("Gather", ["s", "i1"], ["d1"], axis=0),
        helper.make_node("Unsqueeze", ["d0", "ax"], ["u0"]),
        helper.make_node("Unsqueeze", ["d1", "ax"], ["u1"]),
        helper.make_node("Concat", ["u0", "u1", "tail"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = {"i0": np.array(0), "i1": np.array(1), "ax": np.array([0]), "tail": np.array([4, -1])}
    model = graph_model(nodes, {"x": (F, ["b", "s", 20])}, ["y"], inits)
    network = parse_onnx(model)
    assert network.find_tensor("y").shape == (-1, -1, -1, -1)
    check_model_against_ort(model, {"x": X.reshape(2, 3, 20)})


@pytest.mark.parametrize("allowzero", [0, 1])
def test_reshape_zero_copies_or_means_zero(allowzero):
    model = graph_model([helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=allowzero)],
                        {"x": (F, ["b", 0, 4])}, ["y"], {"shape": np.array([0, 4, 0] if allowzero else [0, 0, 4])},
                        opset=14)
    check_model_against_ort(model, {"x": np.zeros((3, 0, 4), np.float32)})


@pytest.mark.parametrize("axis", [0, 1, 2, -1, 4])
def test_flatten_dynamic_dims_on_both_sides(axis):
    model = graph_model([helper.make_node("Flatten", ["x"], ["y"], axis=axis)], {"x": (F, ["a", 3, "c", 5])}, ["y"])
    check_model_against_ort(model, {"x": X})


def test_squeeze_unsqueeze_with_runtime_axes():
    """Axes computed from a dynamic shape (Shape(x)[-1] - 5 = 0) are only known at run time."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "last"], ["d"], axis=0),
        helper.make_node("Sub", ["d", "five"], ["axis"]),
        helper.make_node("Unsqueeze", ["axis", "zero"], ["axes"]),
        helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
        helper.make_node("Squeeze", ["u", "axes"], ["y"]),
    ]
    inits = {"last": np.array(-1), "five": np.array(5), "zero": np.array([0])}
    model = graph_model(nodes, {"x": (F, ["a", 3, 4, "d"])}, ["u", "y"], inits, opset=13)
    network = parse_onnx(model)
    assert network.find_tensor("u").shape == (-1,) * 5 and network.find_tensor("y").shape == (-1,) * 4
    check_model_against_ort(model, {"x": X})


def test_squeeze_unsqueeze_constant_axes_on_dynamic_dims():
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, -1]), helper.make_node("Squeeze", ["u"], ["y"],
                                                                                          axes=[0])]
    model = graph_model(nodes, {"x": (F, ["a", 3, "c", 5])}, ["u", "y"], opset=11)
    network = parse_onnx(model)
    assert network.find_tensor("u").shape == (1, -1, 3, -1, 5, 1)
    assert network.find_tensor("y").shape == (-1, 3, -1, 5, 1)
    check_model_against_ort(model, {"x": X})


def test_transpose_default_and_explicit_perm_int64():
    x = RNG.integers(-9, 9, (2, 3, 4)).astype(np.int64)
    nodes = [helper.make_node("Transpose", ["x"], ["a"]), helper.make_node("Transpose", ["x"], ["b"], perm=[1, 0, 2])]
    check_model_against_ort(graph_model(nodes, {"x": (TensorProto.INT64, ["n", 3, 4])}, ["a", "b"]), {"x": x})


def test_squeeze_without_axes_on_dynamic_shape_is_a_parse_error():
    model = graph_model([helper.make_node("Squeeze", ["x"], ["y"])], {"x": (F, ["a", 1, 4])}, ["y"])
    with pytest.raises(ParseError, match="Squeeze_0.*static input shape"):
        parse_onnx(model)


def test_resolve_reshape_cancels_copied_unknown_dims():
    assert resolve_reshape([-1, 8, 4, 4], [0, 0, -1], True) == [-1, 8, 16]
    assert resolve_reshape([-1, 8, 4], [0, -1], True) == [-1, 32]
    assert resolve_reshape([-1, 8, 4], [-1, 4], True) == [-1, 4]
    assert resolve_reshape([6, 0], [0, 0], False) == [0, 0]
    with pytest.raises(EngineError, match="whole number"):
        resolve_reshape([6, 4], [5, -1], True)
    with pytest.raises(EngineError, match="elements"):
        resolve_reshape([6, 4], [5, 5], True)


def test_shuffle_infer_with_unknown_shape_tensor_and_transposes():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (2, 3, 4))
    dims = network.add_input("dims", DataType.INT64, (3,))
    layer = network.add_shuffle(x)
    layer.first_transpose = [2, 0, 1]
    assert layer.get_output(0).shape == (4, 2, 3)
    layer.set_input(1, dims)
    layer.second_transpose = [1, 0, 2]
    assert layer.get_output(0).shape == (-1, -1, -1)
    infos = [TensorInfo((2, 3, 4), DataType.FLOAT), TensorInfo((-1,), DataType.INT64)]
    with pytest.raises(EngineError, match="rank of the output"):
        layer_impl(LayerType.SHUFFLE).infer(layer, infos)
