"""COL2IM layers and the ONNX Col2Im importer: the backend cases, onnxruntime (2-D), a float64 loop written from the
ONNX definition (1-D to 3-D), non-finite values staying in their pixel, the hand-built API, and the errors."""
from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from backend_cases import cases_for, run_case
from onnx import TensorProto, helper
from onnx_node_check import assert_same, node_model, run_ort

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx, run_onnx
from engine.container import pack, unpack
from engine.dtypes import DataType
from engine.errors import ParseError, PlanFormatError
from engine.network import NetworkDefinition
from engine.plan import FORMAT_VERSION, MAGIC

RNG = np.random.default_rng(17)


def col2im_by_definition(x, image, block, strides, dilations, pads) -> np.ndarray:
    """float64, one value at a time: column (c, k) at grid position j lands on pixel
    grid_j * stride + k * dilation - pad_begin, when that is inside the image."""
    n = len(block)
    spans = [d * (b - 1) + 1 for d, b in zip(dilations, block)]
    grid = [(i + pads[k] + pads[k + n] - span) // s + 1 for k, (i, span, s) in enumerate(zip(image, spans, strides))]
    batch, columns, _ = x.shape
    channels = columns // int(np.prod(block))
    out = np.zeros((batch, channels, *image))
    offsets = list(itertools.product(*(range(b) for b in block)))
    for b, c in itertools.product(range(batch), range(channels)):
        for k, offset in enumerate(offsets):
            for j, position in enumerate(itertools.product(*(range(g) for g in grid))):
                pixel = [p * s + o * d - pads[i] for i, (p, s, o, d) in enumerate(zip(position, strides, offset,
                                                                                     dilations))]
                if all(0 <= q < size for q, size in zip(pixel, image)):
                    out[(b, c, *pixel)] += float(x[b, c * len(offsets) + k, j])
    return out


def col2im_model(x, image, block, opset=18, **attrs):
    values = {"x": x, "image": np.array(image, np.int64), "block": np.array(block, np.int64)}
    return node_model("Col2Im", ["x", "image", "block"], values, constants=["image", "block"], attrs=attrs,
                      opset=opset)


def columns_for(channels, image, block, strides, dilations, pads, batch=2, dtype=np.float32):
    n = len(block)
    grid = [(i + pads[k] + pads[k + n] - (d * (b - 1) + 1)) // s + 1
            for k, (i, b, s, d) in enumerate(zip(image, block, strides, dilations))]
    shape = (batch, channels * int(np.prod(block)), int(np.prod(grid)))
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("case", cases_for(["Col2Im"]), ids=lambda c: c.name)
def test_onnx_backend_case(case):
    run_case(case)  # image_shape and block_shape are graph inputs there: shape inputs of the engine


GEOMETRIES_2D = [  # image, block, strides, dilations, pads
    ([5, 6], [2, 3], [1, 1], [1, 1], [0, 0, 0, 0]),
    ([7, 5], [3, 2], [2, 1], [1, 2], [1, 0, 2, 1]),
    ([6, 6], [2, 2], [2, 2], [1, 1], [0, 0, 0, 0]),  # non-overlapping: a plain re-layout
    ([8, 4], [3, 3], [3, 2], [2, 1], [2, 2, 1, 0]),  # a stride that leaves uncovered pixels
]


@pytest.mark.parametrize("image, block, strides, dilations, pads", GEOMETRIES_2D)
def test_2d_matches_onnxruntime_and_the_definition(image, block, strides, dilations, pads):
    x = columns_for(3, image, block, strides, dilations, pads)
    model = col2im_model(x, image, block, strides=strides, dilations=dilations, pads=pads)
    (actual,) = run_onnx(model, {"x": x}).values()
    (expected,) = run_ort(model, {"x": x})
    assert_same(actual, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(actual, col2im_by_definition(x, image, block, strides, dilations, pads), rtol=1e-6,
                               atol=1e-6)


@pytest.mark.parametrize("image, block, strides, dilations, pads", [
    ([9], [3], [2], [1], [1, 2]),
    ([4, 5, 3], [2, 3, 1], [1, 2, 1], [2, 1, 1], [0, 1, 1, 1, 0, 0])])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float16, 2e-3)])
def test_other_ranks_and_float16_match_the_definition(image, block, strides, dilations, pads, dtype, rtol):
    x = columns_for(2, image, block, strides, dilations, pads, dtype=dtype)
    (actual,) = run_onnx(col2im_model(x, image, block, strides=strides, dilations=dilations, pads=pads),
                         {"x": x}).values()
    assert actual.dtype == dtype and actual.shape == (2, 2, *image)
    np.testing.assert_allclose(actual.astype(np.float64),
                               col2im_by_definition(x, image, block, strides, dilations, pads), rtol=rtol, atol=rtol)


def test_non_finite_values_stay_in_their_pixel():
    """One inf and one NaN in the columns: only the pixels they are summed into change (a deconvolution with
    one-hot weights would spread 0 * inf = NaN over the block)."""
    image, block = [4, 4], [2, 2]
    x = np.ones((1, 4, 9), np.float32)
    x[0, 0, 0] = np.inf   # block offset (0, 0) of grid position (0, 0): pixel (0, 0), covered once
    x[0, 3, 8] = np.nan   # block offset (1, 1) of grid position (2, 2): pixel (3, 3), covered once
    (actual,) = run_onnx(col2im_model(x, image, block), {"x": x}).values()
    coverage = col2im_by_definition(np.ones_like(x), image, block, [1, 1], [1, 1], [0] * 4)[0, 0]
    expected = coverage.copy()
    expected[0, 0], expected[3, 3] = np.inf, np.nan
    np.testing.assert_array_equal(actual[0, 0], expected)
    np.testing.assert_array_equal(coverage, [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])  # by hand


