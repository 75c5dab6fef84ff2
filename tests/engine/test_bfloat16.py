"""BF16: the DataType, BuilderFlag.BF16 and per-layer BF16 precision on the CPU (float32 compute, every layer output
rounded to bfloat16), bfloat16 network IO and plan buffers, and the ONNX conformance cases typed bfloat16.
References are float64 NumPy computations that round to bfloat16 where the engine stores bfloat16."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import engine as trt
from engine.conformance.runner import Status, run_conformance
from engine.container import pack, unpack
from engine.dtypes import BFLOAT16, from_onnx, nptype

RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((16, 24)).astype(np.float32)
B1 = RNG.standard_normal((1, 24)).astype(np.float32)
W2 = RNG.standard_normal((24, 8)).astype(np.float32)


def bf16(x: np.ndarray) -> np.ndarray:
    """Round to bfloat16 (nearest even), returned as float64 for the reference's arithmetic."""
    return np.asarray(x, dtype=np.float64).astype(np.float32).astype(ml_dtypes.bfloat16).astype(np.float64)


def mlp(network: trt.NetworkDefinition) -> None:
    """x (N,16) → MatMul W1 → + B1 → ReLU → MatMul W2 = y."""
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 16))
    w1 = network.add_constant(W1.shape, W1, name="w1").get_output(0)
    b1 = network.add_constant(B1.shape, B1, name="b1").get_output(0)
    w2 = network.add_constant(W2.shape, W2, name="w2").get_output(0)
    t = network.add_matrix_multiply(x, trt.MatrixOperation.NONE, w1, trt.MatrixOperation.NONE, name="mm1").get_output(0)
    t = network.add_elementwise(t, b1, trt.ElementWiseOperation.SUM, name="bias").get_output(0)
    t = network.add_activation(t, trt.ActivationType.RELU, name="relu").get_output(0)
    y = network.add_matrix_multiply(t, trt.MatrixOperation.NONE, w2, trt.MatrixOperation.NONE, name="mm2").get_output(0)
    y.name = "y"
    network.mark_output(y)


def build(populate, flags=(), precisions=None, network_flags: int = 0, batch: int = 4) -> trt.Engine:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags)
    populate(network)
    for name, dtype in (precisions or {}).items():
        next(layer for layer in network.layers if layer.name == name).precision = dtype
    config = builder.create_builder_config()
    config.device = "cpu"
    for flag in flags:
        config.set_flag(flag)
    profile = builder.create_optimization_profile()
    for tensor in network.inputs:
        shape = tuple(batch if d < 0 else d for d in tensor.shape)
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    return trt.Runtime(logger).deserialize_cuda_engine(plan)


def precisions(engine: trt.Engine) -> dict[str, str]:
    return {row["name"]: row["precision"] for row in engine.layer_info()}


def test_bf16_datatype_maps_to_ml_dtypes_and_onnx() -> None:
    assert np.dtype(nptype(trt.DataType.BF16)) == BFLOAT16
    assert from_onnx(TensorProto.BFLOAT16) == trt.DataType.BF16
    assert trt.DataType.BF16.is_floating and trt.DataType.BF16.itemsize == 2


def test_bf16_flag_runs_every_layer_in_bfloat16_rounding_each_output() -> None:
    engine = build(mlp, flags=[trt.BuilderFlag.BF16])
    compute = {name: p for name, p in precisions(engine).items() if not name.startswith("Reformat")}
    assert set(compute.values()) == {"BF16"}, compute
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    y = engine.create_execution_context().execute({"x": x})["y"]
    assert y.dtype == np.float32  # network IO keeps its declared type
    assert engine.layer_info()[1]["fused_from"] == ["mm1", "bias", "relu"]
    # Reference: bfloat16 inputs and weights, float64 sums, each layer's output rounded to bfloat16 (the fused
    # MatMul+bias+ReLU rounds once, after its epilogue, as a fused GPU kernel does).
    t = bf16(np.maximum(bf16(x) @ bf16(W1) + bf16(B1), 0))
    expected = bf16(t @ bf16(W2))
    # float32 accumulation vs float64 can move a result across a rounding boundary: at most one bfloat16 ULP
    np.testing.assert_allclose(y, expected, rtol=2 ** -7, atol=1e-6)
    assert np.mean(y == expected) > 0.9
    assert np.array_equal(y, bf16(y)), "the last layer's output must be rounded to bfloat16"
    fp32 = build(mlp).create_execution_context().execute({"x": x})["y"]
    assert not np.array_equal(fp32, y), "an FP32 build must not round to bfloat16"


