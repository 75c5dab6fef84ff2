"""DEPTH_TO_SPACE / SPACE_TO_DEPTH layers; ONNX DepthToSpace (DCR/CRD) and SpaceToDepth against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(10)


@pytest.mark.parametrize("case", cases_for({"DepthToSpace", "SpaceToDepth"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case(case)


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_round_trip_on_dynamic_dims(mode):
    nodes = [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode),
             helper.make_node("SpaceToDepth", ["y"], ["z"], blocksize=2)]
    model = graph_model(nodes, {"x": (TensorProto.FLOAT, ["n", 8, "h", 3])}, ["y", "z"])
    assert parse_onnx(model).find_tensor("y").shape == (-1, 2, -1, 6)
    check_model_against_ort(model, {"x": RNG.standard_normal((2, 8, 3, 3)).astype(np.float32)})


def test_bad_mode_is_a_parse_error():
    model = graph_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="XYZ")],
                        {"x": (TensorProto.FLOAT, [1, 4, 2, 2])}, ["y"])
    with pytest.raises(ParseError, match="DepthToSpace_0.*XYZ"):
        parse_onnx(model)
