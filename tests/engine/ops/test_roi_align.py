"""ROI_ALIGN layers and the ONNX RoiAlign importer, checked against onnxruntime and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_ort, node_model

from engine.conformance.harness import parse_onnx, run_onnx
from engine.errors import EngineError, ParseError

RNG = np.random.default_rng(13)


@pytest.mark.parametrize("case", cases_for(["RoiAlign"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


def random_rois(count: int, size: float) -> np.ndarray:
    """(x1, y1, x2, y2) rois, some reaching past the image edge and some smaller than a pixel."""
    low = RNG.uniform(-2, size, (count, 2))
    extent = RNG.uniform(0.3, size / 2, (count, 2))
    return np.concatenate([low, low + extent], axis=1).astype(np.float32)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
@pytest.mark.parametrize("sampling_ratio,scale", [(0, 1.0), (2, 0.5)])
def test_matches_onnxruntime(mode, transform, sampling_ratio, scale):
    values = {"x": RNG.standard_normal((2, 3, 10, 12)).astype(np.float32),
              "rois": random_rois(6, 12 / scale), "batch": RNG.integers(0, 2, 6).astype(np.int64)}
    attrs = {"mode": mode, "coordinate_transformation_mode": transform, "output_height": 3, "output_width": 2,
             "sampling_ratio": sampling_ratio, "spatial_scale": scale}
    (y,) = check_against_ort("RoiAlign", ["x", "rois", "batch"], values, attrs=attrs, opset=16, rtol=1e-5,
                             atol=1e-5)
    assert y.shape == (6, 3, 3, 2)


def test_opset_10_uses_output_half_pixel():
    values = {"x": RNG.standard_normal((1, 2, 6, 6)).astype(np.float32), "rois": random_rois(3, 6),
              "batch": np.zeros(3, np.int64)}
    check_against_ort("RoiAlign", ["x", "rois", "batch"], values, attrs={"output_height": 2, "output_width": 2},
                      opset=10, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs,message", [
    ({"mode": "median"}, "mode must be one of"),
    ({"coordinate_transformation_mode": "align_corners"}, "coordinate_transformation_mode 'align_corners'"),
    ({"output_height": 0}, "output_height and output_width must be positive"),
])
def test_bad_attributes_are_unsupported(attrs, message):
    values = {"x": np.zeros((1, 1, 4, 4), np.float32), "rois": np.zeros((1, 4), np.float32),
              "batch": np.zeros(1, np.int64)}
    with pytest.raises(ParseError, match=message):
        parse_onnx(node_model("RoiAlign", ["x", "rois", "batch"], values, attrs=attrs, opset=16))


def test_batch_index_out_of_range_names_the_layer_and_roi():
    values = {"x": np.zeros((2, 1, 4, 4), np.float32), "rois": np.array([[0, 0, 2, 2], [0, 0, 1, 1]], np.float32),
              "batch": np.array([0, 2], np.int64)}
    model = node_model("RoiAlign", ["x", "rois", "batch"], values, opset=16)
    model.graph.node[0].name = "pool"
    with pytest.raises(EngineError, match="RoiAlign layer 'pool': batch index 2 of roi 1 is out of range for batch 2"):
        run_onnx(model, values)


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_gpu_matches_onnxruntime(mode):
    from onnx_node_check import run_ort

    values = {"x": RNG.standard_normal((2, 3, 10, 12)).astype(np.float32), "rois": random_rois(5, 12),
              "batch": RNG.integers(0, 2, 5).astype(np.int64)}
    model = node_model("RoiAlign", ["x", "rois", "batch"], values, attrs={"mode": mode, "output_height": 2,
                                                                        "output_width": 3}, opset=16)
    got = run_onnx(model, values, device="gpu")["y0"]
    np.testing.assert_allclose(got, run_ort(model, values)[0], rtol=1e-5, atol=1e-5)
