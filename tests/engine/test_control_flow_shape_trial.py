"""The builder learns the shapes of a network whose shapes depend on its control flow from one reference run on
sample inputs (eager_execution.trial_shapes), then runs the chosen tactics at those shapes.

1. That run must compute what the engine computes, fused epilogues included: it used to drop the ReLU fused into a
   Conv, took the other branch of RetinaNet's "any box left?" If, and the build failed with "could not broadcast
   input array from shape (3050,) into shape (3689,)".
2. The chosen tactics may still differ from the reference kernels in the last bits (another summation order, FP16),
   and a score at a threshold then selects another number of boxes: Faster R-CNN's If gave 17 values where the
   trial had 19, SSDlite's FP16 NonZero 1153 where it had 1149. The sweep must fit such outputs to the learnt
   shapes instead of failing the build."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from test_control_flow_with_nonzero import nonzero_then_if

import engine.tactic_selection as tactic_selection
from engine.conformance.harness import run_onnx


def conv_relu_then_if():
    """y = If(max(relu(conv(x))) > -50, then: [1, 2], else: [7, 8, 9]). The 1x1 Conv's bias -100 makes every conv
    output negative for any plausible input, so the ReLU (fused into the Conv as its epilogue) decides the branch:
    with it the max is 0 (then, two values), without it about -100 (else, three values)."""
    then = helper.make_graph([helper.make_node("Identity", ["then_values"], ["then_out"], name="then_id")], "then",
                             [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [2])],
                             [helper.make_tensor("then_values", TensorProto.FLOAT, [2], [1.0, 2.0])])
    other = helper.make_graph([helper.make_node("Identity", ["else_values"], ["else_out"], name="else_id")], "else",
                              [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [3])],
                              [helper.make_tensor("else_values", TensorProto.FLOAT, [3], [7.0, 8.0, 9.0])])
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv"),
             helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
             helper.make_node("ReduceMax", ["relu"], ["peak"], name="peak", keepdims=0),
             helper.make_node("Greater", ["peak", "threshold"], ["cond"], name="above"),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
                              [helper.make_tensor("w", TensorProto.FLOAT, [3, 2, 1, 1], [0.5, -0.25] * 3),
                               helper.make_tensor("b", TensorProto.FLOAT, [3], [-100.0] * 3),
                               helper.make_tensor("threshold", TensorProto.FLOAT, [], [-50.0])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_shape_trial_applies_the_fused_activation() -> None:
    model = conv_relu_then_if()
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32)
    (expected,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None,
                                                                                                          {"x": x})
    np.testing.assert_array_equal(expected, [1.0, 2.0])  # the model does what its docstring says
    actual = run_onnx(model, {"x": x})["y"]
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("shift", [10.0, -10.0])
def test_sweep_fits_outputs_when_a_tactic_selects_another_count(monkeypatch, shift) -> None:
    """The sweep's Mul tactic is made to add `shift` (a stand-in for a tactic whose rounding differs from the
    reference kernel's): NonZero then selects all 8 (or none) of the sample values instead of the trial's count
    and the If may take the other branch. The build must succeed, and the engine it made must compute the model."""
    make_step = tactic_selection.make_step
    shifted = []

    def shifting_make_step(spec, tactic, state, host_values, graph=None):
        step = make_step(spec, tactic, state, host_values, graph)
        if spec.layer.name != "scale":
            return step

        def run(state, inputs, outputs, workspace, xp):
            step.run(state, inputs, outputs, workspace, xp)
            outputs[0] += shift
            shifted.append(shift)
        return type(step)(**{**step.__dict__, "run": run})

    monkeypatch.setattr(tactic_selection, "make_step", shifting_make_step)
    # s = 3x: how many values NonZero selects, and so the then-branch's size, depends on values a Mul computes
    model = nonzero_then_if(scale=3.0)
    x = np.array([1, -2, 3, 0, 5, -1, 2, 1], np.float32)
    (expected,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None,
                                                                                                          {"x": x})
    actual = run_onnx(model, {"x": x})["y"]
    assert shifted, "the sweep did not run the shifted tactic"
    np.testing.assert_array_equal(actual, expected)
    np.testing.assert_array_equal(expected, [6, 18, 30, 12, 6])  # 2 * 3 * the positive values