def test_hand_built_network_with_shape_tensor_sizes():
    """network.add_col2im with ints, and with image_shape as an INT64 shape input."""
    image, block = [3, 4], [2, 2]
    x = columns_for(1, image, block, [1, 1], [1, 1], [0] * 4, batch=1)
    expected = col2im_by_definition(x, image, block, [1, 1], [1, 1], [0] * 4)
    for as_tensor in (False, True):
        network = NetworkDefinition()
        columns = network.add_input("x", DataType.FLOAT, x.shape)
        sizes = network.add_input("image", DataType.INT64, (2,)) if as_tensor else image
        layer = network.add_col2im(columns, sizes, block)
        assert layer.get_output(0).shape == ((1, 1, -1, -1) if as_tensor else (1, 1, 3, 4))
        network.mark_output(layer.get_output(0))
        feeds = {"x": x} | ({"image": np.array(image, np.int64)} if as_tensor else {})
        engine = build_engine_for_feeds(network, feeds, device="cpu")
        (actual,) = engine.create_execution_context().execute(feeds).values()
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attrs, block, l_extra, message", [
    ({}, [6, 2], 0, r"block_shape \[6, 2\] with dilations \[1, 1\] does not fit image_shape \[5, 5\]"),
    ({"pads": [0, 0, 0]}, [2, 2], 0, r"pads must be 4 integers >= 0, got \[0, 0, 0\]"),
    ({}, [2, 2], 1, r"input has 17 blocks; image_shape \[5, 5\] holds 16 \(4 x 4\)")])
def test_bad_geometry_is_a_parse_error_naming_the_node(attrs, block, l_extra, message):
    x = np.zeros((1, 4, 16 + l_extra), np.float32)
    model = col2im_model(x, [5, 5], block, **attrs)
    model.graph.node[0].name = "fold"
    with pytest.raises(ParseError, match=r"node 'fold' \(Col2Im\).*" + message):
        parse_onnx(model)


def test_bool_input_is_unsupported():
    model = col2im_model(np.zeros((1, 4, 16), np.bool_), [5, 5], [2, 2])
    with pytest.raises(ParseError, match="input is BOOL; Col2Im adds values"):
        parse_onnx(model)


@pytest.mark.parametrize("image_as_input", [False, True])
def test_a_tampered_plan_param_is_refused_naming_the_layer(image_as_input):
    """Checked when the plan loads, also when image_shape is a shape input whose value comes only at run time."""
    x = columns_for(1, [5, 5], [2, 2], [1, 1], [1, 1], [0] * 4, batch=1)
    model = col2im_model(x, [5, 5], [2, 2])
    if image_as_input:
        image = model.graph.initializer[0]
        model.graph.input.append(helper.make_tensor_value_info(image.name, TensorProto.INT64, [2]))
        del model.graph.initializer[0]
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    if image_as_input:
        profile = builder.create_optimization_profile()
        profile.set_shape_input("image", [5, 5], [5, 5], [5, 5])
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(parse_onnx(model), config)
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    (entry,) = [e for e in header["layers"] if e["type"] == "COL2IM"]
    entry["params"]["strides"] = [0, 1]
    with pytest.raises(PlanFormatError, match=r"Col2Im '\w+' strides must be 2 integers >= 1, got \[0, 1\]"):
        trt.Runtime(trt.Logger(trt.Logger.INTERNAL_ERROR)).deserialize_cuda_engine(
            pack(MAGIC, FORMAT_VERSION, header, arrays))


def test_the_docs_example_runs(capsys):
    text = (Path(__file__).resolve().parents[3] / "docs" / "col2im.md").read_text()
    block = re.search(r"## Example.*?```python\n(.*?)```", text, re.DOTALL)[1]
    exec(compile(block, "docs/col2im.md", "exec"), {})
    printed = capsys.readouterr().out.split()
    documented = re.findall(r"^#\s+(\[.*)$", block, re.MULTILINE)
    assert printed == " ".join(documented).split()  # the output shown in the docs is the output
    coverage = col2im_by_definition(np.ones((1, 4, 6)), [3, 4], [2, 2], [1, 1], [1, 1], [0] * 4)[0, 0]
    assert " ".join(printed) == " ".join(str(coverage).split())


@pytest.mark.gpu
@pytest.mark.parametrize("image, block, strides, dilations, pads", GEOMETRIES_2D)
def test_col2im_on_gpu_matches_the_definition(image, block, strides, dilations, pads):
    x = columns_for(3, image, block, strides, dilations, pads)
    model = col2im_model(x, image, block, strides=strides, dilations=dilations, pads=pads)
    (actual,) = run_onnx(model, {"x": x}, device="gpu").values()
    np.testing.assert_allclose(actual, col2im_by_definition(x, image, block, strides, dilations, pads), rtol=1e-5,
                               atol=1e-5, err_msg=f"GPU Col2Im image={image} block={block} strides={strides}")
