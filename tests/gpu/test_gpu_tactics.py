"""Every GPU tactic run directly (prepare + run into preallocated device outputs, with exactly the workspace it
claims) against float64 NumPy references; float16 layers within 1e-2, TF32 within its 10-bit mantissa; and
what `supports` rejects, with the reason."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conv_reference import conv_float64

from engine.dtypes import from_numpy
from engine.enums import ActivationType, ElementWiseOperation, LayerType, MatrixOperation
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(31)


def tactic(name: str):
    return tactic_by_id(stable_tactic_id(name))


def run_tactic(t, ctx: TacticContext, inputs: list, out_dtype=None) -> np.ndarray:
    out_dtype = out_dtype or inputs[0].dtype
    out = cupy.full(ctx.outputs[0].shape, np.nan, dtype=out_dtype)
    nbytes = t.workspace_bytes(ctx)
    workspace = cupy.empty(nbytes, cupy.uint8) if nbytes else None
    t.run(t.prepare(ctx), [None if a is None else cupy.asarray(a) for a in inputs], [out], workspace, cupy)
    cupy.cuda.get_current_stream().synchronize()
    return cupy.asnumpy(out)


def info(array: np.ndarray | None, constant: bool = False) -> TensorInfo | None:
    if array is None:
        return None
    return TensorInfo(array.shape, from_numpy(array.dtype), array if constant else None)


def test_every_heavy_layer_type_has_gpu_tactics_with_distinct_ids():
    names = {t.name for layer in (LayerType.CONVOLUTION, LayerType.MATRIX_MULTIPLY, LayerType.ELEMENTWISE,
                                  LayerType.ACTIVATION, LayerType.SOFTMAX, LayerType.NORMALIZATION)
             for t in tactics_for(layer, "gpu")}
    assert {"gpu:conv:im2col_gemm", "gpu:conv:pointwise_gemm", "gpu:conv:im2col_gemm_rows",
            "gpu:conv:im2col_gemm_tf32", "gpu:conv:pointwise_gemm_tf32", "gpu:conv:im2col_gemm_rows_tf32",
            "gpu:conv:depthwise_nvrtc",
            "gpu:conv:implicit_gemm_nvrtc", "gpu:matmul:cupy_matmul", "gpu:matmul:cublas_gemm_fp32",
            "gpu:matmul:cublas_gemm_tf32", "gpu:matmul:cublas_gemm_fp16", "gpu:matmul:gemm_bias_act_epilogue",
            "gpu:elementwise:elementwise_kernel", "gpu:activation:elementwise_kernel", "gpu:softmax:softmax_rows",
            "gpu:normalization:layer_norm_rows"} <= names
    ids = [stable_tactic_id(n) for n in names]
    assert len(set(ids)) == len(ids)


# ---------------------------------------------------------------------------------------------- convolution
def conv_context(x, w, b, stride, dilation, pre, post, groups):
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", from_numpy(x.dtype), x.shape), w.shape[0], w.shape[2:], w, b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = list(stride), list(dilation), groups
    layer.pre_padding, layer.post_padding = list(pre), list(post)
    return TacticContext(as_node(layer), [info(x), info(w, True), info(b, True)],
                         [TensorInfo(layer.get_output(0).shape, from_numpy(x.dtype))], "gpu")


def as_node(layer) -> Node:
    """The builder hands tactics graph nodes (which carry the typed epilogue), not the façade's layers."""
    return Node(layer.type, layer.name, layer.params, precision=layer.precision)


