"""Hand-built ONNX models with If, Loop and Scan (shared by the engine and CLI control-flow tests)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def if_on_input(shape=(2, 3)) -> onnx.ModelProto:
    """out = x + y if c else x * y; both branches read x and y from the enclosing graph."""
    then_g = helper.make_graph([helper.make_node("Add", ["x", "y"], ["sum"])], "then", [],
                               [_vi("sum", TP.FLOAT, list(shape))])
    else_g = helper.make_graph([helper.make_node("Mul", ["x", "y"], ["prod"])], "else", [],
                               [_vi("prod", TP.FLOAT, list(shape))])
    node = helper.make_node("If", ["c"], ["out"], name="choose", then_branch=then_g, else_branch=else_g)
    graph = helper.make_graph([node], "if_on_input",
                              [_vi("c", TP.BOOL, []), _vi("x", TP.FLOAT, list(shape)), _vi("y", TP.FLOAT, list(shape))],
                              [_vi("out", TP.FLOAT, list(shape))])
    return helper.make_model(graph, opset_imports=OPSET)


def if_on_constant(flag: bool) -> onnx.ModelProto:
    """A condition known at build time (an initializer compared with a constant): then: Relu(x) * 2, else: -x."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "two"], ["t"])],
                               "then", [], [_vi("t", TP.FLOAT, [4])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [], [_vi("e", TP.FLOAT, [4])])
    nodes = [helper.make_node("Greater", ["flag", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["out"], name="fixed_if", then_branch=then_g, else_branch=else_g)]
    inits = [numpy_helper.from_array(np.array(1.0 if flag else -1.0, np.float32), "flag"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"), two]
    graph = helper.make_graph(nodes, "if_on_constant", [_vi("x", TP.FLOAT, [4])], [_vi("out", TP.FLOAT, [4])], inits)
    return helper.make_model(graph, opset_imports=OPSET)


def loop_until_large(max_trips: int = 10) -> onnx.ModelProto:
    """x doubles each iteration (plus the iteration number) until its sum reaches `limit` (a graph input read by
    the body from the outer scope) or max_trips: a data-dependent trip count, a loop-carried value and a scan
    output whose length is the trip count."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["i_f"], to=TP.FLOAT),
         helper.make_node("Mul", ["x_in", "two"], ["doubled"]),
         helper.make_node("Add", ["doubled", "i_f"], ["x_out"]),
         helper.make_node("ReduceSum", ["x_out"], ["total"], keepdims=0),
         helper.make_node("Less", ["total", "limit"], ["cond_out"]),
         helper.make_node("Identity", ["x_out"], ["scan"])],
        "body", [_vi("i", TP.INT64, []), _vi("cond_in", TP.BOOL, []), _vi("x_in", TP.FLOAT, [3])],
        [_vi("cond_out", TP.BOOL, []), _vi("x_out", TP.FLOAT, [3]), _vi("scan", TP.FLOAT, [3])],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")])
    node = helper.make_node("Loop", ["trips", "go", "x0"], ["x_final", "history"], name="grow", body=body)
    graph = helper.make_graph(
        [node], "loop_until_large",
        [_vi("go", TP.BOOL, []), _vi("x0", TP.FLOAT, [3]), _vi("limit", TP.FLOAT, [])],
        [_vi("x_final", TP.FLOAT, [3]), _vi("history", TP.FLOAT, [None, 3])],
        [numpy_helper.from_array(np.array(max_trips, np.int64), "trips")])
    return helper.make_model(graph, opset_imports=OPSET)


def loop_with_nested_if() -> onnx.ModelProto:
    """A Loop (trip count 4) whose body holds an If on the parity of the iteration number: even iterations add
    `w`, odd ones subtract it; `w` is a graph input, two scopes out from the If that reads it."""
    then_g = helper.make_graph([helper.make_node("Add", ["acc_in", "w"], ["plus"])], "then", [],
                               [_vi("plus", TP.FLOAT, [2, 2])])
    else_g = helper.make_graph([helper.make_node("Sub", ["acc_in", "w"], ["minus"])], "else", [],
                               [_vi("minus", TP.FLOAT, [2, 2])])
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", "two"], ["parity"]),
         helper.make_node("Equal", ["parity", "zero"], ["even"]),
         helper.make_node("If", ["even"], ["acc_out"], name="inner_if", then_branch=then_g, else_branch=else_g),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("ReduceSum", ["acc_out"], ["step_sum"], keepdims=0)],
        "body", [_vi("i", TP.INT64, []), _vi("cond_in", TP.BOOL, []), _vi("acc_in", TP.FLOAT, [2, 2])],
        [_vi("cond_out", TP.BOOL, []), _vi("acc_out", TP.FLOAT, [2, 2]), _vi("step_sum", TP.FLOAT, [])],
        [numpy_helper.from_array(np.array(2, np.int64), "two"), numpy_helper.from_array(np.array(0, np.int64), "zero")])
    node = helper.make_node("Loop", ["trips", "", "acc0"], ["acc", "sums"], name="outer_loop", body=body)
    graph = helper.make_graph([node], "loop_with_nested_if",
                              [_vi("acc0", TP.FLOAT, [2, 2]), _vi("w", TP.FLOAT, [2, 2])],
                              [_vi("acc", TP.FLOAT, [2, 2]), _vi("sums", TP.FLOAT, [4])],
                              [numpy_helper.from_array(np.array(4, np.int64), "trips")])
    return helper.make_model(graph, opset_imports=OPSET)


def scan_reversed_axes() -> onnx.ModelProto:
    """Scan over axis 1 of x [2, 5, 3], backwards, stacking along output axis 1, reversed: a running sum."""
    body = helper.make_graph([helper.make_node("Add", ["s_in", "xi"], ["s_out"]),
                              helper.make_node("Mul", ["s_out", "xi"], ["y"])],
                             "body", [_vi("s_in", TP.FLOAT, [2, 3]), _vi("xi", TP.FLOAT, [2, 3])],
                             [_vi("s_out", TP.FLOAT, [2, 3]), _vi("y", TP.FLOAT, [2, 3])])
    node = helper.make_node("Scan", ["s0", "x"], ["s", "ys"], name="scan", body=body, num_scan_inputs=1,
                            scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[1],
                            scan_output_directions=[1])
    graph = helper.make_graph([node], "scan_reversed_axes",
                              [_vi("s0", TP.FLOAT, [2, 3]), _vi("x", TP.FLOAT, [2, 5, 3])],
                              [_vi("s", TP.FLOAT, [2, 3]), _vi("ys", TP.FLOAT, [2, 5, 3])])
    return helper.make_model(graph, opset_imports=OPSET)
