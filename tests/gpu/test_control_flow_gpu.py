"""Control flow on the GPU: CONDITIONAL and LOOP layers run their subgraphs on CuPy arrays, a data-dependent loop
runs eagerly on the device, and CUDA-graph capture is skipped (with a warning naming the layer) because the
condition and trip count are read on the host. Values are checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from control_flow_models import if_on_input, loop_until_large, loop_with_nested_if, scan_reversed_axes
from onnxruntime_reference import onnxruntime_outputs

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx
from engine.logger import CapturingLogger, Severity

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(5)


def _check(got, want):
    assert set(got) == set(want)
    for name, value in want.items():
        np.testing.assert_allclose(cupy.asnumpy(got[name]), value, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("make, feeds", [
    (if_on_input, {"c": np.array(False), "x": RNG.standard_normal((2, 3)).astype(np.float32),
                   "y": RNG.standard_normal((2, 3)).astype(np.float32)}),
    (loop_with_nested_if, {"acc0": RNG.standard_normal((2, 2)).astype(np.float32),
                           "w": RNG.standard_normal((2, 2)).astype(np.float32)}),
    (scan_reversed_axes, {"s0": RNG.standard_normal((2, 3)).astype(np.float32),
                          "x": RNG.standard_normal((2, 5, 3)).astype(np.float32)}),
    (loop_until_large, {"go": np.array(True), "x0": np.array([0.5, 0.25, 1.0], np.float32),
                        "limit": np.array(40.0, np.float32)}),
], ids=["if", "nested", "scan", "data_dependent_loop"])
def test_control_flow_on_the_gpu_matches_onnxruntime(make, feeds):
    model = make()
    engine = build_engine_for_feeds(parse_onnx(model), feeds, device="gpu")
    assert engine.device == "gpu"
    _check(engine.create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds))


def test_cuda_graph_capture_is_skipped_with_a_warning_naming_the_layer():
    model = if_on_input()
    feeds = {"c": np.array(True), "x": RNG.standard_normal((2, 3)).astype(np.float32),
             "y": RNG.standard_normal((2, 3)).astype(np.float32)}
    logger = CapturingLogger(Severity.WARNING)
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        build_engine_for_feeds(parse_onnx(model), feeds, device="gpu").serialize())
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    for flag in (True, False, True):  # a captured graph would replay the first branch
        step = {**feeds, "c": np.array(flag)}
        _check(context.execute(step), onnxruntime_outputs(model, step))
    assert context.cuda_graph_captures == 0
    warnings = [message for _, message in logger.messages if "CUDA graph capture skipped" in message]
    assert warnings and "layer 'choose' (CONDITIONAL) reads its condition" in warnings[0]