def test_bf16_layer_precision_is_obeyed_per_layer_like_fp16() -> None:
    engine = build(mlp, flags=[trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS], precisions={"mm2": trt.DataType.BF16})
    layers = precisions(engine)
    assert layers["mm2"] == "BF16" and layers["mm1"] == "FLOAT"
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    y = engine.create_execution_context().execute({"x": x})["y"]
    t = np.maximum(x.astype(np.float64) @ W1 + B1, 0)
    np.testing.assert_allclose(y, bf16(bf16(t) @ bf16(W2)), rtol=2 ** -8, atol=1e-5)


def test_bf16_and_fp16_flags_together_default_to_half_with_bf16_per_layer() -> None:
    flags = [trt.BuilderFlag.FP16, trt.BuilderFlag.BF16, trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS]
    engine = build(mlp, flags=flags, precisions={"mm1": trt.DataType.BF16})
    layers = precisions(engine)
    assert layers["mm1"] == "BF16" and layers["mm2"] == "HALF"


def identity_plus_one(network: trt.NetworkDefinition) -> None:
    x = network.add_input("x", trt.DataType.BF16, (-1, 3))
    one = network.add_constant((1, 3), np.ones((1, 3), dtype=ml_dtypes.bfloat16), name="one").get_output(0)
    y = network.add_elementwise(x, one, trt.ElementWiseOperation.SUM, name="add").get_output(0)
    y.name = "y"
    network.mark_output(y)


def test_bf16_network_io_and_constants_survive_the_plan() -> None:
    engine = build(identity_plus_one, batch=2)
    assert engine.get_tensor_dtype("x") == trt.DataType.BF16 == engine.get_tensor_dtype("y")
    x = np.array([[1.0, 255.0, -3.5], [0.1, 1e30, 256.0]], dtype=ml_dtypes.bfloat16)
    y = engine.create_execution_context().execute({"x": x})["y"]
    assert y.dtype == BFLOAT16
    np.testing.assert_array_equal(y.astype(np.float64), bf16(x.astype(np.float64) + 1))
    assert y[0, 1] == 256 and y[1, 2] == 256  # 255 + 1 is exact; 256 + 1 rounds back to 256 (8-bit mantissa)


def test_bf16_input_of_the_wrong_dtype_is_refused_naming_it() -> None:
    context = build(identity_plus_one, batch=2).create_execution_context()
    with pytest.raises(trt.ExecutionError, match="input 'x': expected dtype bfloat16, got float32"):
        context.execute({"x": np.zeros((2, 3), np.float32)})


def test_container_keeps_bfloat16_buffers_by_name() -> None:
    array = np.array([1.5, -2.0, 3.0], dtype=ml_dtypes.bfloat16)
    data = pack(b"TESTTEST", 1, {}, {"a": array})
    header, arrays = unpack(data, b"TESTTEST", 1, "test file")
    assert header["buffers"]["a"]["dtype"] == "bfloat16"
    assert arrays["a"].dtype == BFLOAT16 and np.array_equal(arrays["a"], array)


BF16_CONFORMANCE_OPS = ["Cast", "CastLike", "Celu", "Einsum", "OneHot", "ReverseSequence"]


def test_conformance_cases_typed_bfloat16_pass() -> None:
    report = run_conformance(ops=BF16_CONFORMANCE_OPS)
    bf16_cases = [r for r in report.results if "bfloat16" in r.name.lower()]
    assert len(bf16_cases) >= 11
    assert all(r.status == Status.PASSED for r in bf16_cases), [(r.name, r.message[:200]) for r in bf16_cases
                                                                 if r.status != Status.PASSED]


