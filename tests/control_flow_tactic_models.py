"""Models whose If/Loop/Scan subgraphs hold a MatMul or Conv with constant weights: the layers the builder gives a
tactic other than the reference kernel (tests/engine/test_control_flow_tactics.py, tests/gpu/)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]
RNG = np.random.default_rng(15)
W = (RNG.standard_normal((8, 8)) / 3).astype(np.float32)
CONV_W = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def matmul_loop(rows_grow: bool = False) -> onnx.ModelProto:
    """h <- tanh(h @ W) for `trips` iterations (W a constant of the body); with `rows_grow`, each iteration also
    appends the first row of the product to h, so the MatMul sees one more row every iteration."""
    nodes = [helper.make_node("MatMul", ["h_in", "w"], ["prod"], name="body_matmul"),
             helper.make_node("Tanh", ["prod"], ["act"])]
    if rows_grow:
        nodes += [helper.make_node("Slice", ["act", "zero", "one", "zero"], ["first"]),
                  helper.make_node("Concat", ["act", "first"], ["h_out"], axis=0)]
    else:
        nodes.append(helper.make_node("Identity", ["act"], ["h_out"]))
    nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
    body = helper.make_graph(
        nodes, "body", [_vi("i", TP.INT64, []), _vi("cond_in", TP.BOOL, []), _vi("h_in", TP.FLOAT, [None, 8])],
        [_vi("cond_out", TP.BOOL, []), _vi("h_out", TP.FLOAT, [None, 8])],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(np.array([0], np.int64), "zero"),
         numpy_helper.from_array(np.array([1], np.int64), "one")])
    node = helper.make_node("Loop", ["trips", "", "h0"], ["h_final"], name="recur", body=body)
    graph = helper.make_graph([node], "matmul_loop", [_vi("trips", TP.INT64, []), _vi("h0", TP.FLOAT, [None, 8])],
                              [_vi("h_final", TP.FLOAT, [None, 8])])
    return helper.make_model(graph, opset_imports=OPSET)


def matmul_scan() -> onnx.ModelProto:
    """A Scan whose body multiplies each [2, 8] slice by W and adds the running state."""
    body = helper.make_graph(
        [helper.make_node("MatMul", ["x_t", "w"], ["prod"], name="scan_matmul"),
         helper.make_node("Add", ["prod", "s_in"], ["s_out"]),
         helper.make_node("Identity", ["s_out"], ["y_t"])],
        "scan_body", [_vi("s_in", TP.FLOAT, [2, 8]), _vi("x_t", TP.FLOAT, [2, 8])],
        [_vi("s_out", TP.FLOAT, [2, 8]), _vi("y_t", TP.FLOAT, [2, 8])], [numpy_helper.from_array(W, "w")])
    node = helper.make_node("Scan", ["s0", "xs"], ["s_final", "ys"], name="scan", body=body, num_scan_inputs=1)
    graph = helper.make_graph([node], "matmul_scan", [_vi("s0", TP.FLOAT, [2, 8]), _vi("xs", TP.FLOAT, [5, 2, 8])],
                              [_vi("s_final", TP.FLOAT, [2, 8]), _vi("ys", TP.FLOAT, [5, 2, 8])])
    return helper.make_model(graph, opset_imports=OPSET)


def conv_if() -> onnx.ModelProto:
    """If c: Conv(x, CONV_W) (pads 1) else Conv(x, -CONV_W / 2); the condition is a graph input."""
    then_branch = helper.make_graph(
        [helper.make_node("Conv", ["x", "cw"], ["y_then"], name="then_conv", pads=[1, 1, 1, 1])], "then", [],
        [_vi("y_then", TP.FLOAT, [1, 4, 6, 6])], [numpy_helper.from_array(CONV_W, "cw")])
    else_branch = helper.make_graph(
        [helper.make_node("Conv", ["x", "cw2"], ["y_else"], name="else_conv", pads=[1, 1, 1, 1])], "else", [],
        [_vi("y_else", TP.FLOAT, [1, 4, 6, 6])], [numpy_helper.from_array(-CONV_W / 2, "cw2")])
    node = helper.make_node("If", ["c"], ["y"], name="choose", then_branch=then_branch, else_branch=else_branch)
    graph = helper.make_graph([node], "conv_if", [_vi("c", TP.BOOL, []), _vi("x", TP.FLOAT, [1, 2, 6, 6])],
                              [_vi("y", TP.FLOAT, [1, 4, 6, 6])])
    return helper.make_model(graph, opset_imports=OPSET)
