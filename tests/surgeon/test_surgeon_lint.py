"""lint: each kind of problem is found and tied to the node or tensor at fault; clean models have no findings."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from surgeon_models import make_checker_failing_model, shared_model

from surgeon.lint import lint


def test_shared_models_are_clean() -> None:
    assert lint(shared_model("gpt2_tiny")) == []


def test_structural_problems_are_named(tmp_path) -> None:
    nodes = [helper.make_node("Add", ["x", "ghost"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="twin"),
             helper.make_node("Neg", ["a"], ["n"], name="twin")]
    graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.ones(2, np.float32), "spare")])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    found = {(f.kind, f.node, f.tensor) for f in lint(path)}
    assert ("dangling", "add", "ghost") in found
    assert ("duplicate", "twin", None) in found
    assert ("unused", None, "spare") in found
    assert ("unused", "twin", "n") in found
    assert any(kind == "checker" for kind, _, _ in found)


def test_checker_and_onnxruntime_errors_name_the_node(tmp_path) -> None:
    path = tmp_path / "bad_relu.onnx"
    onnx.save(make_checker_failing_model(), path)
    findings = lint(path)
    kinds = {f.kind: f for f in findings}
    assert kinds["checker"].node == "bad_relu"
    assert kinds["onnxruntime"].node == "bad_relu"
