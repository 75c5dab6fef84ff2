"""`polyx bench` on a GPU engine: CUDA-event split (H2D/compute/D2H), CUDA graphs, several streams, and outputs
equal to onnxruntime's on the same seeded inputs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from polyx.bench import BenchOptions, TimingSettings, run_bench
from polyx.build import BuildOptions
from polyx.cli.app import main

pytestmark = pytest.mark.gpu
pytest.importorskip("cupy")
RNG = np.random.default_rng(8)


@pytest.fixture
def model_path(tmp_path):
    w1 = RNG.standard_normal((64, 128)).astype(np.float32) / 8
    w2 = RNG.standard_normal((128, 10)).astype(np.float32) / 8
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["a"], name="relu"),
             helper.make_node("MatMul", ["a", "w2"], ["logits"], name="fc2"),
             helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    path = tmp_path / "mlp.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _run(model_path, **kwargs):
    options = BenchOptions(model=model_path, build=BuildOptions(input_shapes={"x": (8, 64)}, device="gpu",
                                                                optimization_level=0),
                           timing=TimingSettings(warmup_ms=20, min_iterations=20, duration_s=0.1), **kwargs)
    return run_bench(options)


def _expected(model_path, result):
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": result.feeds["x"]})[0]


@pytest.mark.parametrize("use_cuda_graph", [False, True])
def test_gpu_bench_split_streams_and_outputs(model_path, use_cuda_graph):
    result = _run(model_path, streams=2, use_cuda_graph=use_cuda_graph)
    assert result.device == "gpu" and all(len(s.iterations) >= 20 for s in result.timed.streams)
    assert result.cuda_graph_active == use_cuda_graph
    stats = result.stats()
    assert stats["h2d"]["min"] > 0 and stats["d2h"]["min"] > 0 and stats["compute"]["min"] > 0
    # the device parts of one iteration fit inside its host wall-clock latency
    for times in result.timed.iterations:
        assert times.h2d_ms + times.compute_ms + times.d2h_ms <= times.latency_ms + 0.05
    expected = _expected(model_path, result)
    for outputs in result.outputs:
        np.testing.assert_allclose(outputs["y"], expected, rtol=1e-4, atol=1e-6)


def test_gpu_bench_without_data_transfers(model_path):
    result = _run(model_path, data_transfers=False)
    stats = result.stats()
    assert stats["h2d"]["max"] == 0 and stats["d2h"]["max"] == 0 and stats["compute"]["min"] > 0
    np.testing.assert_allclose(result.outputs[0]["y"], _expected(model_path, result), rtol=1e-4, atol=1e-6)


def test_gpu_bench_cli_json_and_profile(model_path, tmp_path, capsys):
    layers = tmp_path / "layers.json"
    code = main(["bench", str(model_path), "--device", "gpu", "--builder-optimization-level", "0", "--warmup", "10",
                 "--iterations", "5", "--duration", "0", "--use-cuda-graph", "--json", "--export-profile",
                 str(layers), "--shapes", "x:[4,64]"])
    out = capsys.readouterr().out
    assert code == 0
    doc = json.loads(out)
    assert doc["device"] == "gpu" and doc["cuda_graph_active"] and doc["runs"] == 5
    assert {layer["name"] for layer in json.loads(layers.read_text())["layers"]} >= {"fc2", "softmax"}
