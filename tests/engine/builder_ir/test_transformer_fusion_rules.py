"""The transformer fusion rules alone (passes/transformer_fusions.py, rows of FUSION_RULES): what each matches,
what it refuses, and that the fused graph computes what the chain computes, checked against float64 NumPy written
here. End-to-end checks against onnxruntime are in tests/engine/test_transformer_fusions.py."""
from __future__ import annotations

import numpy as np
import pytest
from graph_runner import run_graph
from test_fusion_rules import const, lowered, rewrite

import engine as trt
from engine.enums import ElementWiseOperation, LayerType, MatrixOperation, UnaryOperation

RNG = np.random.default_rng(11)
F = trt.DataType.FLOAT
PROD, DIV, SUM = ElementWiseOperation.PROD, ElementWiseOperation.DIV, ElementWiseOperation.SUM
B, H, SQ, SK, D, DV = 2, 3, 5, 6, 4, 7
Q = RNG.standard_normal((B, H, SQ, D)).astype(np.float32)
K = RNG.standard_normal((B, H, SK, D)).astype(np.float32)
V = RNG.standard_normal((B, H, SK, DV)).astype(np.float32)
PAD = np.where(RNG.random((B, 1, 1, SK)) < 0.3, -1e4, 0.0).astype(np.float32)
CAUSAL = np.where(np.tril(np.ones((SQ, SK))) > 0, 0.0, -np.inf).astype(np.float32)


def attention_reference(q, k, v, mask=None, scale=1.0, nan_to_zero=False):
    scores = q.astype(np.float64) @ np.swapaxes(k.astype(np.float64), -1, -2) * scale
    if mask is not None:
        scores = scores + mask
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
    if nan_to_zero:
        p = np.where(np.isnan(p), 0.0, p)
    return p @ v.astype(np.float64)


def ew(net, a, b, op, name):
    return net.add_elementwise(a, b, op, name=name).get_output(0)


def attention_chain(net, form="bert", mask=PAD, axis_last=True, log=False, mark_scores=False, scale_shape=()):
    """q, k, v inputs and one of the chains exporters emit:
    bert: Mul(q, s) @ Mul(Transpose(k), s) + mask → Softmax → IsNaN/Where guard → @ v
    div:  MatMul(q, k, op1=TRANSPOSE) / c + mask → Softmax → @ v
    plain: q @ Transpose(k) → Softmax → @ v (no scale, no mask)"""
    q = net.add_input("q", F, Q.shape)
    k = net.add_input("k", F, K.shape)
    v = net.add_input("v", F, V.shape)
    if form == "bert":
        root = np.array(D ** -0.25, np.float32)
        kt = net.add_shuffle(k, name="k_t")
        kt.first_transpose = [0, 1, 3, 2]
        qs = ew(net, q, const(net, root, "q_scale"), PROD, "q_mul")
        ks = ew(net, kt.get_output(0), const(net, root, "k_scale"), PROD, "k_mul")
        scores = net.add_matrix_multiply(qs, MatrixOperation.NONE, ks, MatrixOperation.NONE, name="qk").get_output(0)
    elif form == "div":
        scores = net.add_matrix_multiply(q, MatrixOperation.NONE, k, MatrixOperation.TRANSPOSE, name="qk").get_output(0)
        scores = ew(net, scores, const(net, np.full(scale_shape, np.sqrt(D), np.float32), "sqrt_d"), DIV, "div")
    else:
        kt = net.add_shuffle(k, name="k_t")
        kt.first_transpose = [0, 1, 3, 2]
        scores = net.add_matrix_multiply(q, MatrixOperation.NONE, kt.get_output(0), MatrixOperation.NONE,
                                         name="qk").get_output(0)
    if mark_scores:
        net.mark_output(scores)
    if mask is not None:
        scores = ew(net, scores, const(net, mask, "mask"), SUM, "add_mask")
    softmax = net.add_softmax(scores, name="softmax")
    if not axis_last:
        softmax.axes = 1 << 2
    softmax.log = log
    probs = softmax.get_output(0)
    if form == "bert":
        isnan = net.add_unary(probs, UnaryOperation.ISNAN, name="isnan").get_output(0)
        probs = net.add_select(isnan, const(net, np.zeros(1, np.float32), "zero"), probs, name="guard").get_output(0)
    out = net.add_matrix_multiply(probs, MatrixOperation.NONE, v, MatrixOperation.NONE, name="pv").get_output(0)
    out.name = "out"
    net.mark_output(out)
    return {"q": Q, "k": K, "v": V}


