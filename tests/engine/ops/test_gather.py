"""GATHER layer (DEFAULT / ELEMENT / ND); ONNX Gather, GatherElements, GatherND against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.dtypes import DataType
from engine.network import NetworkDefinition
from engine.shape_inference import known_value

RNG = np.random.default_rng(5)
F = TensorProto.FLOAT
X = RNG.standard_normal((4, 5, 6)).astype(np.float32)


@pytest.mark.parametrize("case", cases_for({"Gather", "GatherElements", "GatherND"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_gather_negative_indices_dynamic_dims(axis, index_dtype):
    dim = X.shape[axis]
    indices = RNG.integers(-dim, dim, (2, 3)).astype(index_dtype)
    model = graph_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)],
                        {"x": (F, ["a", 5, "c"]), "i": (helper.np_dtype_to_tensor_dtype(indices.dtype), [2, 3])},
                        ["y"])
    check_model_against_ort(model, {"x": X, "i": indices})


@pytest.mark.parametrize("axis", [0, 2])
def test_gather_elements_negative_indices(axis):
    indices = RNG.integers(-X.shape[axis], X.shape[axis], (3, 5, 2))
    model = graph_model([helper.make_node("GatherElements", ["x", "i"], ["y"], axis=axis)],
                        {"x": (F, ["a", 5, 6]), "i": (TensorProto.INT64, [3, 5, 2])}, ["y"])
    check_model_against_ort(model, {"x": X, "i": indices})


@pytest.mark.parametrize("batch_dims,index_shape", [(0, (3, 2)), (0, (2, 2, 3)), (1, (4, 3, 1)), (2, (4, 5, 1))])
def test_gather_nd_batch_dims(batch_dims, index_shape):
    depth = index_shape[-1]
    limits = X.shape[batch_dims:batch_dims + depth]
    indices = np.stack([RNG.integers(-d, d, index_shape[:-1]) for d in limits], axis=-1)
    if batch_dims:
        indices = np.broadcast_to(indices, X.shape[:batch_dims] + indices.shape[batch_dims:]).copy()
    model = graph_model([helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims)],
                        {"x": (F, list(X.shape)), "i": (TensorProto.INT64, list(indices.shape))}, ["y"])
    check_model_against_ort(model, {"x": X, "i": indices})


def test_gather_of_a_shape_vector_is_known_at_build_time():
    network = NetworkDefinition()
    x = network.add_input("x", DataType.FLOAT, (2, 3, 4))
    shape = network.add_shape(x).get_output(0)
    index = network.add_constant((), np.array(-1, np.int64)).get_output(0)
    out = network.add_gather(shape, index, 0).get_output(0)
    assert out.shape == () and out.dtype == DataType.INT64
    assert known_value(out) == 4
