"""SCATTER layer; ONNX ScatterElements / ScatterND / Scatter with every reduction, against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(6)
F = TensorProto.FLOAT


@pytest.mark.parametrize("case", cases_for({"ScatterElements", "ScatterND", "Scatter"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements_reductions_with_repeated_negative_indices(reduction, axis):
    data = RNG.standard_normal((4, 5)).astype(np.float32)
    dim = data.shape[axis]
    indices = RNG.integers(-dim, dim, (3, 5) if axis == 0 else (4, 3))
    if reduction == "none":  # repeated indices are undefined without a reduction: keep a permutation instead
        indices = np.argsort(RNG.random((3, 5) if axis == 0 else (4, 3)), axis=axis) - (dim if axis else 0)
    updates = RNG.standard_normal(indices.shape).astype(np.float32)
    model = graph_model([helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], axis=axis, reduction=reduction)],
                        {"d": (F, [4, 5]), "i": (TensorProto.INT64, list(indices.shape)),
                         "u": (F, list(indices.shape))}, ["y"], opset=18)
    check_model_against_ort(model, {"d": data, "i": indices, "u": updates}, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
def test_scatter_nd_reductions(reduction):
    data = RNG.integers(-5, 5, (4, 3, 2)).astype(np.int32)
    indices = np.array([[[0, 1]], [[-1, 2]], [[0, 1]]]) if reduction != "none" else np.array([[[0, 1]], [[-1, 2]]])
    updates = RNG.integers(-5, 5, indices.shape[:-1] + (2,)).astype(np.int32)
    model = graph_model([helper.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction=reduction)],
                        {"d": (TensorProto.INT32, [4, 3, 2]), "i": (TensorProto.INT64, list(indices.shape)),
                         "u": (TensorProto.INT32, list(updates.shape))}, ["y"], opset=18)
    check_model_against_ort(model, {"d": data, "i": indices, "u": updates})


def test_unknown_reduction_is_a_parse_error():
    model = graph_model([helper.make_node("ScatterND", ["d", "i", "u"], ["y"], reduction="mean")],
                        {"d": (F, [4]), "i": (TensorProto.INT64, [1, 1]), "u": (F, [1])}, ["y"], opset=18)
    with pytest.raises(ParseError, match="ScatterND_0.*mean"):
        parse_onnx(model)
