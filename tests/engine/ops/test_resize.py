"""RESIZE layers and ONNX Resize (opsets 10-19) / Upsample (7-9): backend cases and onnxruntime.

The backend cases feed scales/sizes/roi as graph inputs; the engine (like TensorRT) needs the values that decide
an output shape at build time, so those inputs are frozen into initializers here."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from backend_cases import cases_for
from onnx import numpy_helper
from onnx_node_check import assert_same, check_against_ort, node_model

from engine.conformance.harness import parse_onnx, run_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(16)


def _freeze(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> onnx.ModelProto:
    frozen = [name for name in feeds if name not in ("X", "x")]
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.initializer.extend(numpy_helper.from_array(feeds.pop(name), name) for name in frozen)
    kept = [i for i in model.graph.input if i.name not in frozen]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return model


@pytest.mark.parametrize("case", [c for c in cases_for(["Resize", "Upsample"]) if "antialias" not in c.name],
                         ids=lambda c: c.name)
def test_onnx_backend_case(case):
    for inputs, expected in case.data_sets:
        feeds = {i.name: v for i, v in zip(case.model.graph.input, inputs)}
        model = _freeze(case.model, feeds)
        got = run_onnx(model, feeds)[case.model.graph.output[0].name]
        assert_same(got, expected[0], rtol=case.rtol, atol=case.atol)


@pytest.mark.parametrize("case", [c for c in cases_for(["Resize"]) if "antialias" in c.name], ids=lambda c: c.name)
def test_antialias_is_unsupported(case):
    with pytest.raises(ParseError, match="antialias"):
        parse_onnx(case.model)


MODES = [
    {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"},
    {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_ceil"},
    {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "ceil"},
    {"mode": "linear", "coordinate_transformation_mode": "pytorch_half_pixel"},
    {"mode": "linear", "coordinate_transformation_mode": "align_corners"},
    {"mode": "cubic", "coordinate_transformation_mode": "half_pixel", "cubic_coeff_a": -0.5, "exclude_outside": 1},
    {"mode": "cubic", "coordinate_transformation_mode": "asymmetric"},
]


# align_corners with non-integral scale x size: ONNX (and its backend cases) divide by the unrounded output length,
# onnxruntime by the rounded one, so that combination is covered by the backend cases and the sizes test only.
@pytest.mark.parametrize("attrs", [m for m in MODES if m["coordinate_transformation_mode"] != "align_corners"])
@pytest.mark.parametrize("scales", [[1, 1, 1.7, 0.6], [1, 1, 0.5, 2.0]])
def test_opset13_scales_match_onnxruntime(attrs, scales):
    values = {"x": RNG.standard_normal((1, 2, 5, 6)).astype(np.float32), "scales": np.array(scales, np.float32)}
    check_against_ort("Resize", ["x", "", "scales"], values, attrs=attrs, constants=["scales"], opset=13,
                      rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attrs", MODES[:5])
def test_opset11_sizes_match_onnxruntime(attrs):
    values = {"x": RNG.standard_normal((2, 3, 4, 5)).astype(np.float32), "roi": np.zeros(0, np.float32),
              "scales": np.zeros(0, np.float32), "sizes": np.array([2, 3, 7, 3], np.int64)}
    check_against_ort("Resize", ["x", "roi", "scales", "sizes"], values, attrs=attrs,
                      constants=["roi", "scales", "sizes"], opset=11, rtol=1e-4, atol=1e-5)


def test_tf_crop_and_resize_matches_onnxruntime():
    values = {"x": RNG.standard_normal((1, 1, 6, 6)).astype(np.float32),
              "roi": np.array([0, 0, 0.2, -0.1, 1, 1, 0.9, 0.7], np.float32),
              "sizes": np.array([1, 1, 4, 5], np.int64)}
    check_against_ort("Resize", ["x", "roi", "", "sizes"], values, constants=["roi", "sizes"], opset=13,
                      attrs={"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize",
                             "extrapolation_value": 3.0}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 3], [1, 1, 0.5, 0.75]])
def test_opset10_matches_onnxruntime(mode, scales):
    values = {"x": RNG.standard_normal((1, 2, 4, 8)).astype(np.float32), "scales": np.array(scales, np.float32)}
    check_against_ort("Resize", ["x", "scales"], values, attrs={"mode": mode}, constants=["scales"], opset=10,
                      rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 9])
def test_upsample_matches_onnxruntime(opset):
    values = {"x": RNG.standard_normal((1, 2, 3, 4)).astype(np.float32), "scales": np.array([1, 1, 2, 1.5], np.float32)}
    if opset == 7:
        model = node_model("Upsample", ["x"], values, attrs={"mode": "nearest", "scales": [1.0, 1.0, 2.0, 1.5]},
                           opset=7)
    else:
        model = node_model("Upsample", ["x", "scales"], values, attrs={"mode": "linear"}, constants=["scales"],
                           opset=9)
    import onnxruntime as ort

    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": values["x"]})[0]
    assert_same(run_onnx(model, {"x": values["x"]})["y0"], want, rtol=1e-5, atol=1e-5)


def test_uint8_nearest_keeps_dtype():
    values = {"x": RNG.integers(0, 255, (1, 1, 3, 3)).astype(np.uint8), "scales": np.array([1, 1, 2, 2], np.float32)}
    check_against_ort("Resize", ["x", "", "scales"], values, attrs={"mode": "nearest"}, constants=["scales"], opset=13)
