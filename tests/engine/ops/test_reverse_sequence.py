"""REVERSE_SEQUENCE layer; ONNX ReverseSequence (both axis orders) against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(13)


@pytest.mark.parametrize("case", cases_for({"ReverseSequence"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("batch_axis,time_axis", [(0, 1), (1, 0)])
def test_random_lengths_with_trailing_dims(batch_axis, time_axis):
    shape = [0, 0, 3]
    shape[batch_axis], shape[time_axis] = 4, 6
    x = RNG.standard_normal(shape).astype(np.float32)
    lengths = np.array([1, 6, 3, 2], np.int64)
    dims = ["t", 4, 3] if time_axis == 0 else [4, "t", 3]
    model = graph_model([helper.make_node("ReverseSequence", ["x", "lens"], ["y"], batch_axis=batch_axis,
                                          time_axis=time_axis)],
                        {"x": (TensorProto.FLOAT, dims), "lens": (TensorProto.INT64, [4])}, ["y"])
    check_model_against_ort(model, {"x": x, "lens": lengths})


def test_axes_other_than_0_and_1_are_a_parse_error():
    model = graph_model([helper.make_node("ReverseSequence", ["x", "lens"], ["y"], batch_axis=2, time_axis=0)],
                        {"x": (TensorProto.FLOAT, [2, 2, 2]), "lens": (TensorProto.INT64, [2])}, ["y"])
    with pytest.raises(ParseError, match="ReverseSequence_0"):
        parse_onnx(model)