def test_cast_to_bfloat16_matches_onnx_reference_rounding() -> None:
    """Round half to even at the bfloat16 boundary, checked against onnx.reference."""
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    x = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 - 2 ** -10, 3.0e38], dtype=np.float32)
    from engine.conformance.harness import run_onnx

    got = run_onnx(model, {"x": x})["y"]
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_array_equal(got.astype(np.float32), np.asarray(want).astype(np.float32))
    assert got.astype(np.float32)[0] == 1.0 and got.astype(np.float32)[1] == 1 + 2 ** -6


def test_onnx_model_typed_bfloat16_parses() -> None:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    from engine.conformance.harness import run_onnx

    y = run_onnx(model, {"x": np.array([-1.0, 2.0], dtype=ml_dtypes.bfloat16)})["y"]
    assert y.dtype == BFLOAT16 and y.astype(np.float32).tolist() == [0.0, 2.0]


def test_bf16_layer_precision_without_constraints_is_ignored_with_a_warning() -> None:
    logger = trt.CapturingLogger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network()
    mlp(network)
    next(layer for layer in network.layers if layer.name == "mm2").precision = trt.DataType.BF16
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (2, 16), (2, 16), (2, 16))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    assert precisions(engine)["mm2"] == "FLOAT"
    assert any("layer 'mm2': precision BF16 is ignored without OBEY_PRECISION_CONSTRAINTS" in m
               for _, m in logger.messages)


class NativeBf16Matmul(trt.Tactic):
    """A CPU tactic that reads bfloat16 itself (as the GPU's cublas_gemm_bf16 does): it must see BF16 in its
    context and get the stored bfloat16 arrays, not widened float32 copies."""

    name = "test:matmul:native_bf16"
    layer_type = trt.LayerType.MATRIX_MULTIPLY
    backend = "cpu"
    heuristic_rank = -1
    reads_bfloat16 = True

    def __init__(self):
        self.seen: list[tuple] = []

    def supports(self, ctx):
        self.seen.append(tuple(i.dtype for i in ctx.inputs))
        return ctx.inputs[0].dtype == trt.DataType.BF16 and ctx.epilogue.empty or "BF16 without epilogue only"

    def run(self, state, inputs, outputs, workspace, xp):
        self.seen.append(tuple(a.dtype for a in inputs) + (outputs[0].dtype,))
        np.copyto(outputs[0], inputs[0].astype(np.float32) @ inputs[1].astype(np.float32), casting="unsafe")


def test_a_tactic_that_reads_bfloat16_gets_the_stored_arrays() -> None:
    from engine.tactics import register_tactic, unregister_tactic

    tactic = register_tactic(NativeBf16Matmul())
    try:
        logger = trt.Logger(trt.Logger.ERROR)
        builder = trt.Builder(logger)
        network = builder.create_network()
        mlp(network)
        config = builder.create_builder_config()
        config.device = "cpu"
        config.builder_optimization_level = 0
        config.set_flag(trt.BuilderFlag.BF16)
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (4, 16), (4, 16), (4, 16))
        config.add_optimization_profile(profile)
        engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
        tactics = {row["name"]: row["tactic"] for row in engine.layer_info()}
        assert tactics["mm2"] == tactic.name and tactics["mm1"] != tactic.name  # mm1 has a fused epilogue
        tactic.seen.clear()
        x = RNG.standard_normal((4, 16)).astype(np.float32)
        y = engine.create_execution_context().execute({"x": x})["y"]
        assert tactic.seen == [(BFLOAT16, BFLOAT16, BFLOAT16)]
        t = bf16(np.maximum(bf16(x) @ bf16(W1) + bf16(B1), 0))
        np.testing.assert_allclose(y, bf16(t @ bf16(W2)), rtol=2 ** -7, atol=1e-6)
    finally:
        unregister_tactic(tactic)
