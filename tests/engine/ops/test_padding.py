"""PADDING layer; ONNX Pad in every mode, with negative pads, axes, attribute and runtime pads."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from shape_op_checks import check_model_against_ort, graph_model, run_case_frozen

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(8)
F = TensorProto.FLOAT
X = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)


@pytest.mark.parametrize("case", cases_for({"Pad"}), ids=lambda c: c.name)
def test_backend_cases(case):
    run_case_frozen(case) if "axes" in case.name else run_case(case)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_modes_with_negative_pads_on_dynamic_dims(mode):
    pads = np.array([0, -1, 1, 3, 1, 0, -1, 4])
    inputs = ["x", "pads", "value"] if mode == "constant" else ["x", "pads"]
    model = graph_model([helper.make_node("Pad", inputs, ["y"], mode=mode)], {"x": (F, ["n", 3, "h", 5])}, ["y"],
                        {"pads": pads, "value": np.array(1.5, np.float32)}, opset=19)
    check_model_against_ort(model, {"x": X})


def test_pads_from_runtime_shape_and_axes():
    """Pad the last axis by its own length: pads computed from a dynamic dim."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], start=-1),
             helper.make_node("Concat", ["zero", "s"], ["pads"], axis=0),
             helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"], mode="edge")]
    model = graph_model(nodes, {"x": (F, [2, 3, 4, "w"])}, ["y"], {"zero": np.array([0]), "axes": np.array([-1])},
                        opset=18)
    check_model_against_ort(model, {"x": X})


def test_opset2_attributes():
    x = RNG.standard_normal((3, 4))
    model = graph_model([helper.make_node("Pad", ["x"], ["y"], pads=[1, 0, 0, 2], value=7.0)],
                        {"x": (TensorProto.DOUBLE, [3, 4])}, ["y"], opset=10)
    check_model_against_ort(model, {"x": x})


def test_unknown_mode_is_a_parse_error():
    model = graph_model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="symmetric")], {"x": (F, [3])}, ["y"],
                        {"pads": np.array([1, 1])})
    with pytest.raises(ParseError, match="Pad_0.*symmetric"):
        parse_onnx(model)
