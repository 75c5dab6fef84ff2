"""Q/DQ propagation's INT8 layers on the GPU (the INT8 tactics are registered for both backends): a QDQ
mobilenet_v2 from onnxruntime's quantizer builds into the same INT8 layers as on the CPU, and its outputs match
onnxruntime within one output quantization step on >= 99.9% of elements (docs/quantization.md's metric)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from quantized_models import calibration_shapes, output_steps, qdq_model
from shared_model_cases import MODELS, make_feeds

from polyx.build import BuildOptions, build_engine

pytestmark = pytest.mark.gpu
pytest.importorskip("cupy")


def test_qdq_mobilenet_runs_its_int8_layers_on_the_gpu():
    if not (MODELS / "mobilenet_v2.onnx").is_file():
        pytest.skip("shared model mobilenet_v2 is not available")
    path = qdq_model("mobilenet_v2", preprocessed=True)
    shapes = calibration_shapes("mobilenet_v2")
    layers = {}
    for device in ("cpu", "gpu"):
        engine, _, _ = build_engine(path, BuildOptions(device=device, input_shapes=shapes))
        layers[device] = Counter((r["type"], r["precision"]) for r in engine.layer_info() if not r["host"])
    assert layers["gpu"] == layers["cpu"] and layers["gpu"][("CONVOLUTION", "INT8")] == 52
    model = onnx.load(path)
    feeds = make_feeds(onnx.load(MODELS / "mobilenet_v2.onnx"), shapes, seed=3)
    got = engine.create_execution_context().execute(feeds)["output"]
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    step = output_steps(model)["output"]
    assert np.mean(np.abs(got.astype(np.float64) - want) <= step * (1 + 1e-5)) >= 0.999
