"""CONCATENATION and SPLIT layers; ONNX Concat and Split: backend cases, dynamic dims, runtime split sizes."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model, run_case_frozen

from engine.conformance.harness import parse_onnx
from engine.dtypes import DataType
from engine.enums import LayerType
from engine.errors import ParseError
from engine.network import NetworkDefinition
from engine.shape_inference import known_value

RNG = np.random.default_rng(3)
F = TensorProto.FLOAT


@pytest.mark.parametrize("case", cases_for({"Concat"}), ids=lambda c: c.name)
def test_concat_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("case", cases_for({"Split"}), ids=lambda c: c.name)
def test_split_backend_cases(case):
    run_case_frozen(case)


def test_concat_dynamic_dims_and_values_of_shape_tensors():
    network = NetworkDefinition()
    a = network.add_input("a", DataType.FLOAT, (-1, 3))
    b = network.add_input("b", DataType.FLOAT, (2, -1))
    layer = network.add_concatenation([a, b])
    assert layer.get_output(0).shape == (-1, 3)
    layer.axis = -1
    assert layer.get_output(0).shape == (2, -1)
    dims = [network.add_constant((1,), np.array([v], np.int64)).get_output(0) for v in (4, -1)]
    np.testing.assert_array_equal(known_value(network.add_concatenation(dims).get_output(0)), [4, -1])


@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.bool_])
def test_concat_negative_axis(dtype):
    a, b = (RNG.integers(0, 2, (2, k, 3)).astype(dtype) for k in (1, 4))
    model = graph_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=-2)],
                        {"a": (helper.np_dtype_to_tensor_dtype(a.dtype), ["n", 1, 3]),
                         "b": (helper.np_dtype_to_tensor_dtype(b.dtype), ["n", 4, 3])}, ["y"])
    check_model_against_ort(model, {"a": a, "b": b})


@pytest.mark.parametrize("dim", [7, 8, 9])
def test_split_num_outputs_uneven_on_dynamic_dim(dim):
    model = graph_model([helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)],
                        {"x": (F, [2, "d"])}, ["a", "b", "c"], opset=18)
    check_model_against_ort(model, {"x": RNG.standard_normal((2, dim)).astype(np.float32)})


def test_split_sizes_from_runtime_shape_tensor():
    """Split sizes [d - 2, 2] computed from the dynamic dim d."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=1, end=2),
             helper.make_node("Sub", ["s", "two"], ["head"]),
             helper.make_node("Concat", ["head", "two"], ["sizes"], axis=0),
             helper.make_node("Split", ["x", "sizes"], ["a", "b"], axis=1)]
    model = graph_model(nodes, {"x": (F, [2, "d"])}, ["a", "b"], {"two": np.array([2])}, opset=18)
    network = parse_onnx(model)
    split = next(layer for layer in network.layers if layer.type == LayerType.SPLIT)
    assert [t.shape for t in split.outputs] == [(2, -1), (2, -1)]
    check_model_against_ort(model, {"x": RNG.standard_normal((2, 6)).astype(np.float32)})


def test_split_18_without_sizes_or_num_outputs_is_a_parse_error():
    model = graph_model([helper.make_node("Split", ["x"], ["a", "b"])], {"x": (F, [4])}, ["a", "b"], opset=18)
    with pytest.raises(ParseError, match="Split_0.*num_outputs"):
        parse_onnx(model)
