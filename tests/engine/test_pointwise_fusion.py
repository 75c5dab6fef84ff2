"""Pointwise fusion (passes/pointwise_fusion.py): elementwise/activation/unary chains become one POINTWISE layer
where no intermediate is needed elsewhere, in one precision; values checked against NumPy in float64 and
onnxruntime, on the CPU and on the GPU (BuilderConfig.pointwise_fusion; off by default)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from test_tampered_plans import load, reseal

import engine as trt
from engine.conformance.harness import parse_onnx

BIAS = np.array([0.5, -1.0, 2.0], np.float32).reshape(1, 3, 1)
X = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)


def chain(network: trt.NetworkDefinition, also_mark_relu: bool = False) -> None:
    """y = exp(relu(x + bias)) * x; x is read twice, bias broadcasts."""
    x = network.add_input("x", trt.DataType.FLOAT, (2, 3, 4))
    bias = network.add_constant(BIAS.shape, BIAS, name="bias").get_output(0)
    t = network.add_elementwise(x, bias, trt.ElementWiseOperation.SUM, name="add").get_output(0)
    relu = network.add_activation(t, trt.ActivationType.RELU, name="relu").get_output(0)
    t = network.add_unary(relu, trt.UnaryOperation.EXP, name="exp").get_output(0)
    y = network.add_elementwise(t, x, trt.ElementWiseOperation.PROD, name="mul").get_output(0)
    y.name = "y"
    network.mark_output(y)
    if also_mark_relu:
        relu.name = "relu_out"
        network.mark_output(relu)


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    relu = np.maximum(x.astype(np.float64) + BIAS, 0)
    return {"y": np.exp(relu) * x, "relu_out": relu}


def build(make, fusion: bool = True, fp16: bool = False, device: str = "cpu", tweak=None) -> bytes:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    make(network)
    config = builder.create_builder_config()
    config.device = device
    config.pointwise_fusion = fusion
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if tweak is not None:
        tweak(network, config)
    return builder.build_serialized_network(network, config)


def layers(plan: bytes) -> list[dict]:
    return [row for row in load(plan).layer_info() if not row["host"]]


def run(plan: bytes, x: np.ndarray = X) -> dict[str, np.ndarray]:
    return load(plan).create_execution_context().execute({"x": x})


def test_a_chain_becomes_one_pointwise_layer() -> None:
    plan = build(chain)
    rows = layers(plan)
    assert [(r["name"], r["type"]) for r in rows] == [("mul", "POINTWISE")]
    assert rows[0]["fused_from"] == ["add", "relu", "exp", "mul"]
    np.testing.assert_allclose(run(plan)["y"], reference(X)["y"], rtol=1e-6, atol=1e-6)


def test_builds_do_not_fuse_unless_asked() -> None:
    assert [r["type"] for r in layers(build(chain, fusion=False))] == ["ELEMENTWISE", "UNARY", "ELEMENTWISE"]


def test_an_intermediate_graph_output_is_kept() -> None:
    plan = build(lambda n: chain(n, also_mark_relu=True))
    rows = layers(plan)
    assert [(r["type"], r["fused_from"]) for r in rows] == [("ELEMENTWISE", ["add", "relu"]),
                                                                ("POINTWISE", ["exp", "mul"])]
    outputs, expected = run(plan), reference(X)
    for name in ("y", "relu_out"):
        np.testing.assert_allclose(outputs[name], expected[name], rtol=1e-6, atol=1e-6)


def test_a_value_read_twice_is_not_fused_away() -> None:
    def branch(network):
        x = network.add_input("x", trt.DataType.FLOAT, (2, 3, 4))
        t = network.add_unary(x, trt.UnaryOperation.ABS, name="abs").get_output(0)
        a = network.add_unary(t, trt.UnaryOperation.SQRT, name="sqrt").get_output(0)
        b = network.add_activation(t, trt.ActivationType.SIGMOID, name="sigmoid").get_output(0)
        y = network.add_elementwise(a, b, trt.ElementWiseOperation.SUB, name="sub").get_output(0)
        y.name = "y"
        network.mark_output(y)

    plan = build(branch)
    rows = layers(plan)
    assert [(r["name"], r["type"]) for r in rows] == [("abs", "UNARY"), ("sub", "POINTWISE")]
    assert rows[1]["fused_from"] == ["sqrt", "sigmoid", "sub"]
    t = np.abs(X.astype(np.float64))
    np.testing.assert_allclose(run(plan)["y"], np.sqrt(t) - 1 / (1 + np.exp(-t)), rtol=1e-6, atol=1e-6)


def test_fp16_fuses_in_half_and_stays_within_half_precision() -> None:
    plan = build(chain, fp16=True)
    pointwise = [r for r in layers(plan) if r["type"] == "POINTWISE"]
    assert [(r["precision"], r["fused_from"]) for r in pointwise] == [("HALF", ["add", "relu", "exp", "mul"])]
    np.testing.assert_allclose(run(plan)["y"], reference(X)["y"], rtol=2e-3, atol=2e-3)


def test_a_layer_pinned_to_fp32_splits_the_group() -> None:
    def pin(network, config):
        network.find_layer("exp").precision = trt.DataType.FLOAT
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)

    rows = layers(build(chain, fp16=True, tweak=pin))
    fused = {r["name"]: (r["type"], r["precision"]) for r in rows if r["type"] in ("POINTWISE", "UNARY")}
    assert fused["exp"] == ("UNARY", "FLOAT")
    assert all(precision == "HALF" for kind, precision in fused.values() if kind == "POINTWISE")


def layer_norm_by_hand() -> onnx.ModelProto:
    """LayerNorm as some exporters write it: the pointwise tail (+eps, sqrt, div, *gamma, +beta) is one group."""
    rng = np.random.default_rng(4)
    inits = [helper.make_tensor("eps", TensorProto.FLOAT, [], [1e-5]),
             helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
             helper.make_tensor("gamma", TensorProto.FLOAT, [16], rng.normal(size=16).tolist()),
             helper.make_tensor("beta", TensorProto.FLOAT, [16], rng.normal(size=16).tolist())]
    nodes = [helper.make_node("ReduceMean", ["x"], ["mean"], name="mean", axes=[-1]),
             helper.make_node("Sub", ["x", "mean"], ["centered"], name="center"),
             helper.make_node("Pow", ["centered", "two"], ["squared"], name="square"),
             helper.make_node("ReduceMean", ["squared"], ["var"], name="var", axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["var_eps"], name="add_eps"),
             helper.make_node("Sqrt", ["var_eps"], ["std"], name="std"),
             helper.make_node("Div", ["centered", "std"], ["normed"], name="normalize"),
             helper.make_node("Mul", ["normed", "gamma"], ["scaled"], name="scale"),
             helper.make_node("Add", ["scaled", "beta"], ["y"], name="shift")]
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 16])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_hand_written_layer_norm_matches_onnxruntime_with_fusion() -> None:
    model = layer_norm_by_hand()
    x = np.random.default_rng(3).normal(size=(5, 16)).astype(np.float32) * 3 + 1
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    config.device, config.pointwise_fusion = "cpu", True
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 16), (5, 16), (8, 16))
    config.add_optimization_profile(profile)
    engine = load(builder.build_serialized_network(parse_onnx(model), config))
    fused = [r["fused_from"] for r in engine.layer_info() if r["type"] == "POINTWISE"]
    assert fused == [["add_eps", "std", "normalize", "scale", "shift"]]
    (expected,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None,
                                                                                                          {"x": x})
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y"], expected, rtol=1e-5,
                               atol=1e-5)


def _program_edit(change):
    def edit(header):
        layer = next(entry for entry in header["layers"] if entry["type"] == "POINTWISE")
        change(layer["params"]["program"])
    return edit


@pytest.mark.parametrize("change, message", [
    (lambda p: p[1]["args"].__setitem__(0, ["step", 5]), r"program step 1: argument \['step', 5\] is not an input"),
    (lambda p: p[0].__setitem__("layer", "CONVOLUTION"), r"program step 0: not a pointwise step"),
    (lambda p: p[2]["params"].__setitem__("op", "NOT_AN_OP"), r"program step 2: not a pointwise step"),
    (lambda p: p.clear(), r"POINTWISE needs a non-empty program"),
])
def test_a_tampered_program_is_refused_naming_the_step(change, message) -> None:
    with pytest.raises(trt.PlanFormatError, match=message):
        load(reseal(build(chain), _program_edit(change)))


@pytest.mark.gpu
def test_gpu_builds_fuse_into_one_generated_kernel() -> None:
    import cupy

    plan = build(chain, device="gpu")
    rows = layers(plan)
    assert [(r["type"], r["tactic"]) for r in rows] == [("POINTWISE", "gpu:pointwise:generated_kernel")]
    y = load(plan).create_execution_context().execute({"x": cupy.asarray(X)})["y"]
    np.testing.assert_allclose(cupy.asnumpy(y), reference(X)["y"], rtol=1e-5, atol=1e-5)
    half = build(chain, device="gpu", fp16=True)
    np.testing.assert_allclose(run(half)["y"], reference(X)["y"], rtol=2e-3, atol=2e-3)


def test_the_cli_flag_turns_it_on(tmp_path, capsys) -> None:
    from polyx.cli.app import main

    onnx.save(layer_norm_by_hand(), tmp_path / "ln.onnx")
    assert main(["run", str(tmp_path / "ln.onnx"), "--engine", "--onnxrt", "--input-shapes", "x:[4,16]",
                 "--pointwise-fusion", "-v", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "pointwise_fusion 4" in out and "POINTWISE: cpu_reference_pointwise x1" in out and "PASSED" in out
