"""ONNX models with data-dependent shapes, shared by the engine and CLI tests: a NonZero mask selection and a
NonZero → NMS detection chain."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

W = np.random.default_rng(5).standard_normal((5, 3)).astype(np.float32)


def _model(nodes, inputs, outputs, inits) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "dds", inputs, [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def mask_model() -> onnx.ModelProto:
    """x[n, 5]: `rows` = x[x.max(1) > t] @ W (NonZero → Squeeze → Gather → MatMul, torch's boolean row mask);
    `picked` = 2 * x[x > t] (NonZero → Transpose → GatherND), `total` its sum and `count` its length (Shape);
    `relu` = relu(x), last in node order but sized by the input shape alone."""
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["row_max"], axes=[1], keepdims=0),
        helper.make_node("Greater", ["row_max", "t"], ["row_mask"]),
        helper.make_node("NonZero", ["row_mask"], ["row_idx2d"]),
        helper.make_node("Squeeze", ["row_idx2d", "zero"], ["row_idx"]),
        helper.make_node("Gather", ["x", "row_idx"], ["kept"], axis=0),
        helper.make_node("MatMul", ["kept", "w"], ["rows"]),
        helper.make_node("Greater", ["x", "t"], ["mask"]),
        helper.make_node("NonZero", ["mask"], ["idx"]),
        helper.make_node("Transpose", ["idx"], ["idx_t"], perm=[1, 0]),
        helper.make_node("GatherND", ["x", "idx_t"], ["sel"]),
        helper.make_node("Mul", ["sel", "two"], ["picked"]),
        helper.make_node("ReduceSum", ["picked"], ["total"], keepdims=0),
        helper.make_node("Shape", ["sel"], ["count"]),
        helper.make_node("Relu", ["x"], ["relu"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.8, np.float32), "t"), numpy_helper.from_array(W, "w"),
             numpy_helper.from_array(np.array(2, np.float32), "two"),
             numpy_helper.from_array(np.array([0], np.int64), "zero")]
    outputs = [("rows", TensorProto.FLOAT), ("picked", TensorProto.FLOAT), ("total", TensorProto.FLOAT),
               ("count", TensorProto.INT64), ("relu", TensorProto.FLOAT)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 5])], outputs, inits)


def detection_model() -> onnx.ModelProto:
    """boxes[1, n, 4], scores[1, n]: keep boxes scoring over 0.3 (NonZero → Gather), NMS them as one class, gather
    the survivors' boxes and scale them: three data-dependent stages in a row."""
    nodes = [
        helper.make_node("Greater", ["scores", "floor"], ["keep"]),
        helper.make_node("NonZero", ["keep"], ["keep_idx"]),
        helper.make_node("Gather", ["keep_idx", "one"], ["cand"], axis=0),   # [1, k] → [k] (box index column)
        helper.make_node("Gather", ["boxes", "cand"], ["cand_boxes"], axis=1),
        helper.make_node("Gather", ["scores", "cand"], ["cand_scores2d"], axis=1),
        helper.make_node("Unsqueeze", ["cand_scores2d", "one"], ["cand_scores"]),
        helper.make_node("NonMaxSuppression", ["cand_boxes", "cand_scores", "max", "iou"], ["selected"]),
        helper.make_node("Gather", ["selected", "two"], ["sel_box"], axis=1),
        helper.make_node("Gather", ["cand_boxes", "sel_box"], ["final2d"], axis=1),
        helper.make_node("Mul", ["final2d", "scale"], ["final"]),
    ]
    inits = [numpy_helper.from_array(np.array(0.3, np.float32), "floor"),
             numpy_helper.from_array(np.array(1, np.int64), "one"),
             numpy_helper.from_array(np.array(2, np.int64), "two"),
             numpy_helper.from_array(np.array([5], np.int64), "max"),
             numpy_helper.from_array(np.array([0.4], np.float32), "iou"),
             numpy_helper.from_array(np.array(10, np.float32), "scale")]
    inputs = [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, "n", 4]),
              helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "n"])]
    return _model(nodes, inputs, [("final", TensorProto.FLOAT), ("selected", TensorProto.INT64)], inits)
