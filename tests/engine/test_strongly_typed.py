"""Strongly typed networks (NetworkDefinitionCreationFlag.STRONGLY_TYPED): layers run in the types the ONNX model
gives their tensors, no reformat is inserted, and flags or layer precisions that would choose other types are
refused by name. The reference is NumPy: float16 layers read float16 values, sum in float64 and round to float16."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt

RNG = np.random.default_rng(3)
W1 = RNG.standard_normal((8, 12)).astype(np.float32)
W2 = (RNG.standard_normal((12, 4)) / 3).astype(np.float16)
STRONGLY_TYPED = 1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED


def mixed_model() -> bytes:
    """x float32 → MatMul W1 (float32) → Cast float16 → MatMul W2 (float16) → Relu → Cast float32 = y."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"),
             helper.make_node("Cast", ["a"], ["a16"], to=TensorProto.FLOAT16, name="to_half"),
             helper.make_node("MatMul", ["a16", "w2"], ["b16"], name="mm2"),
             helper.make_node("Relu", ["b16"], ["r16"], name="relu"),
             helper.make_node("Cast", ["r16"], ["y"], to=TensorProto.FLOAT, name="to_float")]
    graph = helper.make_graph(nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                              [numpy_helper.from_array(W1, "w1"), numpy_helper.from_array(W2, "w2")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def build(network_flags: int = STRONGLY_TYPED, flags=(), precision: dict | None = None) -> trt.Engine:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags)
    assert trt.OnnxParser(network, logger).parse(mixed_model())
    for layer in network.layers:
        if precision and layer.name in precision:
            layer.precision = precision[layer.name]
    config = builder.create_builder_config()
    config.device = "cpu"
    for flag in flags:
        config.set_flag(flag)
    return trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))


def test_layers_run_in_the_types_the_model_gives_them() -> None:
    engine = build()
    rows = {row["name"]: row for row in engine.layer_info()}
    assert rows["mm1"]["precision"] == "FLOAT"
    assert rows["mm2"]["precision"] == "HALF"
    assert not [name for name in rows if name.startswith("Reformat")]
    assert engine.meta["strongly_typed"] is True
    x = RNG.standard_normal((2, 8)).astype(np.float32)
    y = engine.create_execution_context().execute({"x": x})["y"]
    a16 = (x.astype(np.float64) @ W1).astype(np.float32).astype(np.float16)
    expected = np.maximum(a16.astype(np.float64) @ W2.astype(np.float64), 0).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(y, expected, rtol=2 ** -10, atol=1e-3)
    assert np.array_equal(y, y.astype(np.float16).astype(np.float32)), "mm2's output must be float16"


def test_fp16_flag_on_a_weakly_typed_network_changes_the_float32_layers() -> None:
    rows = {row["name"]: row["precision"] for row in build(0, flags=[trt.BuilderFlag.FP16]).layer_info()}
    assert rows["mm1"] == "HALF"  # what strong typing prevents


@pytest.mark.parametrize("flag", [trt.BuilderFlag.FP16, trt.BuilderFlag.BF16, trt.BuilderFlag.INT8])
def test_precision_flags_are_refused_naming_the_flag(flag) -> None:
    with pytest.raises(trt.BuildError, match=rf"is strongly typed .*BuilderFlag {flag.name} cannot be set"):
        build(flags=[flag])


def test_layer_precision_is_refused_naming_the_layer() -> None:
    with pytest.raises(trt.BuildError, match=r"layer 'mm1': precision HALF cannot be set on a strongly typed network"):
        build(precision={"mm1": trt.DataType.HALF})


def test_unknown_network_creation_flags_are_refused() -> None:
    with pytest.raises(trt.BuildError, match=r"network creation flags 0x4: only EXPLICIT_BATCH"):
        trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network(1 << 2)


def test_build_errors_reach_the_error_recorder() -> None:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    recorder = trt.ErrorRecorder()
    builder.error_recorder = recorder
    network = builder.create_network(STRONGLY_TYPED)
    assert trt.OnnxParser(network, builder.logger).parse(mixed_model())
    config = builder.create_builder_config()
    config.device = "cpu"
    config.set_flag(trt.BuilderFlag.FP16)
    with pytest.raises(trt.BuildError):
        builder.build_serialized_network(network, config)
    assert recorder.num_errors() == 1
    assert recorder.get_error_code(0) == trt.ErrorCode.INVALID_CONFIG
    assert "strongly typed" in recorder.get_error_desc(0) and recorder.get_error_desc(0).startswith("BuildError: ")
