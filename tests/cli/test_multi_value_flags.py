"""Polygraphy-style flags with several values after one flag (`--input-shapes a:[..] b:[..]`)."""
from __future__ import annotations

import numpy as np
import onnx
from cli_test_models import run_cli
from onnx import TensorProto, helper

from polyx.data.files import load_tensors


def _two_input_model(path):
    nodes = [helper.make_node("Add", ["a", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "two_inputs",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 3]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_several_shapes_after_one_flag_and_mark_all_spelling(tmp_path, capsys):
    model = _two_input_model(tmp_path / "m.onnx")
    saved = tmp_path / "inputs.npz"
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--input-shapes", "a:[4,3]", "b:[4,3]",
                             "--onnx-outputs", "mark", "all", "--engine-outputs", "mark", "all",
                             "--atol", "y:1e-6", "s:1e-6", "--save-inputs", saved)
    # the engine as built fuses add + relu, so 's' has no value of its own: its tolerance is refused by name
    assert code == 2 and "'s', which is inside the fused layer add (add+relu)" in err
    code, out, err = run_cli(capsys, "run", model, "--engine", "--onnxrt", "--input-shapes", "a:[4,3]", "b:[4,3]",
                             "--onnx-outputs", "mark", "all", "--engine-outputs", "mark", "all",
                             "--atol", "y:1e-6", "--rtol", "y:1e-6", "--save-inputs", saved)
    assert code == 0, err
    (feeds,) = load_tensors(saved)
    assert feeds["a"].shape == (4, 3) and feeds["b"].shape == (4, 3)
    assert "Inside fused layer add (add+relu): s (compared at y: PASSED" in out
    assert np.all(feeds["a"] >= 0)


def test_a_bad_value_in_a_list_names_it(tmp_path, capsys):
    model = _two_input_model(tmp_path / "m.onnx")
    code, _, err = run_cli(capsys, "run", model, "--engine", "--input-shapes", "a:[4,3]", "b:4,3")
    assert code == 2
    assert err.startswith("polyx: error:") and "b:4,3" in err and len(err.strip().splitlines()) == 1