def only_output(graph, feeds):
    return run_graph(graph, feeds)["out"]


def test_bert_attention_becomes_one_node() -> None:
    graph, feeds = lowered(attention_chain)
    fused = rewrite("attention_fusion", graph)
    assert set(fused) == {"k_t", "q_mul", "k_mul", "qk", "add_mask", "softmax", "isnan", "guard", "pv"}
    (node,) = [n for n in graph.nodes if n.type != LayerType.CONSTANT]
    assert node.type == LayerType.ATTENTION and node.outputs[0].name == "out"
    assert node.params["k_perm"] == [0, 1, 2, 3] and node.params["nan_to_zero"] is True  # K^T's Transpose absorbed
    assert node.params["scale"] == pytest.approx(D ** -0.5, rel=1e-6)
    assert node.metadata["fused_from"][-1] == "pv" and "softmax" in node.metadata["fused_from"]
    want = attention_reference(Q, K, V, PAD, D ** -0.5)
    np.testing.assert_allclose(only_output(graph, feeds), want, rtol=1e-5, atol=1e-5)


def test_divided_scores_with_a_causal_mask() -> None:
    graph, feeds = lowered(lambda net: attention_chain(net, "div", CAUSAL))
    assert rewrite("attention_fusion", graph) == ["qk", "div", "add_mask", "softmax", "pv"]
    (node,) = [n for n in graph.nodes if n.type == LayerType.ATTENTION]
    assert node.params["k_perm"] == [0, 1, 2, 3] and node.params["nan_to_zero"] is False  # MatMul's transB
    np.testing.assert_allclose(only_output(graph, feeds), attention_reference(Q, K, V, CAUSAL, D ** -0.5),
                               rtol=1e-5, atol=1e-5)


def test_fully_masked_rows_follow_the_guard() -> None:
    """A row masked entirely with -inf: NaN without the IsNaN/Where guard (as the chain gives), zeros with it."""
    mask = np.zeros((1, 1, SQ, SK), np.float32)
    mask[..., 1, :] = -np.inf
    graph, feeds = lowered(lambda net: attention_chain(net, "bert", mask))
    rewrite("attention_fusion", graph)
    got = only_output(graph, feeds)
    assert np.all(got[:, :, 1] == 0) and np.isfinite(got).all()
    np.testing.assert_allclose(got, attention_reference(Q, K, V, mask, D ** -0.5, nan_to_zero=True), atol=1e-5)
    graph, feeds = lowered(lambda net: attention_chain(net, "div", mask))
    rewrite("attention_fusion", graph)
    got = only_output(graph, feeds)
    assert np.isnan(got[:, :, 1]).all() and np.isfinite(np.delete(got, 1, axis=2)).all()


def test_unscaled_unmasked_attention_absorbs_the_key_transpose() -> None:
    graph, feeds = lowered(lambda net: attention_chain(net, "plain", None))
    assert rewrite("attention_fusion", graph) == ["k_t", "qk", "softmax", "pv"]
    (node,) = [n for n in graph.nodes if n.type == LayerType.ATTENTION]
    assert node.params["scale"] == 1.0 and node.inputs[1].name == "k" and node.params["k_perm"] == [0, 1, 2, 3]
    np.testing.assert_allclose(only_output(graph, feeds), attention_reference(Q, K, V), rtol=1e-5, atol=1e-5)


def heads_last_chain(net, k_read_twice=False):
    """q, k, v stored (batch, seq, heads, dim) as projections give them: Transposes move the heads in front (k's
    straight to K^T), and the output back behind the sequence."""
    def moved(name, array, perm):
        x = net.add_input(name, F, array.transpose(0, 2, 1, 3).shape)
        shuffle = net.add_shuffle(x, name=f"{name}_t")
        shuffle.first_transpose = perm
        return shuffle.get_output(0)

    q, kt, v = moved("q", Q, [0, 2, 1, 3]), moved("k", K, [0, 2, 3, 1]), moved("v", V, [0, 2, 1, 3])
    if k_read_twice:
        net.mark_output(kt)
    scores = net.add_matrix_multiply(q, MatrixOperation.NONE, kt, MatrixOperation.NONE, name="qk").get_output(0)
    probs = net.add_softmax(ew(net, scores, const(net, PAD, "mask"), SUM, "add_mask"), name="softmax").get_output(0)
    context = net.add_matrix_multiply(probs, MatrixOperation.NONE, v, MatrixOperation.NONE, name="pv").get_output(0)
    back = net.add_shuffle(context, name="out_t")
    back.first_transpose = [0, 2, 1, 3]
    out = back.get_output(0)
    out.name = "out"
    net.mark_output(out)
    return {name: array.transpose(0, 2, 1, 3).copy() for name, array in (("q", Q), ("k", K), ("v", V))}


