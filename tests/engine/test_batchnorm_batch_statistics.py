"""BatchNormalization with training_mode=1 normalizes with the input's own statistics. It is deterministic, and
real exports use it at inference: timm's NFNets standardize each conv weight with F.batch_norm(training=True)
(the engine refused: "training_mode=1 is not supported"). Checked against NumPy in float64 (ONNX's definition:
biased variance over every axis but 1; running statistics momentum-weighted) and onnxruntime (which accepts the
mode only with all three outputs). The ONNX conformance cases test_batchnorm_*_training_mode pass as well."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.conformance.harness import parse_onnx, run_onnx

RNG = np.random.default_rng(3)
GAMMA, BETA = RNG.standard_normal(3).astype(np.float32), RNG.standard_normal(3).astype(np.float32)
MEAN, VAR = RNG.standard_normal(3).astype(np.float32), RNG.random(3).astype(np.float32) + 0.5


def batchnorm_training(outputs=("y",), dtype=TensorProto.FLOAT):
    inits = [numpy_helper.from_array(a, n) for a, n in ((GAMMA, "s"), (BETA, "b"), (MEAN, "m"), (VAR, "v"))]
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], list(outputs), name="bn",
                            training_mode=1, epsilon=1e-3, momentum=0.8)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, [2, 3, 4, 5])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_batch_statistics_match_numpy_float64() -> None:
    x = (RNG.standard_normal((2, 3, 4, 5)) * 3 + 1).astype(np.float32)
    model = batchnorm_training(("y", "running_mean", "running_var"))
    got = run_onnx(model, {"x": x})
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    for name, expected in zip(("y", "running_mean", "running_var"), reference):
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2, 3)), x64.var(axis=(0, 2, 3))
    per_channel = (1, 3, 1, 1)
    y = (x64 - mean.reshape(per_channel)) / np.sqrt(var.reshape(per_channel) + 1e-3) * GAMMA.reshape(per_channel) \
        + BETA.reshape(per_channel)
    np.testing.assert_allclose(got["y"], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["running_mean"], MEAN * 0.8 + mean * 0.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["running_var"], VAR * 0.8 + var * 0.2, rtol=1e-5, atol=1e-6)


def test_half_input_is_refused_naming_the_node() -> None:
    with pytest.raises(trt.ParseError, match=r"node 'bn' \(BatchNormalization\): training_mode=1 needs float32"):
        parse_onnx(batchnorm_training(dtype=TensorProto.FLOAT16))
