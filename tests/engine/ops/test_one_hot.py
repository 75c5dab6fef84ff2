"""ONE_HOT layer; ONNX OneHot against the backend cases and onnx's reference evaluator (runtime depth too)."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator
from onnx_node_check import assert_same
from shape_op_checks import graph_model, run_case_frozen

from engine.conformance.harness import run_onnx

RNG = np.random.default_rng(9)


@pytest.mark.parametrize("case", cases_for({"OneHot"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case_frozen(case)


@pytest.mark.parametrize("axis", [0, 1, -1, -3])
def test_depth_from_a_dynamic_dim(axis):
    """depth = Shape(x)[1]; indices include negative and out-of-range values."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "one"], ["depth"], axis=0),
             helper.make_node("OneHot", ["i", "depth", "values"], ["y"], axis=axis)]
    model = graph_model(nodes, {"i": (TensorProto.INT32, [2, "n"]), "x": (TensorProto.FLOAT, [1, "d"])}, ["y"],
                        {"one": np.array(1), "values": np.array([-1.0, 2.0], np.float32)})
    feeds = {"i": RNG.integers(-7, 7, (2, 4)).astype(np.int32), "x": np.zeros((1, 5), np.float32)}
    expected = ReferenceEvaluator(model).run(None, feeds)[0]  # onnxruntime lacks this type combination
    assert_same(run_onnx(model, feeds)["y"], expected)
