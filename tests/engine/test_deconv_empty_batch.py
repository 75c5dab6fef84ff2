"""ConvTranspose on an empty batch: Mask R-CNN's mask head gets one row per detection, and with none the
reference kernel failed ("cannot reshape array of size 0 into shape (0,1,256,newaxis)": -1 cannot be inferred from
0 elements). The empty batch must give an empty output of the right shape, and a non-empty one still the values."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.conformance.harness import build_engine_for_feeds, parse_onnx, run_onnx


def deconv_after_filter():
    """y = ConvTranspose(Compress(x, keep)) with a 2x2 stride-2 kernel: `keep` decides how many rows reach it."""
    w = np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32)
    nodes = [helper.make_node("Compress", ["x", "keep"], ["rows"], axis=0, name="filter"),
             helper.make_node("ConvTranspose", ["rows", "w"], ["y"], strides=[2, 2], name="deconv")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3, 3]),
                                           helper.make_tensor_value_info("keep", TensorProto.BOOL, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 6, 6])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_deconv_on_an_empty_batch_matches_onnxruntime() -> None:
    model = deconv_after_filter()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    for keep in ([False, False], [True, False]):
        feeds = {"x": x, "keep": np.array(keep)}
        (expected,) = session.run(None, feeds)
        actual = run_onnx(model, feeds)["y"]
        assert actual.shape == expected.shape == (sum(keep), 3, 6, 6)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_deconv_on_an_empty_batch_on_the_gpu_matches_onnxruntime() -> None:
    cupy = pytest.importorskip("cupy")
    model = deconv_after_filter()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    for keep in ([False, False], [True, False]):
        feeds = {"x": x, "keep": np.array(keep)}
        (expected,) = session.run(None, feeds)
        engine = build_engine_for_feeds(parse_onnx(model), feeds, device="gpu")
        actual = cupy.asnumpy(engine.create_execution_context().execute(feeds)["y"])
        assert actual.shape == expected.shape == (sum(keep), 3, 6, 6)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
