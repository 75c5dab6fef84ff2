"""The transformer fusions end to end on the CPU: small ONNX models made with onnx.helper (BERT-style attention with
a padding mask and a residual LayerNorm, GPT-2-style causal attention with K^T from a Transpose, a lone masked
softmax, a pre-LN block whose residual sum is read twice) and the shared bert_tiny, built, run and compared with
onnxruntime; the fused layers in the plan (types, fused-from names), plan round trip, tampered params and bad
run-time shapes. GPU kernels: tests/gpu/test_attention_kernels.py."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from shared_model_cases import CASES, MODELS, make_feeds
from test_tampered_plans import load, reseal, setter
from transformer_models import RNG, B, E, S, attention_model, bert_feeds, onnxruntime_outputs, pre_ln_model

import engine as trt
from engine.errors import EngineError, PlanFormatError, ShapeError

TOL = {"rtol": 1e-5, "atol": 1e-5}


def build(model: onnx.ModelProto, profile: dict | None = None) -> bytes:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), parser.errors_text()
    config = builder.create_builder_config()
    config.device = "cpu"
    if profile:
        shapes = builder.create_optimization_profile()
        for name, triple in profile.items():
            shapes.set_shape(name, *triple)
        config.add_optimization_profile(shapes)
    return builder.build_serialized_network(network, config)


def device_layers(plan: bytes) -> list[dict]:
    return [row for row in load(plan).layer_info() if not row["host"]]


def test_bert_style_block_fuses_attention_and_residual_layer_norm() -> None:
    model, feeds = attention_model("bert"), bert_feeds()
    plan = build(model)
    rows = device_layers(plan)
    types = [row["type"] for row in rows]
    assert types.count("ATTENTION") == 1 and types.count("RESIDUAL_NORMALIZATION") == 1
    assert "SOFTMAX" not in types and "NORMALIZATION" not in types
    (attention,) = [row for row in rows if row["type"] == "ATTENTION"]
    assert [name.split("_")[0] for name in attention["fused_from"]] == ["Mul", "Mul", "MatMul", "Add", "Softmax",
                                                                        "MatMul"]
    got = load(plan).create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, onnxruntime_outputs(model, feeds)["y"], **TOL)


def test_gpt2_style_causal_attention_absorbs_the_key_transpose() -> None:
    model = attention_model("gpt2")
    plan = build(model)
    types = [row["type"] for row in device_layers(plan)]
    assert types.count("ATTENTION") == 1 and "SOFTMAX" not in types
    # K^T = Transpose(k, [0, 1, 3, 2]) became the k_transposed flag: only the q, k, v and output transposes remain
    assert types.count("SHUFFLE") <= 8
    feeds = {"x": RNG.standard_normal((B, S, E)).astype(np.float32)}
    got = load(plan).create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, onnxruntime_outputs(model, feeds)["y"], **TOL)


def test_pre_ln_sum_is_a_second_output_and_a_lone_masked_softmax_fuses() -> None:
    model = pre_ln_model()
    plan = build(model)
    rows = device_layers(plan)
    fused = [row for row in rows if row["type"] == "RESIDUAL_NORMALIZATION"]
    assert len(fused) == 1 and len(fused[0]["outputs"]) == 2
    assert [row["type"] for row in rows].count("MASKED_SOFTMAX") == 1
    feeds = {n: RNG.standard_normal((B, S, E)).astype(np.float32) for n in ("x", "r")}
    got, want = load(plan).create_execution_context().execute(feeds), onnxruntime_outputs(model, feeds)
    for name in ("y", "z"):
        np.testing.assert_allclose(got[name], want[name], err_msg=name, **TOL)


def test_bert_tiny_runs_fused_and_matches_onnxruntime() -> None:
    case = next(c for c in CASES if c.model == "bert_tiny")
    path = MODELS / "bert_tiny.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    model = onnx.load(path)
    plan = build(model, case.profile)
    types = [row["type"] for row in device_layers(plan)]
    assert types.count("ATTENTION") == 2 and types.count("RESIDUAL_NORMALIZATION") == 4, types
    feeds = make_feeds(model, case.run_shapes[1], seed=3)
    feeds["attention_mask"][0, 5:] = 0  # padding in the first sequence
    got = load(plan).create_execution_context().execute(feeds)
    for name, value in onnxruntime_outputs(model, feeds).items():
        np.testing.assert_allclose(got[name], value, rtol=1e-4, atol=1e-4, err_msg=name)


def test_fused_plan_round_trips() -> None:
    model, feeds = attention_model("bert"), bert_feeds()
    plan = build(model)
    engine = load(plan)
    again = load(engine.serialize())
    assert [r["type"] for r in again.layer_info()] == [r["type"] for r in engine.layer_info()]
    np.testing.assert_array_equal(again.create_execution_context().execute(feeds)["y"],
                                  engine.create_execution_context().execute(feeds)["y"])


def _layer_of(header, layer_type):
    return next(layer["name"] for layer in header["layers"] if layer["type"] == layer_type)


@pytest.mark.parametrize("layer_type, key, value, message", [
    ("ATTENTION", "scale", "large", "params.scale must be a finite number"),
    ("ATTENTION", "k_transposed", 1, "params.k_transposed must be true or false"),
    ("RESIDUAL_NORMALIZATION", "epsilon", -1.0, "params.epsilon must be a finite number >= 0"),
    ("RESIDUAL_NORMALIZATION", "axes", [0], "are not the trailing axes"),
])
def test_tampered_fused_params_are_refused(layer_type, key, value, message) -> None:
    plan = build(attention_model("bert"))

    def edit(header):
        setter("layers", "@" + _layer_of(header, layer_type), "params", key, value=value)(header)

    with pytest.raises((PlanFormatError, EngineError), match=message):
        load(reseal(plan, edit)).create_execution_context().execute(bert_feeds())


def test_a_mask_that_cannot_broadcast_to_the_scores_is_named() -> None:
    """A profile whose mask may hold more keys than there are: the build fails naming the fused layer (as the Add
    of the unfused graph would fail), not at run time with a wrong result."""
    model = attention_model("bert")
    model.graph.input[1].type.tensor_type.shape.dim[3].dim_param = "keys"
    with pytest.raises(ShapeError, match=r"ATTENTION.*mask of shape \(2, 1, 1, 9\) does not broadcast to the scores"):
        build(model, {"x": ((B, S, E),) * 3, "mask": ((B, 1, 1, 1), (B, 1, 1, S), (B, 1, 1, S + 2))})
