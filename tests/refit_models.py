"""The small model the refit tests share (tests/engine/test_refit.py, tests/cli/test_refit_cmd.py): Conv →
BatchNormalization → Relu → Reshape → MatMul → Add, whose weights a plain build folds (BatchNorm into the
convolution, Add into the MatMul's bias), with seeded weights and input."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

X = np.random.default_rng(11).standard_normal((2, 3, 4, 4)).astype(np.float32)


def conv_bn_fc_model(seed: int, fc_w: np.ndarray | None = None) -> onnx.ModelProto:
    """Conv → BatchNormalization → Relu → Reshape (int64 shape initializer) → MatMul → Add: the builder would fold
    the BatchNorm into the convolution and the Add into the MatMul's bias."""
    r = np.random.default_rng(seed)
    values = {"conv.w": r.standard_normal((4, 3, 3, 3)), "conv.b": r.standard_normal(4),
              "bn.gamma": r.uniform(0.5, 1.5, 4), "bn.beta": r.standard_normal(4), "bn.mean": r.standard_normal(4),
              "bn.var": r.uniform(0.5, 1.5, 4), "fc.w": r.standard_normal((64, 5)), "fc.b": r.standard_normal(5)}
    if fc_w is not None:
        values["fc.w"] = fc_w
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in values.items()]
    inits.append(numpy_helper.from_array(np.array([-1, 64], np.int64), "flat.shape"))
    nodes = [helper.make_node("Conv", ["x", "conv.w", "conv.b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c", "bn.gamma", "bn.beta", "bn.mean", "bn.var"], ["bn"],
                              name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("Reshape", ["r", "flat.shape"], ["f"], name="flat"),
             helper.make_node("MatMul", ["f", "fc.w"], ["m"], name="fc"),
             helper.make_node("Add", ["m", "fc.b"], ["y"], name="fc_add")]
    graph = helper.make_graph(nodes, "conv_bn_fc",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def onnxruntime_output(model: onnx.ModelProto, x: np.ndarray = X) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


