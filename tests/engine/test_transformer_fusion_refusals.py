"""Patterns from the real exports (bench/REAL_EXPORTS.md, 2026-12-05 re-run) that the transformer fusions must leave
alone, each as a small onnx.helper model compared with onnxruntime: Swin's shifted-window mask added to a 5-D view of
the scores, XCiT's learned per-head temperature, and a BERT embedding sum that broadcasts a batch-1 position
embedding over the batch. A wrong fusion there would change the values (or refuse to run); the layer types show the
refusal itself."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnxruntime_reference import onnxruntime_outputs
from test_tampered_plans import load
from test_transformer_fusions import build, device_layers
from transformer_models import RNG, init

FUSED = {"ATTENTION", "MASKED_SOFTMAX", "RESIDUAL_NORMALIZATION"}
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _model(name: str, nodes: list, inputs: dict, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                            for n, s in inputs.items()],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run_and_compare(model: onnx.ModelProto, feeds: dict) -> list[str]:
    plan = build(model)
    got = load(plan).create_execution_context().execute(feeds)["y"]
    np.testing.assert_allclose(got, onnxruntime_outputs(model, feeds)["y"], **TOL)
    return [row["type"] for row in device_layers(plan)]


def test_shifted_window_mask_on_a_5d_view_is_not_fused() -> None:
    """Swin: scores (B*nW, heads, N, N) viewed as (B, nW, heads, N, N) + a per-window mask, viewed back, Softmax, @ v.
    The Reshape between the Add and the Softmax keeps both ATTENTION and MASKED_SOFTMAX out."""
    b, windows, heads, n, d = 1, 4, 2, 5, 8
    mask = np.where(RNG.random((1, windows, 1, n, n)) < 0.3, -100.0, 0.0).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Mul", ["scores", "scale"], ["scaled"]),
             helper.make_node("Reshape", ["scaled", "split_shape"], ["scores5"]),
             helper.make_node("Add", ["scores5", "mask"], ["masked5"]),
             helper.make_node("Reshape", ["masked5", "merge_shape"], ["masked"]),
             helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", "v"], ["y"])]
    inits = [init("scale", np.array(d ** -0.5, np.float32)), init("mask", mask),
             init("split_shape", np.array([b, windows, heads, n, n], np.int64)),
             init("merge_shape", np.array([b * windows, heads, n, n], np.int64))]
    shapes = {"q": [b * windows, heads, n, d], "kt": [b * windows, heads, d, n], "v": [b * windows, heads, n, d]}
    feeds = {name: RNG.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    types = _run_and_compare(_model("swin_shifted_window", nodes, shapes, inits), feeds)
    assert not FUSED & set(types), types
    assert "SOFTMAX" in types, types


def test_learned_per_head_temperature_is_not_a_scale() -> None:
    """XCiT/EdgeNeXt cross-covariance attention: scores * temperature (heads, 1, 1), a constant tensor that is not a
    scalar, so the ATTENTION layer (one scalar scale) must not absorb it."""
    heads, c, n = 3, 4, 6
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["scores"]),
             helper.make_node("Mul", ["scores", "temperature"], ["scaled"]),
             helper.make_node("Softmax", ["scaled"], ["probs"], axis=-1),
             helper.make_node("MatMul", ["probs", "v"], ["y"])]
    inits = [init("temperature", RNG.uniform(0.5, 2.0, (heads, 1, 1)).astype(np.float32))]
    shapes = {"q": [1, heads, c, n], "kt": [1, heads, n, c], "v": [1, heads, c, n]}
    feeds = {name: RNG.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}
    types = _run_and_compare(_model("xca", nodes, shapes, inits), feeds)
    assert "ATTENTION" not in types, types


def test_embedding_sum_broadcasting_over_the_batch_is_not_a_residual() -> None:
    """BERT-style embeddings with batch 2: word embeddings (2, S, E) + position embeddings (1, S, E) → LayerNorm. The
    residual broadcasts, which RESIDUAL_NORMALIZATION refuses (with batch 1 the shapes agree and it fuses)."""
    s, e = 5, 8
    nodes = [helper.make_node("Add", ["words", "positions"], ["sum"]),
             helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)]
    inits = [init("positions", RNG.standard_normal((1, s, e)).astype(np.float32)),
             init("gamma", RNG.uniform(0.5, 1.5, e).astype(np.float32)),
             init("beta", RNG.standard_normal(e).astype(np.float32))]
    for batch, fused in ((2, False), (1, True)):
        feeds = {"words": RNG.standard_normal((batch, s, e)).astype(np.float32)}
        types = _run_and_compare(_model("embeddings", nodes, {"words": [batch, s, e]}, inits), feeds)
        assert ("RESIDUAL_NORMALIZATION" in types) is fused, (batch, types)
