"""Each fusion rule alone: what it matches, what it refuses, and that the rewritten graph computes what the
original computes (checked against float64 NumPy written here). A rule added to FUSION_RULES without a case
here fails `test_every_rule_has_cases`."""
from __future__ import annotations

import math

import numpy as np
import pytest
from graph_runner import run_graph

import engine as trt
from engine.enums import ActivationType, ElementWiseOperation, LayerType, ScaleMode, UnaryOperation
from engine.ir import Activation, Epilogue, Graph, graph_from_network
from engine.ops.scale import add_scale
from engine.passes.fusion_rules import FUSION_RULES, apply_rule
from engine.shape_inference import infer_graph

RNG = np.random.default_rng(3)
F = trt.DataType.FLOAT
RULES = {rule.name: rule for rule in FUSION_RULES}


def lowered(build) -> tuple[Graph, dict[str, np.ndarray]]:
    net = trt.NetworkDefinition()
    feeds = build(net)
    graph = graph_from_network(net)
    infer_graph(graph)
    return graph, feeds


def rewrite(rule: str, graph: Graph) -> list[str]:
    fused = apply_rule(graph, RULES[rule])
    graph.cleanup()
    graph.toposort()
    graph.lint()
    return fused


def const(net, array, name):
    return net.add_constant(array.shape, array, name=name).get_output(0)


def conv_reference(x, w, b):
    """3x3 convolution, stride 1, no padding, float64."""
    n, c, h, wd = x.shape
    k = w.shape[0]
    out = np.zeros((n, k, h - 2, wd - 2))
    for i in range(h - 2):
        for j in range(wd - 2):
            out[:, :, i, j] = np.einsum("ncij,kcij->nk", x[:, :, i:i + 3, j:j + 3].astype(np.float64), w)
    return out + b.reshape(1, k, 1, 1)


# ---------------------------------------------------------------------------------------------- conv + scale
W = RNG.standard_normal((4, 2, 3, 3)).astype(np.float32)
B = RNG.standard_normal(4).astype(np.float32)
SHIFT = RNG.standard_normal(4).astype(np.float32)
SCALE = RNG.uniform(0.5, 2, 4).astype(np.float32)


def conv_scale(net, power=1.0, marked=False):
    x = net.add_input("x", F, (2, 2, 6, 6))
    conv = net.add_convolution_nd(x, 4, (3, 3), W, B, name="conv")
    scaled = add_scale(net, conv.get_output(0), ScaleMode.CHANNEL, const(net, SHIFT, "shift"),
                       const(net, SCALE, "scale"), const(net, np.full(4, power, np.float32), "power"), name="bn")
    net.mark_output(scaled.get_output(0))
    if marked:
        net.mark_output(conv.get_output(0))
    return {"x": RNG.standard_normal((2, 2, 6, 6)).astype(np.float32)}


def test_conv_scale_folds_into_the_weights() -> None:
    graph, feeds = lowered(conv_scale)
    assert rewrite("conv_scale_fusion", graph) == ["bn"]
    conv = graph.nodes[-1]
    assert [n.type for n in graph.nodes].count(LayerType.SCALE) == 0 and conv.metadata["fused_from"] == ["conv", "bn"]
    want = conv_reference(feeds["x"], W, B) * SCALE.reshape(1, 4, 1, 1) + SHIFT.reshape(1, 4, 1, 1)
    (got,) = run_graph(graph, feeds).values()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["power_not_one", "conv_output_marked"])
