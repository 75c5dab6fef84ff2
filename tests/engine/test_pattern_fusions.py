"""MatMul+bias and erf-GELU fusions: which chains fuse, which must not, and results against onnxruntime."""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from polyx.build import BuildOptions, build_engine

RNG = np.random.default_rng(7)
K, N = 16, 24


def _scalar(name: str, value: float) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, np.float32), name)


GELU_FORMS = {
    # HF BERT: (x * (1 + erf(x / sqrt2))) * 0.5
    "mul_then_half": [helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                      helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["h", "a"], ["m"]),
                      helper.make_node("Mul", ["m", "half"], ["y"])],
    # (x * 0.5) * (1 + erf(x * (1/sqrt2)))
    "half_first": [helper.make_node("Mul", ["inv_sqrt2", "h"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                   helper.make_node("Add", ["one", "e"], ["a"]), helper.make_node("Mul", ["h", "half"], ["hh"]),
                   helper.make_node("Mul", ["hh", "a"], ["y"])],
    # x * ((1 + erf(x / sqrt2)) * 0.5)
    "scaled_gate": [helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                    helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["a", "half"], ["m"]),
                    helper.make_node("Mul", ["h", "m"], ["y"])],
    # not a GELU: divides by 2 instead of sqrt(2)
    "wrong_constant": [helper.make_node("Div", ["h", "two"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                       helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["h", "a"], ["m"]),
                       helper.make_node("Mul", ["m", "half"], ["y"])],
}


def linear_model(bias: np.ndarray | None, tail: list, extra_outputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """x[B, S, K] @ w + bias (Add, bias first as PyTorch exports it) → `tail` nodes reading 'h' → y (no tail:
    the sum is y)."""
    w = (RNG.standard_normal((K, N)) / 4).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="fc")]
    inits = [numpy_helper.from_array(w, "w"), _scalar("sqrt2", math.sqrt(2)), _scalar("inv_sqrt2", 1 / math.sqrt(2)),
             _scalar("one", 1.0), _scalar("half", 0.5), _scalar("two", 2.0)]
    summed = "h" if tail else "y"
    if bias is not None:
        nodes.append(helper.make_node("Add", ["b", "mm"], [summed], name="fc.bias"))
        inits.append(numpy_helper.from_array(bias, "b"))
    else:
        nodes[0].output[0] = summed
    nodes += tail
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y", *extra_outputs)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 5, K])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def build_and_compare(model: onnx.ModelProto, tmp_path, tolerance: float = 1e-5) -> list[dict]:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    engine, _, _ = build_engine(path, BuildOptions(input_shapes={"x": (3, 5, K)}, device="cpu"))
    x = RNG.standard_normal((3, 5, K)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    got = engine.create_execution_context().execute({"x": x})
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=tolerance, atol=tolerance, err_msg=name)
    return [row for row in engine.layer_info() if not row["host"]]


@pytest.mark.parametrize("bias_shape", [(N,), (1, 1, N), (1,)])
def test_constant_row_bias_becomes_the_matmul_bias(bias_shape, tmp_path):
    bias = RNG.standard_normal(bias_shape).astype(np.float32)
    layers = build_and_compare(linear_model(bias, []), tmp_path)
    assert [(r["type"], r["fused_from"]) for r in layers] == [("MATRIX_MULTIPLY", ["fc", "fc.bias"])]


@pytest.mark.parametrize("bias_shape", [(5, 1), (5, N), (2, 1, 1, N)])
def test_biases_that_are_not_per_column_stay_separate(bias_shape, tmp_path):
    """A per-row (5, 1), a full (5, N) and a rank-raising bias are not the GEMM's column bias."""
    bias = RNG.standard_normal(bias_shape).astype(np.float32)
    layers = build_and_compare(linear_model(bias, []), tmp_path)
    assert [r["type"] for r in layers] == ["MATRIX_MULTIPLY", "ELEMENTWISE"]


def test_a_marked_product_keeps_its_bias_add(tmp_path):
    model = linear_model(RNG.standard_normal(N).astype(np.float32), [], extra_outputs=("mm",))
    layers = build_and_compare(model, tmp_path)
    assert [r["type"] for r in layers] == ["MATRIX_MULTIPLY", "ELEMENTWISE"]


@pytest.mark.parametrize("form", ["mul_then_half", "half_first", "scaled_gate"])
def test_erf_gelu_chains_become_one_activation_fused_into_the_matmul(form, tmp_path):
    model = linear_model(RNG.standard_normal(N).astype(np.float32), GELU_FORMS[form])
    layers = build_and_compare(model, tmp_path)
    assert len(layers) == 1 and layers[0]["type"] == "MATRIX_MULTIPLY"
    # fc, fc.bias, the GELU activation, then the ONNX nodes of the GELU chain it stands for (parser names OP_i)
    assert layers[0]["fused_from"][:3] == ["fc", "fc.bias", "Erf_3.gelu"]
    chain = [f"{node.op_type}_{index}" for index, node in enumerate(model.graph.node) if index >= 2]
    assert sorted(layers[0]["fused_from"][3:]) == sorted(chain)


