"""A small hand-made model for the reshape-as-view rule (engine/shuffle_views.py), with its float64 reference.

x [N, 3, 4] -> a = Relu(x), then:
  r1 = Reshape(a, [0, 12])     view (of a)
  r2 = Reshape(r1, [-1])       view (chain: of a)
  g  = Reshape(r2, Shape(a))   view (chain, reshape dims from host shape arithmetic: of a)
  u  = Unsqueeze(a, [1])       view (of a)
  t  = Transpose(a, [0, 2, 1]) not a view: it moves data
  y_reshaped = Reshape(a, [0, 4, 3]), a network output: not a view (the user's buffer)
  r_in = Reshape(x, [0, 12])   not a view: x is a network input (the user's buffer)
Outputs: Sigmoid(r2), Sigmoid(g), Exp(u), Abs(t), y_reshaped, Neg(r_in).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

VIEW_LAYERS = {"reshape_r1", "reshape_r2", "reshape_g", "unsqueeze_u"}  # counted by hand from the list above
NOT_VIEW_SHUFFLES = {"transpose_t", "reshape_output", "reshape_input"}
VIEW_TENSORS = {"r1", "r2", "g", "u"}


def reshape_view_model() -> onnx.ModelProto:
    def const(name, values):
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)

    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
        helper.make_node("Reshape", ["a", "dims_r1"], ["r1"], name="reshape_r1"),
        helper.make_node("Reshape", ["r1", "dims_r2"], ["r2"], name="reshape_r2"),
        helper.make_node("Sigmoid", ["r2"], ["y_r2"], name="sigmoid_r2"),
        helper.make_node("Shape", ["a"], ["shape_a"], name="shape_a"),
        helper.make_node("Reshape", ["r2", "shape_a"], ["g"], name="reshape_g"),
        helper.make_node("Sigmoid", ["g"], ["y_g"], name="sigmoid_g"),
        helper.make_node("Unsqueeze", ["a", "axes_u"], ["u"], name="unsqueeze_u"),
        helper.make_node("Exp", ["u"], ["y_u"], name="exp_u"),
        helper.make_node("Transpose", ["a"], ["t"], name="transpose_t", perm=[0, 2, 1]),
        helper.make_node("Abs", ["t"], ["y_t"], name="abs_t"),
        helper.make_node("Reshape", ["a", "dims_out"], ["y_reshaped"], name="reshape_output"),
        helper.make_node("Reshape", ["x", "dims_r1"], ["r_in"], name="reshape_input"),
        helper.make_node("Neg", ["r_in"], ["y_in"], name="neg_in"),
    ]
    inits = [const("dims_r1", [0, 12]), const("dims_r2", [-1]), const("axes_u", [1]), const("dims_out", [0, 4, 3])]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
               for name in ("y_r2", "y_g", "y_u", "y_t", "y_reshaped", "y_in")]
    graph = helper.make_graph(nodes, "reshape_views",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """Every named tensor of the model in float64 NumPy."""
    x = x.astype(np.float64)
    n = x.shape[0]
    a = np.maximum(x, 0)
    r1 = a.reshape(n, 12)
    r2 = r1.reshape(-1)
    g = r2.reshape(a.shape)
    u = a[:, None]
    t = a.transpose(0, 2, 1)
    return {"a": a, "r1": r1, "r2": r2, "g": g, "u": u, "t": t, "y_r2": 1 / (1 + np.exp(-r2)),
            "y_g": 1 / (1 + np.exp(-g)), "y_u": np.exp(u), "y_t": np.abs(t), "y_reshaped": a.reshape(n, 4, 3),
            "y_in": -x.reshape(n, 12)}


def sample(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, 4)).astype(np.float32)