@pytest.mark.parametrize("k_read_twice", [False, True])
def test_transposes_around_attention_become_operand_permutations(k_read_twice) -> None:
    graph, feeds = lowered(lambda net: heads_last_chain(net, k_read_twice))
    fused = rewrite("attention_fusion", graph)
    assert ("k_t" in fused) is not k_read_twice and {"q_t", "v_t", "out_t", "pv"} <= set(fused)
    (node,) = [n for n in graph.nodes if n.type == LayerType.ATTENTION]
    assert node.params["q_perm"] == node.params["v_perm"] == node.params["out_perm"] == [0, 2, 1, 3]
    assert node.params["k_perm"] == ([0, 1, 3, 2] if k_read_twice else [0, 2, 1, 3])
    assert node.outputs[0].name == "out" and node.outputs[0].shape == (B, SQ, H, DV)
    want = attention_reference(Q, K, V, PAD).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(run_graph(graph, feeds)["out"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["softmax_axis", "log_softmax", "mask_enlarges_scores", "scale_not_scalar",
                                     "scores_marked", "int8_matmul"])
def test_attention_refusals(variant) -> None:
    make = {
        "softmax_axis": lambda net: attention_chain(net, axis_last=False),
        "log_softmax": lambda net: attention_chain(net, log=True),
        "mask_enlarges_scores": lambda net: attention_chain(net, mask=np.zeros((2, B, H, SQ, SK), np.float32)),
        "scale_not_scalar": lambda net: attention_chain(net, "div", scale_shape=(SK,)),
        "scores_marked": lambda net: attention_chain(net, mark_scores=True),
        "int8_matmul": attention_chain,
    }[variant]
    graph, _ = lowered(make)
    if variant == "int8_matmul":
        next(n for n in graph.nodes if n.name == "qk").params["int8"] = {"input_scale": 1.0}
    assert rewrite("attention_fusion", graph) == []
    assert LayerType.ATTENTION not in [n.type for n in graph.nodes]


@pytest.mark.parametrize("start, end", [(0, None), (1, 3), (-2, None)])
def test_a_shape_read_moves_before_the_transpose_so_attention_takes_it(start, end) -> None:
    """BERT's exports read the Shape of the transposed q and v; read before the Transpose (its dims picked by the
    permutation), the Transpose is attention's alone and becomes an operand permutation."""
    def build(net):
        feeds = heads_last_chain(net)
        q_t = next(layer for layer in net if layer.name == "q_t")
        shape = net.add_shape(q_t.get_output(0), name="q_shape")
        shape.start, shape.end = start, end
        out = shape.get_output(0)
        out.name = "q_dims"
        net.mark_output(out)
        return feeds

    graph, feeds = lowered(build)
    assert rewrite("shape_of_transpose", graph) == ["q_shape"]
    assert rewrite("attention_fusion", graph)[0] == "q_t"
    got = run_graph(graph, feeds)
    np.testing.assert_array_equal(got["q_dims"], np.array([B, H, SQ, D])[start:end])
    np.testing.assert_allclose(got["out"], attention_reference(Q, K, V, PAD).transpose(0, 2, 1, 3), rtol=1e-5,
                               atol=1e-5)


def test_a_shape_of_a_transpose_read_nowhere_else_is_left_alone() -> None:
    def build(net):
        x = net.add_input("x", F, (2, 3, 4))
        t = net.add_shuffle(x, name="t")
        t.first_transpose = [2, 0, 1]
        net.mark_output(net.add_shape(t.get_output(0), name="shape").get_output(0))
        return {}

    graph, _ = lowered(build)
    assert rewrite("shape_of_transpose", graph) == []


# ---------------------------------------------------------------------------------------------- masked softmax
def masked_softmax_chain(net, mask_shape=(B, 1, 1, SK), axis_last=True):
    x = net.add_input("x", F, (B, H, SQ, SK))
    mask = const(net, RNG.standard_normal(mask_shape).astype(np.float32), "mask")
    softmax = net.add_softmax(ew(net, mask, x, SUM, "add_mask"), name="softmax")
    if not axis_last:
        softmax.axes = 1 << 1
    out = softmax.get_output(0)
    out.name = "out"
    net.mark_output(out)
    return {"x": RNG.standard_normal((B, H, SQ, SK)).astype(np.float32)}


def test_add_and_softmax_become_a_masked_softmax() -> None:
    graph, feeds = lowered(masked_softmax_chain)
    mask = graph.value("mask_output_0").constant.astype(np.float64)
    assert rewrite("masked_softmax_fusion", graph) == ["add_mask", "softmax"]
    (node,) = [n for n in graph.nodes if n.type == LayerType.MASKED_SOFTMAX]
    assert node.inputs[0].name == "x" and node.inputs[1].name == "mask_output_0"
    s = feeds["x"].astype(np.float64) + mask
    e = np.exp(s - s.max(-1, keepdims=True))
    np.testing.assert_allclose(only_output(graph, feeds), e / e.sum(-1, keepdims=True), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", ["softmax_axis", "mask_enlarges"])
def test_masked_softmax_refusals(variant) -> None:
    graph, _ = lowered(lambda net: masked_softmax_chain(net, axis_last=False) if variant == "softmax_axis" else
                       masked_softmax_chain(net, mask_shape=(2, 1, 1, 1, SK)))
    assert rewrite("masked_softmax_fusion", graph) == []


# ---------------------------------------------------------------------------------------------- residual + norm
GAMMA = RNG.uniform(0.5, 1.5, 8).astype(np.float32)
BETA = RNG.standard_normal(8).astype(np.float32)


def residual_norm_chain(net, residual_shape=(2, 4, 8), axes=(2,), reuse_sum=False):
    x = net.add_input("x", F, (2, 4, 8))
    r = net.add_input("r", F, residual_shape)
    total = ew(net, x, r, SUM, "add")
    norm = net.add_normalization(total, const(net, GAMMA.reshape(1, 1, 8) if axes == (2,) else
                                              np.ones((1, 4, 1), np.float32), "gamma"),
                                 const(net, BETA.reshape(1, 1, 8) if axes == (2,) else
                                       np.zeros((1, 4, 1), np.float32), "beta"), list(axes), name="ln")
    out = norm.get_output(0)
    if reuse_sum:
        out = ew(net, out, total, SUM, "next_residual")
    out.name = "out"
    net.mark_output(out)
    return {"x": RNG.standard_normal((2, 4, 8)).astype(np.float32),
            "r": RNG.standard_normal(residual_shape).astype(np.float32)}


def layer_norm_reference(s):
    s = s.astype(np.float64)
    mean = s.mean(-1, keepdims=True)
    return (s - mean) / np.sqrt(((s - mean) ** 2).mean(-1, keepdims=True) + 1e-5) * GAMMA + BETA


@pytest.mark.parametrize("reuse_sum", [False, True])
def test_residual_add_and_layer_norm_become_one_node(reuse_sum) -> None:
    graph, feeds = lowered(lambda net: residual_norm_chain(net, reuse_sum=reuse_sum))
    assert rewrite("residual_norm_fusion", graph) == ["add", "ln"]
    (node,) = [n for n in graph.nodes if n.type == LayerType.RESIDUAL_NORMALIZATION]
    assert [v.name for v in node.inputs[:2]] == ["x", "r"] and node.metadata["fused_from"] == ["add", "ln"]
    assert len(node.outputs) == (2 if reuse_sum else 1) and node.params["outputs"] == len(node.outputs)
    s = feeds["x"].astype(np.float64) + feeds["r"]
    want = layer_norm_reference(s) + (s if reuse_sum else 0)
    np.testing.assert_allclose(only_output(graph, feeds), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant", ["broadcast_residual", "not_trailing_axes"])
def test_residual_norm_refusals(variant) -> None:
    graph, _ = lowered(lambda net: residual_norm_chain(net, residual_shape=(1, 4, 8)) if variant ==
                       "broadcast_residual" else residual_norm_chain(net, axes=(1,)))
    assert rewrite("residual_norm_fusion", graph) == []