CONV_CASES = {  # name: (x shape, K, groups, kernel, stride, dilation, pre, post)
    "3x3": ((2, 4, 9, 8), 6, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)),
    "3x3_asym_pad": ((1, 3, 6, 5), 20, 1, (3, 3), (1, 1), (1, 1), (2, 0), (0, 1)),
    "grouped_strided_dilated": ((2, 4, 9, 8), 6, 2, (3, 3), (2, 1), (1, 2), (1, 0), (2, 1)),
    "depthwise": ((2, 6, 7, 9), 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)),
    "depthwise_s2_multiplier2": ((2, 6, 7, 9), 12, 6, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)),
    "depthwise_5x5_dilated_s3": ((1, 4, 11, 10), 4, 4, (5, 5), (3, 2), (2, 1), (2, 0), (1, 3)),
    "pointwise": ((2, 40, 5, 6), 24, 1, (1, 1), (1, 1), (1, 1), (0, 0), (0, 0)),
    "pointwise_grouped_strided": ((2, 8, 5, 6), 4, 2, (1, 1), (2, 2), (1, 1), (0, 0), (0, 0)),
}
EXPECTED_CONV = {"3x3": {"im2col_gemm", "im2col_gemm_rows", "implicit_gemm_nvrtc"},
                 "3x3_asym_pad": {"im2col_gemm", "im2col_gemm_rows"},
                 "grouped_strided_dilated": {"im2col_gemm"}, "depthwise": {"depthwise_nvrtc", "im2col_gemm"},
                 "pointwise": {"pointwise_gemm", "im2col_gemm", "im2col_gemm_rows"},
                 "pointwise_grouped_strided": {"im2col_gemm"}}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("name", CONV_CASES)