def test_conv_scale_refusals(variant) -> None:
    graph, _ = lowered(lambda net: conv_scale(net, power=2.0) if variant == "power_not_one" else
                       conv_scale(net, marked=True))
    assert rewrite("conv_scale_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- matmul + bias
MW = RNG.standard_normal((8, 5)).astype(np.float32)


def matmul_add(net, bias_shape=(5,), bias_first=True):
    x = net.add_input("x", F, (3, 4, 8))
    mm = net.add_matrix_multiply(x, trt.MatrixOperation.NONE, const(net, MW, "w"), trt.MatrixOperation.NONE,
                                 name="fc")
    bias = const(net, RNG.standard_normal(bias_shape).astype(np.float32), "b")
    pair = (bias, mm.get_output(0)) if bias_first else (mm.get_output(0), bias)
    net.mark_output(net.add_elementwise(*pair, ElementWiseOperation.SUM, name="fc.bias").get_output(0))
    return {"x": RNG.standard_normal((3, 4, 8)).astype(np.float32)}


@pytest.mark.parametrize("bias_shape, bias_first", [((5,), True), ((1, 1, 5), False), ((1,), True)])
def test_matmul_bias_becomes_the_bias_operand(bias_shape, bias_first) -> None:
    graph, feeds = lowered(lambda net: matmul_add(net, bias_shape, bias_first))
    bias = graph.value("b_output_0").constant
    assert rewrite("matmul_bias_fusion", graph) == ["fc.bias"]
    fc = graph.nodes[-1]
    assert fc.name == "fc" and fc.inputs[2].name == "b_output_0" and fc.params["beta"] == 1.0
    assert fc.outputs[0].name == graph.outputs[0].name
    want = feeds["x"].astype(np.float64) @ MW + bias
    np.testing.assert_allclose(run_graph(graph, feeds)[graph.outputs[0].name], want, rtol=1e-5, atol=1e-5)


def test_a_bias_per_row_is_not_a_matmul_bias() -> None:
    graph, _ = lowered(lambda net: matmul_add(net, (4, 1)))
    assert rewrite("matmul_bias_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- erf GELU
def gelu_chain(net, form: str):
    x = net.add_input("x", F, (2, 7))
    c = {name: const(net, np.array(v, np.float32), name) for name, v in
         (("sqrt2", math.sqrt(2)), ("inv_sqrt2", 1 / math.sqrt(2)), ("one", 1.0), ("half", 0.5), ("two", 2.0))}
    prod, add, div = ElementWiseOperation.PROD, ElementWiseOperation.SUM, ElementWiseOperation.DIV

    def ew(a, b, op, name):
        return net.add_elementwise(a, b, op, name=name).get_output(0)

    if form == "half_first":
        scaled = ew(c["inv_sqrt2"], x, prod, "scale")
    else:
        scaled = ew(x, c["two" if form == "wrong_constant" else "sqrt2"], div, "scale")
    erf = net.add_unary(scaled, UnaryOperation.ERF, name="erf").get_output(0)
    one_plus = ew(erf, c["one"], add, "one_plus")
    if form == "half_first":
        y = ew(ew(x, c["half"], prod, "half"), one_plus, prod, "y")
    elif form == "scaled_gate":
        y = ew(x, ew(one_plus, c["half"], prod, "gate"), prod, "y")
    else:
        y = ew(ew(x, one_plus, prod, "times_x"), c["half"], prod, "y")
    net.mark_output(y)
    return {"x": RNG.standard_normal((2, 7)).astype(np.float32)}


@pytest.mark.parametrize("form", ["mul_then_half", "half_first", "scaled_gate"])
def test_erf_gelu_forms_become_one_activation(form) -> None:
    graph, feeds = lowered(lambda net: gelu_chain(net, form))
    assert len(rewrite("gelu_fusion", graph)) == 5
    (gelu,) = [n for n in graph.nodes if n.type != LayerType.CONSTANT]
    assert gelu.params["activation_type"] == ActivationType.GELU_ERF and gelu.outputs[0].name == "y_output_0"
    x = feeds["x"].astype(np.float64)
    want = x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(run_graph(graph, feeds)["y_output_0"], want, rtol=1e-5, atol=1e-6)


def test_a_chain_dividing_by_two_is_not_gelu() -> None:
    graph, _ = lowered(lambda net: gelu_chain(net, "wrong_constant"))
    assert rewrite("gelu_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- conv + residual
def conv_residual(net, residual_shape=(2, 4, 4, 4), two_convs=False):
    x = net.add_input("x", F, (2, 2, 6, 6))
    conv = net.add_convolution_nd(x, 4, (3, 3), W, B, name="conv")
    if two_convs:
        other = net.add_convolution_nd(x, 4, (3, 3), W[::-1].copy(), B, name="shortcut").get_output(0)
    else:
        other = net.add_input("r", F, residual_shape)
    net.mark_output(net.add_elementwise(other, conv.get_output(0), ElementWiseOperation.SUM,
                                        name="add").get_output(0))
    feeds = {"x": RNG.standard_normal((2, 2, 6, 6)).astype(np.float32)}
    if not two_convs:
        feeds["r"] = RNG.standard_normal(residual_shape).astype(np.float32)
    return feeds


def test_conv_residual_add_becomes_the_epilogue_residual() -> None:
    graph, feeds = lowered(conv_residual)
    assert rewrite("conv_residual_fusion", graph) == ["add"]
    conv = graph.nodes[-1]
    assert conv.epilogue == Epilogue(residual=3) and conv.inputs[3].name == "r"
    want = conv_reference(feeds["x"], W, B) + feeds["r"]
    np.testing.assert_allclose(run_graph(graph, feeds)["add_output_0"], want, rtol=1e-5, atol=1e-5)


def test_the_later_of_two_convolutions_takes_the_residual() -> None:
    graph, _ = lowered(lambda net: conv_residual(net, two_convs=True))
    rewrite("conv_residual_fusion", graph)
    assert [n.name for n in graph.nodes if n.epilogue.residual is not None] == ["shortcut"]


def test_a_broadcast_residual_is_refused() -> None:
    graph, _ = lowered(lambda net: conv_residual(net, residual_shape=(1, 4, 1, 1)))
    assert rewrite("conv_residual_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- activation
def host_then_activation(net, host: str, marked=False):
    x = net.add_input("x", F, (2, 2, 6, 6))
    if host == "conv":
        out = net.add_convolution_nd(x, 4, (3, 3), W, B, name="host").get_output(0)
    else:
        out = net.add_unary(x, UnaryOperation.ABS, name="host").get_output(0)
    act = net.add_activation(out, ActivationType.CLIP, alpha=-0.5, beta=0.75, name="clip")
    net.mark_output(act.get_output(0))
    if marked:
        net.mark_output(out)
    return {"x": RNG.standard_normal((2, 2, 6, 6)).astype(np.float32)}


def test_activation_becomes_the_producers_epilogue() -> None:
    graph, feeds = lowered(lambda net: host_then_activation(net, "conv"))
    assert rewrite("activation_fusion", graph) == ["clip"]
    conv = graph.nodes[-1]
    assert conv.epilogue == Epilogue(activation=Activation(ActivationType.CLIP, -0.5, 0.75))
    want = np.clip(conv_reference(feeds["x"], W, B), -0.5, 0.75)
    np.testing.assert_allclose(run_graph(graph, feeds)["clip_output_0"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("host, marked", [("unary", False), ("conv", True)])
def test_activation_refusals(host, marked) -> None:
    """A unary layer has no epilogue; a marked producer output must stay observable."""
    graph, _ = lowered(lambda net: host_then_activation(net, host, marked))
    assert rewrite("activation_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- int8
def qdq_conv(net, activation_zero=0, output_q=True):
    """x_q (INT8 input) → DQ → Conv(DQ(int8 weights, per channel)) → Q → y_q."""
    x_q = net.add_input("x_q", trt.DataType.INT8, (2, 2, 6, 6))
    sx, zx = const(net, np.array(0.05, np.float32), "sx"), const(net, np.array(activation_zero, np.int8), "zx")
    x = net.add_layer(LayerType.DEQUANTIZE, [x_q, sx, zx], {}, name="dq_x").get_output(0)
    w_q = const(net, RNG.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8), "w_q")
    w = net.add_layer(LayerType.DEQUANTIZE, [w_q, const(net, SCALE / 100, "sw"), const(net, np.zeros(4, np.int8),
                                                                                        "zw")],
                      {"axis": 0}, name="dq_w").get_output(0)
    conv = net.add_convolution_nd(x, 4, (3, 3), w, B, name="conv")
    out = conv.get_output(0)
    if output_q:
        out = net.add_layer(LayerType.QUANTIZE, [out, const(net, np.array(0.1, np.float32), "sy"),
                                                 const(net, np.array(0, np.int8), "zy")],
                            {"output_type": trt.DataType.INT8}, name="q_y").get_output(0)
    net.mark_output(out)
    return {"x_q": RNG.integers(-128, 128, (2, 2, 6, 6)).astype(np.int8)}


@pytest.mark.parametrize("output_q", [True, False], ids=["int8_output", "float_output"])
def test_dq_conv_q_becomes_one_int8_layer(output_q) -> None:
    graph, _ = lowered(lambda net: qdq_conv(net, output_q=output_q))
    fused = rewrite("int8_fusion", graph)
    assert fused == ["dq_x", "dq_w"] + (["q_y"] if output_q else [])
    conv = graph.nodes[-1]
    assert conv.name == "conv" and conv.precision == trt.DataType.INT8
    assert conv.inputs[0].name == "x_q" and conv.inputs[1].dtype == trt.DataType.INT8
    assert conv.params["int8"]["input_scale"] == pytest.approx(0.05)
    np.testing.assert_allclose(conv.params["int8"]["weight_scales"], SCALE / 100)
    assert conv.epilogue.output_scale == (pytest.approx(0.1) if output_q else None)
    assert conv.outputs[0].dtype == (trt.DataType.INT8 if output_q else trt.DataType.FLOAT)
    assert graph.outputs == [conv.outputs[0]]


def test_an_asymmetric_activation_is_not_made_int8() -> None:
    graph, _ = lowered(lambda net: qdq_conv(net, activation_zero=3))
    assert rewrite("int8_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- Q/DQ propagation
def dequantize(net, x, scale, name, zero=0):
    return net.add_layer(LayerType.DEQUANTIZE, [x, const(net, np.array(scale, np.float32), f"{name}.s"),
                                                const(net, np.array(zero, np.int8), f"{name}.z")], {},
                         name=name).get_output(0)


def quantize(net, x, scale, name):
    return net.add_layer(LayerType.QUANTIZE, [x, const(net, np.array(scale, np.float32), f"{name}.s"),
                                              const(net, np.array(0, np.int8), f"{name}.z")],
                         {"output_type": trt.DataType.INT8}, name=name).get_output(0)


def node_types(graph):
    return [n.type for n in graph.nodes if n.type != LayerType.CONSTANT]


X_Q = RNG.integers(-128, 128, (2, 3, 4, 4)).astype(np.int8)


def dq_pool_flatten(net, pooling=trt.PoolingType.MAX, zero=0, marked=False, second_reader=False):
    """x_q → DQ(0.05) → Pool 2x2 → Shuffle(flatten) → y."""
    x = dequantize(net, net.add_input("x_q", trt.DataType.INT8, X_Q.shape), 0.05, "dq", zero)
    pooled = net.add_pooling_nd(x, pooling, (2, 2), name="pool").get_output(0)
    flat = net.add_shuffle(pooled, name="flatten")
    flat.reshape_dims = (0, -1)
    net.mark_output(flat.get_output(0))
    if marked:
        net.mark_output(pooled)
    if second_reader:
        net.mark_output(net.add_activation(x, trt.ActivationType.RELU, name="other").get_output(0))
    return {"x_q": X_Q}


def test_dq_moves_after_maxpool_and_reshape_exactly() -> None:
    graph, feeds = lowered(dq_pool_flatten)
    output_name = graph.outputs[0].name
    assert rewrite("dq_commute", graph) == ["dq", "dq:after:pool"]
    assert node_types(graph) == [LayerType.POOLING, LayerType.SHUFFLE, LayerType.DEQUANTIZE]
    pool, flat, dq = [n for n in graph.nodes if n.type != LayerType.CONSTANT]
    assert pool.inputs[0].name == "x_q" and flat.outputs[0].dtype == trt.DataType.INT8
    assert graph.outputs[0].producer is dq and graph.outputs[0].name == output_name  # users' names stay
    want = (X_Q.astype(np.float64) * np.float32(0.05)).reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5)).reshape(2, 12)
    (got,) = run_graph(graph, feeds).values()
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("variant", [{"pooling": trt.PoolingType.AVERAGE}, {"zero": 2}, {"second_reader": True}],
                         ids=["average_pool", "zero_point", "dq_read_elsewhere"])
def test_dq_commute_refusals(variant) -> None:
    graph, _ = lowered(lambda net: dq_pool_flatten(net, **variant))
    assert rewrite("dq_commute", graph) == []


def test_marked_outputs_keep_their_names_and_float_type_when_a_dq_moves_past_them() -> None:
    graph, _ = lowered(lambda net: dq_pool_flatten(net, marked=True))
    names = [v.name for v in graph.outputs]
    assert rewrite("dq_commute", graph) == ["dq"]  # the reshape's input is now read twice: the DQ stays before it
    assert [v.name for v in graph.outputs] == names
    assert [(v.dtype, v.producer.type) for v in graph.outputs] == [(F, LayerType.SHUFFLE), (F, LayerType.DEQUANTIZE)]


def concat_of(net, scales):
    inputs = [dequantize(net, net.add_input(f"x{i}", trt.DataType.INT8, (1, 2, 3)), s, f"dq{i}")
              for i, s in enumerate(scales)]
    concat = net.add_concatenation(inputs, name="concat")
    concat.axis = 1
    net.mark_output(concat.get_output(0))
    return {f"x{i}": RNG.integers(-128, 128, (1, 2, 3)).astype(np.int8) for i in range(len(scales))}


def test_dq_moves_after_a_concat_of_one_scale() -> None:
    graph, feeds = lowered(lambda net: concat_of(net, [0.1, 0.1]))
    assert rewrite("dq_commute", graph) == ["dq0", "dq1"]
    assert node_types(graph) == [LayerType.CONCATENATION, LayerType.DEQUANTIZE]
    (got,) = run_graph(graph, feeds).values()
    want = np.concatenate([feeds["x0"], feeds["x1"]], axis=1).astype(np.float64) * np.float32(0.1)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_a_concat_of_two_scales_keeps_its_dqs() -> None:
    graph, _ = lowered(lambda net: concat_of(net, [0.1, 0.2]))
    assert rewrite("dq_commute", graph) == []


X_F = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def transpose_then_quantize(net):
    shuffle = net.add_shuffle(net.add_input("x", F, X_F.shape), name="transpose")
    shuffle.first_transpose = [2, 0, 1]
    net.mark_output(quantize(net, shuffle.get_output(0), 0.02, "q"))
    return {"x": X_F}


def test_q_moves_before_a_transpose_exactly() -> None:
    graph, feeds = lowered(transpose_then_quantize)
    assert rewrite("q_commute", graph) == ["q"]
    assert node_types(graph) == [LayerType.QUANTIZE, LayerType.SHUFFLE]
    assert graph.outputs[0].dtype == trt.DataType.INT8 and graph.outputs[0].producer.type == LayerType.SHUFFLE
    (got,) = run_graph(graph, feeds).values()
    want = np.clip(np.rint(X_F.astype(np.float64).transpose(2, 0, 1) / np.float32(0.02)), -128, 127)
    np.testing.assert_array_equal(got, want)


def requantize(net, second_scale):
    x = dequantize(net, net.add_input("x_q", trt.DataType.INT8, X_Q.shape), 0.05, "dq1")
    net.mark_output(dequantize(net, quantize(net, x, second_scale, "q"), second_scale, "dq2"))
    return {"x_q": X_Q}


def test_dq_then_q_of_the_same_scale_cancels() -> None:
    graph, feeds = lowered(lambda net: requantize(net, 0.05))
    assert rewrite("qdq_cancel", graph) == ["q", "dq1"]
    assert node_types(graph) == [LayerType.DEQUANTIZE]
    (got,) = run_graph(graph, feeds).values()
    np.testing.assert_allclose(got, X_Q * np.float32(0.05), rtol=1e-6)


def test_dq_then_q_of_another_scale_stays() -> None:
    graph, _ = lowered(lambda net: requantize(net, 0.07))
    assert rewrite("qdq_cancel", graph) == []


def quantized_add(net, output_q=True):
    a = dequantize(net, net.add_input("a_q", trt.DataType.INT8, (2, 5)), 0.1, "dq_a")
    b = dequantize(net, net.add_input("b_q", trt.DataType.INT8, (2, 5)), 0.3, "dq_b")
    out = net.add_elementwise(a, b, trt.ElementWiseOperation.SUM, name="add").get_output(0)
    net.mark_output(quantize(net, out, 0.2, "q") if output_q else out)
    return {}


def test_dq_add_q_becomes_one_int8_layer() -> None:
    graph, _ = lowered(quantized_add)
    assert rewrite("int8_io", graph) == ["q", "dq_a", "dq_b"]
    (add,) = [n for n in graph.nodes if n.type != LayerType.CONSTANT]
    assert add.precision == trt.DataType.INT8 and [v.name for v in add.inputs] == ["a_q", "b_q"]
    assert add.params["int8"]["input_scales"] == [pytest.approx(0.1), pytest.approx(0.3)]
    assert add.epilogue.output_scale == pytest.approx(0.2) and add.outputs[0].dtype == trt.DataType.INT8


def test_an_add_without_a_quantized_output_stays_float() -> None:
    graph, _ = lowered(lambda net: quantized_add(net, output_q=False))
    assert rewrite("int8_io", graph) == []


def conv_with_quantized_residual(net):
    r = dequantize(net, net.add_input("r_q", trt.DataType.INT8, (2, 4, 4, 4)), 0.02, "dq_r")
    qdq_conv(net, output_q=False)
    conv = next(net.get_layer(i) for i in range(net.num_layers) if net.get_layer(i).name == "conv")
    out = net.add_elementwise(conv.get_output(0), r, trt.ElementWiseOperation.SUM, name="add").get_output(0)
    net.unmark_output(conv.get_output(0))
    net.mark_output(out)
    return {}


def test_an_int8_convolution_reads_its_residual_as_int8() -> None:
    graph, _ = lowered(conv_with_quantized_residual)
    assert rewrite("conv_residual_fusion", graph) == ["add"]
    assert rewrite("int8_fusion", graph) == ["dq_x", "dq_w"]
    assert rewrite("int8_residual", graph) == ["dq_r"]
    conv = next(n for n in graph.nodes if n.name == "conv")
    assert conv.inputs[conv.epilogue.residual].name == "r_q"
    assert conv.params["int8"]["residual_scale"] == pytest.approx(0.02)
    assert LayerType.DEQUANTIZE not in node_types(graph)


def conv_pool_quantize(net):
    """An INT8 convolution whose float output a MaxPool reads before the Q: ResNet's stem after implicit
    quantization (the Q is its next convolution's input quantization)."""
    feeds = qdq_conv(net, output_q=False)
    conv = next(net.get_layer(i) for i in range(net.num_layers) if net.get_layer(i).name == "conv")
    net.unmark_output(conv.get_output(0))
    pool = net.add_pooling_nd(conv.get_output(0), trt.PoolingType.MAX, (2, 2), name="pool")
    pool.stride_nd = [2, 2]
    net.mark_output(quantize(net, pool.get_output(0), 0.1, "q"))
    return feeds


def test_a_q_moved_after_an_int8_convolution_becomes_its_output_scale() -> None:
    graph, _ = lowered(conv_pool_quantize)
    assert rewrite("int8_fusion", graph) == ["dq_x", "dq_w"]  # the pool reads the output: it stays float
    assert rewrite("int8_output", graph) == []
    assert rewrite("q_commute", graph) == ["q"]
    assert rewrite("int8_output", graph) == ["q:before:pool"]
    conv = next(n for n in graph.nodes if n.name == "conv")
    assert conv.epilogue.output_scale == pytest.approx(0.1) and conv.outputs[0].dtype == trt.DataType.INT8
    pool = next(n for n in graph.nodes if n.name == "pool")
    assert pool.inputs[0] is conv.outputs[0] and pool.outputs[0].dtype == trt.DataType.INT8
    assert [n.type for n in graph.nodes if n.type != LayerType.CONSTANT] == [LayerType.CONVOLUTION,
                                                                            LayerType.POOLING]
    # values: tests/engine/test_int8_calibration.py builds this shape end to end against onnxruntime


def test_every_rule_has_cases() -> None:
    tested = {"conv_scale_fusion", "matmul_bias_fusion", "gelu_fusion", "conv_residual_fusion", "activation_fusion",
              "int8_fusion", "int8_output", "int8_residual", "dq_commute", "q_commute", "qdq_cancel", "int8_io",
              # cases in test_transformer_fusion_rules.py
              "shape_of_transpose", "attention_fusion", "masked_softmax_fusion", "residual_norm_fusion"}
    assert set(RULES) == tested
