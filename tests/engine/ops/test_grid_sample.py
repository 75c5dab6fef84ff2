"""GRID_SAMPLE layers and the ONNX GridSample importer, checked against onnxruntime and the ONNX backend cases."""
from __future__ import annotations

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx_node_check import check_against_float64_reference, check_against_ort, node_model

from engine.conformance.harness import parse_onnx
from engine.errors import ParseError

RNG = np.random.default_rng(19)


@pytest.mark.parametrize("case", cases_for(["GridSample"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [0, 1])
def test_matches_onnxruntime(mode, padding, align):
    """Grid points reach well outside [-1, 1], so every padding mode and repeated reflections are exercised.
    Bicubic with border padding is checked against ONNX's reference instead: onnxruntime disagrees with it there
    (by up to 0.2 on such grids), and the engine follows the reference, as the ONNX backend cases do."""
    values = {"x": RNG.standard_normal((2, 3, 5, 7)).astype(np.float32),
              "grid": RNG.uniform(-2.5, 2.5, (2, 4, 6, 2)).astype(np.float32)}
    if (mode, padding) == ("bicubic", "border"):
        check_against_float64_reference("GridSample", ["x", "grid"], values, opset=20, rtol=1e-4, atol=1e-5,
                                        attrs={"mode": "cubic", "padding_mode": padding, "align_corners": align})
        return
    (y,) = check_against_ort("GridSample", ["x", "grid"], values, opset=16, rtol=1e-4, atol=1e-5,
                             attrs={"mode": mode, "padding_mode": padding, "align_corners": align})
    assert y.shape == (2, 3, 4, 6)


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_volumetric_opset_20_matches_onnxruntime(mode):
    values = {"x": RNG.standard_normal((1, 2, 3, 4, 5)).astype(np.float32),
              "grid": RNG.uniform(-1.2, 1.2, (1, 2, 3, 4, 3)).astype(np.float32)}
    check_against_ort("GridSample", ["x", "grid"], values, opset=20, rtol=1e-4, atol=1e-5,
                      attrs={"mode": mode, "padding_mode": "border"})


@pytest.mark.parametrize("opset,attrs,shape,message", [
    (16, {"mode": "linear"}, (1, 1, 4, 4), "mode must be one of \\['bilinear'"),
    (16, {"padding_mode": "wrap"}, (1, 1, 4, 4), "padding_mode must be one of"),
    (16, {}, (1, 1, 2, 4, 4), "before opset 20 takes 4-D input"),
    (20, {"mode": "cubic"}, (1, 1, 2, 4, 4), "cubic mode needs a 4-D input"),
])
def test_unsupported_attributes_are_named(opset, attrs, shape, message):
    values = {"x": np.zeros(shape, np.float32), "grid": np.zeros((1,) + (2,) * (len(shape) - 2) + (len(shape) - 2,),
                                                                  np.float32)}
    with pytest.raises(ParseError, match=message):
        parse_onnx(node_model("GridSample", ["x", "grid"], values, attrs=attrs, opset=opset))


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_gpu_matches_onnxruntime(mode):
    from onnx_node_check import run_ort

    from engine.conformance.harness import run_onnx

    values = {"x": RNG.standard_normal((2, 3, 5, 7)).astype(np.float32),
              "grid": RNG.uniform(-1.5, 1.5, (2, 4, 6, 2)).astype(np.float32)}
    model = node_model("GridSample", ["x", "grid"], values, opset=16,
                       attrs={"mode": mode, "padding_mode": "reflection"})
    got = run_onnx(model, values, device="gpu")["y0"]
    np.testing.assert_allclose(got, run_ort(model, values)[0], rtol=1e-4, atol=1e-5)