def test_conv_tactics_match_float64(name, with_bias, dtype):
    shape, maps, groups, kernel, stride, dilation, pre, post = CONV_CASES[name]
    x = RNG.standard_normal(shape).astype(dtype)
    w = (RNG.standard_normal((maps, shape[1] // groups, *kernel)) / math.sqrt(math.prod(kernel))).astype(dtype)
    b = RNG.standard_normal(maps).astype(dtype) if with_bias else None
    ctx = conv_context(x, w, b, stride, dilation, pre, post, groups)
    want = conv_float64(x, w, b, stride, dilation, pre, post, groups)
    tolerance = 1e-2 if dtype == np.float16 else 1e-4
    ran = set()
    for t in tactics_for(LayerType.CONVOLUTION, "gpu"):
        if t.supports(ctx) is True:
            got = run_tactic(t, ctx, [x, w, b])
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance, err_msg=t.name)
            ran.add(t.name.split(":")[-1])
    assert EXPECTED_CONV.get(name, set()) <= ran, ran
    assert "implicit_gemm_nvrtc" in ran


def test_conv_supports_gives_reasons():
    x = np.zeros((1, 4, 6, 6), np.float32)
    w3 = np.zeros((4, 4, 3, 3), np.float32)
    ctx = conv_context(x, w3, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    assert "depthwise" in tactic("gpu:conv:depthwise_nvrtc").supports(ctx)
    assert "1x1" in tactic("gpu:conv:pointwise_gemm").supports(ctx)
    x3 = np.zeros((1, 2, 4, 4, 4), np.float32)
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", from_numpy(x3.dtype), x3.shape), 2, (3, 3, 3),
                                   np.zeros((2, 2, 3, 3, 3), np.float32))
    ctx3 = TacticContext(layer, [info(x3), TensorInfo((2, 2, 3, 3, 3), from_numpy(np.float32),
                                                      np.zeros((2, 2, 3, 3, 3), np.float32)), None],
                         [TensorInfo(layer.get_output(0).shape, from_numpy(np.float32))], "gpu")
    assert "2-D" in tactic("gpu:conv:implicit_gemm_nvrtc").supports(ctx3)
    assert "3-D" in tactic("gpu:conv:im2col_gemm").supports(ctx3)
    assert "TF32" in tactic("gpu:conv:im2col_gemm_tf32").supports(ctx)
    grouped = conv_context(x, np.zeros((4, 2, 3, 3), np.float32), None, (1, 1), (1, 1), (1, 1), (1, 1), 2)
    assert "ungrouped" in tactic("gpu:conv:im2col_gemm_rows").supports(grouped)
    doubles = conv_context(x.astype(np.float64), w3.astype(np.float64), None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    assert "float32" in tactic("gpu:conv:implicit_gemm_nvrtc").supports(doubles)


GEMM_CONV_TACTICS = ("gpu:conv:im2col_gemm", "gpu:conv:pointwise_gemm", "gpu:conv:im2col_gemm_rows")


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("activation", ["RELU", "CLIP", "LEAKY_RELU", "SIGMOID"])
def test_conv_gemm_epilogue_applies_bias_residual_and_fused_activation(activation, dtype, residual):
    """The epilogue adds the bias and a fused residual and applies ReLU/Clip/LeakyReLU itself; the tactic applies
    any other activation after it; either way exactly once and in that order (the runtime skips tactics that fuse
    their residual and activation)."""
    x = RNG.standard_normal((3, 16, 7, 7)).astype(dtype)
    w = (RNG.standard_normal((24, 16, 1, 1)) / 4).astype(dtype)
    b = RNG.standard_normal(24).astype(dtype)
    r = RNG.standard_normal((3, 24, 7, 7)).astype(dtype)
    ctx = conv_context(x, w, b, (1, 1), (1, 1), (0, 0), (0, 0), 1)
    alpha, beta = (-0.5, 0.7) if activation == "CLIP" else (0.1, 0.0)
    ctx.layer.epilogue = Epilogue(activation=Activation(activation, alpha, beta))
    inputs = [x, w, b]
    y = conv_float64(x, w, b, (1, 1), (1, 1), (0, 0), (0, 0), 1)
    if residual:
        ctx.layer.epilogue = Epilogue(residual=3, activation=ctx.layer.epilogue.activation)
        ctx.inputs.append(info(r))
        inputs.append(r)
        y = y + r.astype(np.float64)
    want = {"RELU": np.maximum(y, 0), "CLIP": np.clip(y, alpha, beta), "LEAKY_RELU": np.where(y >= 0, y, alpha * y),
            "SIGMOID": 1 / (1 + np.exp(-y))}[activation]
    tolerance = 1e-2 if dtype == np.float16 else 1e-4
    for name in GEMM_CONV_TACTICS:
        t = tactic(name)
        assert t.absorbs == {"residual", "activation"} and t.supports(ctx) is True
        np.testing.assert_allclose(run_tactic(t, ctx, inputs), want, rtol=tolerance, atol=tolerance, err_msg=name)


def test_conv_gemm_rows_pads_odd_tap_counts():
    """A 7x7 stem over 3 channels has 147 taps per pixel: the rows layout pads them to 152 with zero weights."""
    x = RNG.standard_normal((2, 3, 20, 18)).astype(np.float16)
    w = (RNG.standard_normal((8, 3, 7, 7)) / 10).astype(np.float16)
    ctx = conv_context(x, w, None, (2, 2), (1, 1), (3, 3), (3, 3), 1)
    t = tactic("gpu:conv:im2col_gemm_rows")
    assert t.row_length(t.geometry(ctx)) == 152
    want = conv_float64(x, w, None, (2, 2), (1, 1), (3, 3), (3, 3), 1)
    np.testing.assert_allclose(run_tactic(t, ctx, [x, w, None]), want, rtol=1e-2, atol=1e-2)


def test_conv_gemm_runs_1d_convolutions_as_2d():
    x = RNG.standard_normal((2, 5, 17)).astype(np.float32)
    w = RNG.standard_normal((7, 5, 3)).astype(np.float32)
    b = RNG.standard_normal(7).astype(np.float32)
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", from_numpy(x.dtype), x.shape), 7, (3,), w, b)
    layer.stride_nd, layer.dilation_nd, layer.pre_padding, layer.post_padding = [2], [1], [1], [2]
    ctx = TacticContext(layer, [info(x), info(w, True), info(b, True)],
                        [TensorInfo(layer.get_output(0).shape, from_numpy(x.dtype))], "gpu")
    want = conv_float64(x[:, :, None], w[:, :, None], b, (1, 2), (1, 1), (0, 1), (0, 2), 1)[:, :, 0]
    for name in ("gpu:conv:im2col_gemm", "gpu:conv:im2col_gemm_rows"):
        np.testing.assert_allclose(run_tactic(tactic(name), ctx, [x, w, b]), want, rtol=1e-4, atol=1e-4,
                                   err_msg=name)


def test_conv_gemm_tf32_follows_the_builder_flag():
    x = RNG.standard_normal((2, 8, 9, 9)).astype(np.float32)
    w = RNG.standard_normal((8, 8, 3, 3)).astype(np.float32)
    ctx = conv_context(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    ctx.extra["tf32"] = True
    want = conv_float64(x, w, None, (1, 1), (1, 1), (1, 1), (1, 1), 1)
    got = run_tactic(tactic("gpu:conv:im2col_gemm_tf32"), ctx, [x, w, None])
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)  # inputs rounded to 10 mantissa bits


# ---------------------------------------------------------------------------------------------- matmul
def matmul_context(a, b, bias=None, op0=MatrixOperation.NONE, op1=MatrixOperation.NONE, alpha=1.0, beta=1.0,
                   tf32=False, activation=None, constant_b=True):
    net = NetworkDefinition()
    ta = net.add_input("a", from_numpy(a.dtype), a.shape)
    tb = net.add_constant(b.shape, b).get_output(0)
    inputs = [ta, tb] if bias is None else [ta, tb, net.add_constant(bias.shape, bias).get_output(0)]
    layer = net.add_layer(LayerType.MATRIX_MULTIPLY, inputs, {"op0": op0, "op1": op1, "alpha": alpha, "beta": beta})
    node = as_node(layer)
    if activation is not None:
        node.epilogue = Epilogue(activation=Activation(activation["activation_type"], activation["alpha"],
                                                       activation["beta"]))
    return TacticContext(node, [info(a), info(b, constant_b), info(bias, True)][:len(inputs)],
                         [TensorInfo(layer.get_output(0).shape, from_numpy(a.dtype))], "gpu", {"tf32": tf32})


def matmul_reference(a, b, bias, op0, op1, alpha, beta):
    a, b = a.astype(np.float64), b.astype(np.float64)
    a = a.swapaxes(-1, -2) if op0 == MatrixOperation.TRANSPOSE else a
    b = b.swapaxes(-1, -2) if op1 == MatrixOperation.TRANSPOSE else b
    y = alpha * (a @ b)
    return y if bias is None else y + beta * bias.astype(np.float64)


MATMUL_CASES = {  # name: (a shape, b shape, op0, op1, bias shape)
    "2d": ((33, 64), (64, 17), MatrixOperation.NONE, MatrixOperation.NONE, None),
    "gemm_transposed_bias": ((64, 33), (17, 64), MatrixOperation.TRANSPOSE, MatrixOperation.TRANSPOSE, (17,)),
    "batched_shared_weight": ((3, 5, 48), (48, 24), MatrixOperation.NONE, MatrixOperation.NONE, (1, 24)),
    "batched_both": ((2, 3, 7, 32), (2, 3, 32, 9), MatrixOperation.NONE, MatrixOperation.NONE, None),
    "batched_transposed_a": ((4, 32, 6), (32, 10), MatrixOperation.TRANSPOSE, MatrixOperation.NONE, None),
    "broadcast_a": ((1, 7, 32), (4, 9, 32), MatrixOperation.NONE, MatrixOperation.TRANSPOSE, None),
}


@pytest.mark.parametrize("name", MATMUL_CASES)
@pytest.mark.parametrize("mode", ["fp32", "tf32", "fp16"])
def test_matmul_tactics_match_float64(name, mode):
    a_shape, b_shape, op0, op1, bias_shape = MATMUL_CASES[name]
    dtype = np.float16 if mode == "fp16" else np.float32
    a = RNG.standard_normal(a_shape).astype(dtype)
    b = (RNG.standard_normal(b_shape) / 8).astype(dtype)
    bias = None if bias_shape is None else RNG.standard_normal(bias_shape).astype(dtype)
    ctx = matmul_context(a, b, bias, op0, op1, alpha=0.5, beta=2.0, tf32=mode == "tf32")
    want = matmul_reference(a, b, bias, op0, op1, 0.5, 2.0)
    tolerance = {"fp32": 1e-5, "tf32": 5e-3, "fp16": 1e-2}[mode]
    ran = []
    for t in tactics_for(LayerType.MATRIX_MULTIPLY, "gpu"):
        if t.supports(ctx) is True:
            got = run_tactic(t, ctx, [a, b, bias][:len(ctx.inputs)])
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * np.abs(want).max(),
                                       err_msg=t.name)
            ran.append(t.name)
    expected = {"fp32": "gpu:matmul:cublas_gemm_fp32", "tf32": "gpu:matmul:cublas_gemm_tf32",
                "fp16": "gpu:matmul:cublas_gemm_fp16"}[mode]
    assert expected in ran, ran


def test_tf32_only_with_the_builder_flag():
    a, b = np.zeros((4, 8), np.float32), np.zeros((8, 4), np.float32)
    assert "BuilderFlag.TF32" in tactic("gpu:matmul:cublas_gemm_tf32").supports(matmul_context(a, b))
    assert tactic("gpu:matmul:cublas_gemm_tf32").supports(matmul_context(a, b, tf32=True)) is True
    assert "HALF" in tactic("gpu:matmul:cublas_gemm_fp16").supports(matmul_context(a, b))
    vector = matmul_context(a, b[:, 0].copy(), op1=MatrixOperation.VECTOR)
    assert "vector" in tactic("gpu:matmul:cublas_gemm_fp32").supports(vector)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("activation", [None, "RELU", "CLIP", "LEAKY_RELU"])
def test_gemm_epilogue_applies_bias_and_activation_once(activation, dtype):
    a = RNG.standard_normal((2, 9, 32)).astype(dtype)
    b = (RNG.standard_normal((32, 20)) / 4).astype(dtype)
    bias = RNG.standard_normal(20).astype(dtype)
    fused = None if activation is None else {"activation_type": activation, "alpha": -0.5, "beta": 0.7}
    if activation == "LEAKY_RELU":
        fused["alpha"] = 0.1
    ctx = matmul_context(a, b, bias, beta=1.5, activation=fused)
    epilogue = tactic("gpu:matmul:gemm_bias_act_epilogue")
    assert epilogue.absorbs == {"activation"} and epilogue.supports(ctx) is True
    y = matmul_reference(a, b, bias, MatrixOperation.NONE, MatrixOperation.NONE, 1.0, 1.5)
    if activation == "RELU":
        y = np.maximum(y, 0)
    elif activation == "CLIP":
        y = np.clip(y, -0.5, 0.7)
    elif activation == "LEAKY_RELU":
        y = np.where(y >= 0, y, 0.1 * y)
    tolerance = 1e-2 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(run_tactic(epilogue, ctx, [a, b, bias]), y, rtol=tolerance, atol=tolerance)
    unfusable = matmul_context(a, b, bias, activation={"activation_type": "SIGMOID", "alpha": 0, "beta": 0})
    assert "SIGMOID" in epilogue.supports(unfusable)


def test_engine_with_fused_gemm_relu_applies_relu_once():
    """End to end: a Gemm + Relu fused by the builder, run by the epilogue tactic: the runtime must not apply the
    activation a second time (a leaky slope applied twice would show)."""
    import engine as trt

    x = RNG.standard_normal((6, 16)).astype(np.float32)
    w = RNG.standard_normal((16, 8)).astype(np.float32)
    bias = RNG.standard_normal(8).astype(np.float32)
    net = NetworkDefinition()
    ta = net.add_input("x", trt.DataType.FLOAT, x.shape)
    mm = net.add_layer(LayerType.MATRIX_MULTIPLY, [ta, net.add_constant(w.shape, w).get_output(0),
                                                   net.add_constant(bias.shape, bias).get_output(0)],
                       {"op0": MatrixOperation.NONE, "op1": MatrixOperation.NONE, "alpha": 1.0, "beta": 1.0})
    act = net.add_activation(mm.get_output(0), ActivationType.LEAKY_RELU, alpha=0.25)
    act.get_output(0).name = "y"
    net.mark_output(act.get_output(0))
    from engine.conformance.harness import build_engine_for_feeds

    engine = build_engine_for_feeds(net, {"x": x}, device="gpu")
    rows = {r["name"]: r for r in engine.layer_info()}
    chosen = tactic_by_id(rows[mm.name]["tactic_id"])  # the epilogue tactic, or cuBLASLt's (which applies it after)
    assert chosen.name in ("gpu:matmul:gemm_bias_act_epilogue", *(f"gpu:matmul:cublaslt_fp32_h{k}" for k in range(4)))
    assert "activation" in chosen.absorbs, chosen.name
    y = x.astype(np.float64) @ w + bias
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y"],
                               np.where(y >= 0, y, 0.25 * y), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- pointwise
def pointwise_context(layer, inputs):
    return TacticContext(layer, [info(a) for a in inputs], [TensorInfo(layer.get_output(0).shape,
                                                                       from_numpy(inputs[0].dtype))], "gpu")


ELEMENTWISE_REFERENCE = {
    ElementWiseOperation.SUM: np.add, ElementWiseOperation.SUB: np.subtract, ElementWiseOperation.PROD: np.multiply,
    ElementWiseOperation.DIV: np.divide, ElementWiseOperation.MAX: np.maximum, ElementWiseOperation.MIN: np.minimum,
    ElementWiseOperation.POW: np.power,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("op", list(ELEMENTWISE_REFERENCE))
def test_elementwise_kernel_matches_float64(op, dtype):
    a = RNG.uniform(0.5, 2, (3, 1, 5)).astype(dtype)
    b = RNG.uniform(-2, 2, (4, 1)).astype(dtype)
    a[0, 0, 0] = np.nan
    net = NetworkDefinition()
    layer = net.add_elementwise(net.add_input("a", from_numpy(dtype), a.shape),
                                net.add_input("b", from_numpy(dtype), b.shape), op)
    ctx = pointwise_context(layer, [a, b])
    t = tactic("gpu:elementwise:elementwise_kernel")
    assert t.supports(ctx) is True
    want = ELEMENTWISE_REFERENCE[op](a.astype(np.float64), b.astype(np.float64))
    tolerance = 1e-3 if dtype == np.float16 else 1e-6
    np.testing.assert_allclose(run_tactic(t, ctx, [a, b]), want, rtol=tolerance, atol=tolerance, equal_nan=True)


def test_elementwise_kernel_rejects_integers_and_other_ops():
    a = np.zeros((2, 3), np.int32)
    net = NetworkDefinition()
    ta = net.add_input("a", from_numpy(a.dtype), a.shape)
    t = tactic("gpu:elementwise:elementwise_kernel")
    assert "FLOAT" in t.supports(pointwise_context(net.add_elementwise(ta, ta, ElementWiseOperation.SUM), [a, a]))
    assert "no elementwise kernel" in t.supports(
        pointwise_context(net.add_elementwise(ta, ta, ElementWiseOperation.FLOOR_DIV), [a, a]))


def _activation_reference(kind: ActivationType, x: np.ndarray, a: float, b: float) -> np.ndarray:
    from scipy.special import erf

    sigmoid = 1 / (1 + np.exp(-x))
    softplus = np.logaddexp(0, x)
    table = {
        "RELU": np.maximum(x, 0), "SIGMOID": sigmoid, "TANH": np.tanh(x), "LEAKY_RELU": np.where(x >= 0, x, a * x),
        "ELU": np.where(x > 0, x, a * np.expm1(x)), "SELU": b * np.where(x > 0, x, a * np.expm1(x)),
        "SOFTSIGN": x / (1 + np.abs(x)), "SOFTPLUS": a * np.logaddexp(0, b * x), "CLIP": np.clip(x, a, b),
        "HARD_SIGMOID": np.clip(a * x + b, 0, 1), "SCALED_TANH": a * np.tanh(b * x),
        "THRESHOLDED_RELU": np.where(x > a, x, 0), "GELU_ERF": 0.5 * x * (1 + erf(x / np.sqrt(2))),
        "GELU_TANH": 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))),
        "CELU": np.maximum(x, 0) + np.minimum(0, a * np.expm1(x / a)), "MISH": x * np.tanh(softplus),
        "HARD_SWISH": x * np.clip(a * x + b, 0, 1), "SWISH": x / (1 + np.exp(-a * x)),
    }
    return table[ActivationType(kind).value]


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("kind", list(ActivationType))
def test_activation_kernel_matches_float64(kind, dtype):
    x = RNG.uniform(-6, 6, (4, 33)).astype(dtype)
    alpha, beta = 0.7, 0.3
    net = NetworkDefinition()
    layer = net.add_activation(net.add_input("x", from_numpy(dtype), x.shape), kind, alpha, beta)
    ctx = pointwise_context(layer, [x])
    t = tactic("gpu:activation:elementwise_kernel")
    assert t.supports(ctx) is True
    want = _activation_reference(kind, x.astype(np.float64), alpha, beta)
    tolerance = 2e-3 if dtype == np.float16 else 2e-6
    np.testing.assert_allclose(run_tactic(t, ctx, [x]), want, rtol=tolerance, atol=tolerance)