def test_near_miss_gelu_constant_is_not_fused(tmp_path):
    layers = build_and_compare(linear_model(None, GELU_FORMS["wrong_constant"]), tmp_path)
    assert "UNARY" in [r["type"] for r in layers]


def test_gelu_whose_intermediate_is_marked_stays_unfused(tmp_path):
    model = linear_model(None, GELU_FORMS["mul_then_half"], extra_outputs=("e",))
    layers = build_and_compare(model, tmp_path)
    assert "UNARY" in [r["type"] for r in layers]


def test_gelu_fusion_in_fp16_stays_within_fp16_tolerance(tmp_path):
    model = linear_model(RNG.standard_normal(N).astype(np.float32), GELU_FORMS["mul_then_half"])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    engine, _, _ = build_engine(path, BuildOptions(input_shapes={"x": (3, 5, K)}, device="cpu", fp16=True))
    x = RNG.standard_normal((3, 5, K)).astype(np.float32)
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = engine.create_execution_context().execute({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-2, atol=1e-2)
    assert any(r["type"] == "MATRIX_MULTIPLY" and r["precision"] == trt.DataType.HALF.value
               for r in engine.layer_info())


# ---------------------------------------------------------------------------------------------- conv residual
def residual_block(with_downsample: bool, relu: bool = True, residual_shape: tuple | None = None,
                   extra_outputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """x → conv a (3x3) → + (x, or conv d(x) 1x1 when with_downsample, or a constant of `residual_shape`) → relu."""
    c = 6
    inits = [numpy_helper.from_array((RNG.standard_normal((c, c, 3, 3)) / 6).astype(np.float32), "wa"),
             numpy_helper.from_array(RNG.standard_normal(c).astype(np.float32), "ba"),
             numpy_helper.from_array((RNG.standard_normal((c, c, 1, 1)) / 3).astype(np.float32), "wd")]
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a"], name="conv_a", pads=[1, 1, 1, 1])]
    skip = "x"
    if with_downsample:
        nodes.append(helper.make_node("Conv", ["x", "wd"], ["d"], name="conv_d"))
        skip = "d"
    if residual_shape is not None:
        inits.append(numpy_helper.from_array(RNG.standard_normal(residual_shape).astype(np.float32), "r"))
        skip = "r"
    nodes.append(helper.make_node("Add", ["a", skip], ["s" if relu else "y"], name="add"))
    if relu:
        nodes.append(helper.make_node("Relu", ["s"], ["y"], name="relu"))
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y", *extra_outputs)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", c, 7, 7])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def build_block_and_compare(model: onnx.ModelProto, tmp_path, fp16: bool = False) -> list[dict]:
    path = tmp_path / "block.onnx"
    onnx.save(model, path)
    engine, _, _ = build_engine(path, BuildOptions(input_shapes={"x": (2, 6, 7, 7)}, device="cpu", fp16=fp16))
    x = RNG.standard_normal((2, 6, 7, 7)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    got = engine.create_execution_context().execute({"x": x})
    tolerance = 2e-2 if fp16 else 1e-5
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=tolerance, atol=tolerance, err_msg=name)
    return [row for row in engine.layer_info() if not row["host"]]


@pytest.mark.parametrize("fp16", [False, True])
def test_conv_add_relu_becomes_one_convolution(fp16, tmp_path):
    layers = build_block_and_compare(residual_block(with_downsample=False), tmp_path, fp16)
    convs = [r for r in layers if r["type"] == "CONVOLUTION"]
    assert [r["fused_from"] for r in convs] == [["conv_a", "add", "relu"]]
    assert not [r for r in layers if r["type"] in ("ELEMENTWISE", "ACTIVATION")]


def test_with_two_convolutions_the_later_one_takes_the_residual(tmp_path):
    layers = build_block_and_compare(residual_block(with_downsample=True), tmp_path)
    assert [(r["name"], r["fused_from"]) for r in layers if r["type"] == "CONVOLUTION"] == [
        ("conv_a", []), ("conv_d", ["conv_d", "add", "relu"])]


def test_a_broadcast_add_is_not_a_residual(tmp_path):
    layers = build_block_and_compare(residual_block(False, residual_shape=(6, 1, 1)), tmp_path)
    assert "ELEMENTWISE" in [r["type"] for r in layers]


def test_a_marked_convolution_output_keeps_its_add(tmp_path):
    layers = build_block_and_compare(residual_block(False, extra_outputs=("a",)), tmp_path)
    assert "ELEMENTWISE" in [r["type"] for r in layers]


def test_a_residual_without_activation_is_fused_too(tmp_path):
    layers = build_block_and_compare(residual_block(False, relu=False), tmp_path)
    assert [r["type"] for r in layers] == ["CONVOLUTION"]
