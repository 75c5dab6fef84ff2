"""TRILU layer; ONNX Trilu (upper/lower, k as constant or runtime value) against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model, run_case_frozen

RNG = np.random.default_rng(11)


@pytest.mark.parametrize("case", cases_for({"Trilu"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case_frozen(case)


@pytest.mark.parametrize("upper", [0, 1])
def test_k_from_a_dynamic_dim_on_a_batch(upper):
    """k = Shape(x)[-1] - 6, known only at run time; bool data on a 3-D batch."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=-1), helper.make_node("Sub", ["s", "six"], ["k1"]),
             helper.make_node("Squeeze", ["k1", "zero"], ["k"]),
             helper.make_node("Trilu", ["x", "k"], ["y"], upper=upper)]
    model = graph_model(nodes, {"x": (TensorProto.BOOL, ["b", 4, "n"])}, ["y"],
                        {"six": np.array([6]), "zero": np.array([0])})
    check_model_against_ort(model, {"x": RNG.random((2, 4, 5)) > 0.3})
