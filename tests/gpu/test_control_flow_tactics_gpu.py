"""Tactics inside control-flow subgraphs on the GPU: a Loop/Scan body MatMul and a branch Conv get GPU tactics
(cuBLAS/cuBLASLt/NVRTC GEMMs, convolution kernels) recorded in the plan, run on CuPy arrays, and fall back to the
reference kernel on shapes their tactic does not support. Values are checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from control_flow_tactic_models import conv_if, matmul_loop, matmul_scan
from onnxruntime_reference import onnxruntime_outputs

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(25)


def _check(got, want):
    assert set(got) == set(want)
    for name, value in want.items():
        array = cupy.asnumpy(got[name])
        assert array.shape == value.shape, f"{name}: shape {array.shape}, onnxruntime {value.shape}"
        np.testing.assert_allclose(array, value, rtol=1e-4, atol=1e-4, err_msg=name)


def _reloaded(engine):
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(engine.serialize())


@pytest.mark.parametrize("make, feeds, layer", [
    (matmul_loop, {"trips": np.array(4, np.int64), "h0": RNG.standard_normal((3, 8)).astype(np.float32)},
     "body_matmul"),
    (matmul_scan, {"s0": RNG.standard_normal((2, 8)).astype(np.float32),
                   "xs": RNG.standard_normal((5, 2, 8)).astype(np.float32)}, "scan_matmul"),
    (conv_if, {"c": np.array(True), "x": RNG.standard_normal((1, 2, 6, 6)).astype(np.float32)}, "then_conv"),
], ids=["loop", "scan", "if"])
def test_body_layers_get_gpu_tactics_and_match_onnxruntime(make, feeds, layer):
    model = make()
    engine = _reloaded(build_engine_for_feeds(parse_onnx(model), feeds, device="gpu", optimization_level=3))
    assert engine.device == "gpu"
    rows = {row["name"]: row for row in engine.subgraph_layer_info()}
    assert rows[layer]["tactic_id"] != 0, f"the body layer {layer} kept the reference kernel on the GPU: {rows}"
    assert "reference" not in rows[layer]["tactic"], rows[layer]
    _check(engine.create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds))


def test_body_matmul_rows_changing_every_iteration_match_onnxruntime():
    model = matmul_loop(rows_grow=True)
    feeds = {"trips": np.array(3, np.int64), "h0": RNG.standard_normal((2, 8)).astype(np.float32)}
    engine = _reloaded(build_engine_for_feeds(parse_onnx(model), feeds, device="gpu", optimization_level=3))
    want = onnxruntime_outputs(model, feeds)
    assert want["h_final"].shape == (5, 8)  # the body MatMul saw 2, 3 and 4 rows
    _check(engine.create_execution_context().execute(feeds), want)