# ---------------------------------------------------------------------------------------------- rows
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("shape,axis", [((4, 1000), 1), ((2, 7, 3, 5), 1), ((3, 2, 2049), 2), ((6,), 0)])
def test_softmax_rows_matches_float64(shape, axis, log, dtype):
    x = (RNG.standard_normal(shape) * 5).astype(dtype)
    net = NetworkDefinition()
    layer = net.add_softmax(net.add_input("x", from_numpy(dtype), shape))
    layer.axes, layer.log = 1 << axis, log
    ctx = pointwise_context(layer, [x])
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=axis, keepdims=True)
    total = np.exp(shifted).sum(axis=axis, keepdims=True)
    want = shifted - np.log(total) if log else np.exp(shifted) / total
    tolerance = 1e-2 if dtype == np.float16 else 1e-5
    t = tactic("gpu:softmax:softmax_rows")
    assert t.supports(ctx) is True
    np.testing.assert_allclose(run_tactic(t, ctx, [x]), want, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("axes,scale_shape", [((2,), (128,)), ((1, 2), (6, 40)), ((2,), None), ((2,), (1, 1, 33))])
def test_layer_norm_rows_matches_float64(axes, scale_shape, dtype):
    last = scale_shape[-1] if scale_shape else 128
    shape = (3, 6, last)
    x = (RNG.standard_normal(shape) * 3 + 1).astype(dtype)
    scale = None if scale_shape is None else RNG.standard_normal(scale_shape).astype(dtype)
    bias = None if scale_shape is None else RNG.standard_normal(scale_shape).astype(dtype)
    net = NetworkDefinition()
    tensors = [None if a is None else net.add_constant(a.shape, a).get_output(0) for a in (scale, bias)]
    layer = net.add_normalization(net.add_input("x", from_numpy(dtype), shape), *tensors, list(axes))
    layer.epsilon = 1e-5
    ctx = TacticContext(layer, [info(x), info(scale, True), info(bias, True)],
                        [TensorInfo(shape, from_numpy(dtype))], "gpu")
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    want = (x64 - mean) / np.sqrt(x64.var(axis=axes, keepdims=True) + 1e-5)
    if scale is not None:
        want = want * scale.astype(np.float64) + bias.astype(np.float64)
    tolerance = 1e-2 if dtype == np.float16 else 1e-5
    t = tactic("gpu:normalization:layer_norm_rows")
    assert t.supports(ctx) is True
    np.testing.assert_allclose(run_tactic(t, ctx, [x, scale, bias]), want, rtol=tolerance, atol=tolerance)


def test_layer_norm_rows_rejects_groups_and_leading_axes():
    x = np.zeros((2, 4, 6), np.float32)
    net = NetworkDefinition()
    tx = net.add_input("x", from_numpy(x.dtype), x.shape)
    t = tactic("gpu:normalization:layer_norm_rows")
    leading = net.add_normalization(tx, None, None, [1])
    assert "trailing" in t.supports(TacticContext(leading, [info(x), None, None], [info(x)], "gpu"))
    grouped = net.add_normalization(tx, None, None, [2])
    grouped.num_groups = 2
    assert "group" in t.supports(TacticContext(grouped, [info(x), None, None], [info(x)], "gpu"))


# ---------------------------------------------------------------------------------------------- pooling
def pool_context(x: np.ndarray, kind: str, window: tuple) -> TacticContext:
    net = NetworkDefinition()
    layer = net.add_pooling_nd(net.add_input("x", from_numpy(x.dtype), x.shape), kind, window)
    return TacticContext(layer, [info(x)], [TensorInfo(layer.get_output(0).shape, from_numpy(x.dtype))], "gpu")


def max_pool_reference(x, window, strides, dilations, pre, post):
    """float64 max pooling with -inf padding, window by window."""
    n = len(window)
    padded = np.pad(x.astype(np.float64), [(0, 0)] * (x.ndim - n) + list(zip(pre, post)), constant_values=-np.inf)
    out = [(padded.shape[x.ndim - n + i] - dilations[i] * (window[i] - 1) - 1) // strides[i] + 1 for i in range(n)]
    y = np.empty(x.shape[:-n] + tuple(out))
    for pos in np.ndindex(*out):
        taps = tuple(slice(p * s, p * s + d * (k - 1) + 1, d) for p, s, d, k in zip(pos, strides, dilations, window))
        y[(Ellipsis, *pos)] = padded[(Ellipsis, *taps)].reshape(*x.shape[:-n], -1).max(axis=-1)
    return y


POOL_CASES = {  # name: (x shape, window, strides, dilations, pre, post)
    "resnet_stem": ((2, 3, 12, 11), (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)),
    "asym_pad_dilated": ((1, 2, 9, 10), (2, 3), (1, 2), (2, 1), (0, 2), (1, 0)),
    "no_pad": ((3, 4, 8, 8), (2, 2), (2, 2), (1, 1), (0, 0), (0, 0)),
    "1d": ((2, 5, 13), (4,), (3,), (1,), (2,), (1,)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", POOL_CASES)
def test_max_pool_kernel_matches_float64(name, dtype):
    shape, window, strides, dilations, pre, post = POOL_CASES[name]
    x = RNG.standard_normal(shape).astype(dtype)
    x.reshape(-1)[5] = np.nan  # a NaN in a window propagates, as in the reference
    ctx = pool_context(x, "MAX", window)
    layer = ctx.layer
    layer.stride_nd, layer.dilation_nd, layer.pre_padding, layer.post_padding = (list(v) for v in
                                                                                 (strides, dilations, pre, post))
    ctx.outputs[0] = TensorInfo(layer.get_output(0).shape, from_numpy(x.dtype))
    t = tactic("gpu:pooling:max_pool_nvrtc")
    assert t.supports(ctx) is True
    want = max_pool_reference(x, window, strides, dilations, pre, post)
    got = run_tactic(t, ctx, [x])
    assert got.dtype == dtype and np.isnan(got).sum() == np.isnan(want).sum() > 0
    np.testing.assert_array_equal(got, want.astype(dtype))  # a maximum is exact in any precision


def test_max_pool_kernel_leaves_average_and_indices_to_the_reference():
    ctx = pool_context(np.zeros((1, 2, 4, 4), np.float32), "AVERAGE", (2, 2))
    assert "max pooling" in tactic("gpu:pooling:max_pool_nvrtc").supports(ctx)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape,window", [((4, 6, 7, 7), (-1, -1)), ((3, 5, 13, 1), (13, 1)), ((2, 3, 50), (-1,))])
def test_global_avg_pool_kernel_matches_float64(shape, window, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    ctx = pool_context(x, "AVERAGE", window)
    t = tactic("gpu:pooling:global_avg_pool_nvrtc")
    assert t.supports(ctx) is True
    n = len(window)
    want = x.astype(np.float64).mean(axis=tuple(range(x.ndim - n, x.ndim)), keepdims=True)
    tolerance = 1e-3 if dtype == np.float16 else 1e-6
    np.testing.assert_allclose(run_tactic(t, ctx, [x]), want, rtol=tolerance, atol=tolerance)


def test_global_avg_pool_kernel_leaves_windowed_pooling_to_the_reference():
    ctx = pool_context(np.zeros((1, 2, 4, 4), np.float32), "AVERAGE", (2, 2))
    assert "global" in tactic("gpu:pooling:global_avg_pool_nvrtc").supports(ctx)


@pytest.mark.parametrize("source,target", [(np.float32, np.float16), (np.float16, np.float32)])
def test_reformat_cast_copy_rounds_like_numpy(source, target):
    x = (RNG.standard_normal((5, 7, 3)) * 100).astype(source)
    net = NetworkDefinition()
    layer = net.add_layer(LayerType.REFORMAT, [net.add_input("x", from_numpy(x.dtype), x.shape)],
                          {"to_type": from_numpy(np.dtype(target)).value})
    ctx = TacticContext(layer, [info(x)], [TensorInfo(x.shape, from_numpy(np.dtype(target)))], "gpu")
    got = run_tactic(tactic("gpu:reformat:cast_copy"), ctx, [x], out_dtype=target)
    np.testing.assert_array_equal(got, x.astype(target))
