"""The transformer fusions end to end on the CPU: small ONNX models made with onnx.helper (BERT-style attention with
a padding mask and a residual LayerNorm, GPT-2-style causal attention with K^T from a Transpose, a lone masked
softmax, a pre-LN block whose residual sum is read twice) and the shared bert_tiny, built, run and compared with
onnxruntime; the fused layers in the plan (types, fused-from names), plan round trip, tampered params and bad
run-time shapes. GPU kernels: tests/gpu/test_attention_kernels.py."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnxruntime_reference import onnxruntime_outputs
from shared_model_cases import CASES, MODELS, make_feeds
from test_tampered_plans import load, reseal, setter
from transformer_models import RNG, B, E, S, attention_model, bert_feeds, pre_ln_model
from transformer_models import build_plan as build

import engine as trt
from engine.errors import EngineError, PlanFormatError, ShapeError

TOL = {"rtol": 1e-5, "atol": 1e-5}


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
    # the q, v, K^T and output Transposes became operand permutations: only the head-split Reshapes remain
    assert [name.split("_")[0] for name in attention["fused_from"]] == ["Transpose"] * 3 + [
        "Mul", "Mul", "MatMul", "Add", "Softmax", "MatMul", "Transpose"]
    assert "SHUFFLE" not in types or all(row["type"] != "SHUFFLE" or "Transpose" not in row["name"] for row in rows)
    got = load(plan).create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, onnxruntime_outputs(model, feeds)["y"], **TOL)


def test_fp16_layers_stay_close_to_onnxruntime() -> None:
    """FP16 builds run the fused layers in HALF (float32 inside the reference kernels): within float16's error."""
    model, feeds = attention_model("bert"), bert_feeds()
    plan = build(model, fp16=True)
    rows = {row["type"]: row for row in device_layers(plan)}
    assert rows["ATTENTION"]["precision"] == rows["RESIDUAL_NORMALIZATION"]["precision"] == "HALF"
    got = load(plan).create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, onnxruntime_outputs(model, feeds)["y"], rtol=2e-2, atol=2e-2)


def test_gpt2_style_causal_attention_absorbs_the_key_transpose() -> None:
    model = attention_model("gpt2")
    plan = build(model)
    types = [row["type"] for row in device_layers(plan)]
    assert types.count("ATTENTION") == 1 and "SOFTMAX" not in types
    # every Transpose (q, v and k to (batch, heads, seq, dim), K^T, the output back) became an operand permutation
    assert not any(row["type"] == "SHUFFLE" and "Transpose" in row["name"] for row in device_layers(plan))
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
    rows = device_layers(plan)
    types = [row["type"] for row in rows]
    assert types.count("ATTENTION") == 2 and types.count("RESIDUAL_NORMALIZATION") == 4, types
    # the q, v and K^T Transposes are inside (their Shape reads moved before them by shape_of_transpose)
    first = next(row for row in rows if row["type"] == "ATTENTION")
    transposes = [name.rsplit("/", 1)[-1] for name in first["fused_from"] if "Transpose" in name]
    assert transposes == ["Transpose", "Transpose_1", "Transpose_2"], first["fused_from"]
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
    ("ATTENTION", "q_perm", [0, 1, 1, 3], "params.q_perm must be a permutation of the 4 axes"),
    ("ATTENTION", "nan_to_zero", 1, "params.nan_to_zero must be true or false"),
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


@pytest.mark.parametrize("perm", [[0, 1, 2, 3], [0, 2, 1, 3], [0, 2, 3, 1], [0, 1, 3, 2], [1, 0, 2], [0, 2, 1]])
def test_gpu_kernel_strides_address_the_logical_operands(perm) -> None:
    """The element strides the GPU attention tactics hand their kernels (tactics/gpu_attention.py), checked on the
    CPU: strided views of the stored arrays are the logical operands, the permuted output and the broadcast mask."""
    from numpy.lib.stride_tricks import as_strided

    from engine.ir import Node
    from engine.tactics.gpu_attention import logical_strides, mask_strides

    def view(array, shape, strides):
        return as_strided(array, shape, [s * array.itemsize for s in strides])

    shape = (2, 3, 4, 5)[:len(perm)]
    stored = RNG.standard_normal(shape).astype(np.float32)
    logical = stored.transpose(perm)
    padded = (1,) * (4 - logical.ndim) + logical.shape
    np.testing.assert_array_equal(view(stored, padded, logical_strides(stored, perm)), logical.reshape(padded))
    stored_out = np.ascontiguousarray(logical.transpose(perm))  # the output: stored = transpose(logical, perm)
    np.testing.assert_array_equal(view(stored_out, padded, logical_strides(stored_out, perm, inverse=True)),
                                  logical.reshape(padded))
    layer = Node(trt.LayerType.ATTENTION, "attention", {})
    mask = RNG.standard_normal((2, 1, 1, 6)).astype(np.float32)
    np.testing.assert_array_equal(view(mask, (2, 3, 4, 6), mask_strides(layer, mask, (2, 3, 4, 6))),
                                  np.broadcast_to(mask, (2, 3, 4, 6)))
    with pytest.raises(EngineError, match="does not broadcast"):
        mask_strides(layer, mask, (1, 3, 4, 6))


def test_the_documented_example_runs(capsys) -> None:
    """docs/architecture.md's transformer-fusion example, executed as written (tests/ is on the path here)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    section = text[text.index("## Transformer fusions"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", section.index("```python"))]
    exec(compile(code, "docs/architecture.md", "exec"), {})
    out = capsys.readouterr().out
    assert "('ATTENTION', ['Transpose_3'" in out and "(2, 7, 16)" in out


@pytest.mark.parametrize("layer_type, key, value, message", [
    ("MASKED_SOFTMAX", "nan_to_zero", "yes", "params.nan_to_zero must be true or false"),
    ("RESIDUAL_NORMALIZATION", "outputs", 3, "params.outputs must be 1 or 2"),
])
def test_tampered_masked_softmax_and_second_output_params_are_refused(layer_type, key, value, message) -> None:
    plan = build(pre_ln_model())

    def edit(header):
        setter("layers", "@" + _layer_of(header, layer_type), "params", key, value=value)(header)

    feeds = {n: np.zeros((B, S, E), np.float32) for n in ("x", "r")}
    with pytest.raises((PlanFormatError, EngineError), match=message):
        load(reseal(plan, edit)).create_execution_context().execute(feeds)
