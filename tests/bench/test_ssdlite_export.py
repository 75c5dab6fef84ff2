"""bench/ssdlite_export.py: its CPU-safe parts. The If inlining it applies to torchvision's export keeps what the
else branch computes (checked against onnxruntime taking that branch), and the check runs on an exported file
(a small NMS model stands in for SSDlite, whose export needs torch)."""

import numpy as np
import onnx
import onnxruntime as ort
from bench_scripts import load_bench_script
from onnx import TensorProto, helper, numpy_helper


def load_script():
    return load_bench_script("ssdlite_export")


def if_model() -> onnx.ModelProto:
    """y = 2 * (x is empty ? [] : x[x > 0] + 1): the shape of torchvision's batched_nms If."""
    then_graph = helper.make_graph([helper.make_node("Constant", [], ["nothing"],
                                                     value=numpy_helper.from_array(np.zeros(0, np.float32)))],
                                   "then", [], [helper.make_tensor_value_info("nothing", TensorProto.FLOAT, [0])])
    else_graph = helper.make_graph([helper.make_node("Greater", ["x", "zero"], ["mask"]),
                                    helper.make_node("NonZero", ["mask"], ["idx"]),
                                    helper.make_node("Squeeze", ["idx", "axis0"], ["flat"]),
                                    helper.make_node("Gather", ["x", "flat"], ["picked"]),
                                    helper.make_node("Add", ["picked", "one"], ["kept"])],
                                   "else", [], [helper.make_tensor_value_info("kept", TensorProto.FLOAT, None)])
    nodes = [helper.make_node("Size", ["x"], ["size"]),
             helper.make_node("Equal", ["size", "zero_i"], ["empty"]),
             helper.make_node("If", ["empty"], ["branch"], then_branch=then_graph, else_branch=else_graph),
             helper.make_node("Mul", ["branch", "two"], ["y"])]
    inits = [numpy_helper.from_array(np.array(0, np.float32), "zero"),
             numpy_helper.from_array(np.array(0, np.int64), "zero_i"),
             numpy_helper.from_array(np.array([0], np.int64), "axis0"),
             numpy_helper.from_array(np.array(1, np.float32), "one"),
             numpy_helper.from_array(np.array(2, np.float32), "two")]
    graph = helper.make_graph(nodes, "if_model", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_inlined_else_branch_computes_what_onnxruntime_does(tmp_path):
    script = load_script()
    model = if_model()
    x = np.random.default_rng(3).standard_normal(9).astype(np.float32)
    (expected,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    inlined = script.inline_else_branches(if_model())
    assert "If" not in {n.op_type for n in inlined.graph.node}
    (got,) = ort.InferenceSession(inlined.SerializeToString()).run(None, {"x": x})
    np.testing.assert_array_equal(got, expected)
    from engine.conformance.harness import run_onnx

    np.testing.assert_array_equal(run_onnx(inlined, {"x": x})["y"], expected)


def test_check_runs_the_engine_and_onnxruntime_on_an_export(tmp_path, capsys):
    script = load_script()
    image = helper.make_tensor_value_info("images", TensorProto.FLOAT, [3, 8, 8])
    nodes = [helper.make_node("Reshape", ["images", "shape"], ["flat"]),
             helper.make_node("Slice", ["flat", "start", "end", "axis"], ["boxes"]),
             helper.make_node("ReduceMean", ["boxes"], ["score_row"], axes=[2], keepdims=0),
             helper.make_node("Unsqueeze", ["score_row", "axis1"], ["scores"]),
             helper.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou"], ["labels"])]
    inits = [numpy_helper.from_array(np.array([1, 48, 4], np.int64), "shape"),
             numpy_helper.from_array(np.array([0], np.int64), "start"),
             numpy_helper.from_array(np.array([4], np.int64), "end"),
             numpy_helper.from_array(np.array([2], np.int64), "axis"),
             numpy_helper.from_array(np.array([1], np.int64), "axis1"),
             numpy_helper.from_array(np.array([10], np.int64), "max"),
             numpy_helper.from_array(np.array([0.3], np.float32), "iou")]
    graph = helper.make_graph(nodes, "tiny", [image], [helper.make_tensor_value_info("labels", TensorProto.INT64,
                                                                                     None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "tiny.onnx"
    onnx.save(model, path)
    assert script.check(path, 8, "cpu", 0) == 0
    out = capsys.readouterr().out
    assert "NonMaxSuppression 1" in out and "labels: shape (" in out and "exactly equal 100.0%" in out


def test_if_free_model_is_written_when_asked(tmp_path, capsys):
    script = load_script()
    path, if_free = tmp_path / "if.onnx", tmp_path / "if_free.onnx"
    onnx.save(if_model(), path)
    assert script.check(path, 9, "cpu", 0, if_free) == 0
    assert "If" not in {n.op_type for n in onnx.load(str(if_free)).graph.node}
    assert f"wrote {if_free}" in capsys.readouterr().out
