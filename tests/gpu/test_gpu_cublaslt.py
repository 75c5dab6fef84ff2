"""The cuBLASLt tactics (engine/tactics/gpu_cublaslt.py) on the GPU: each heuristic-ranked algorithm run directly
against float64 NumPy (bias, ReLU, GELU in cuBLASLt's epilogue, batched and broadcast operands, FP32/TF32/FP16),
then bert_tiny built with cuBLASLt as the only GEMM source against onnxruntime, replayed as a CUDA graph, and
loaded again from its plan. Skipped where nvmath-python or cuBLASLt is unavailable."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf
from shared_model_cases import CASES, MODELS, build_case, make_feeds

import engine as trt
from engine.dtypes import from_numpy
from engine.enums import ActivationType, LayerType, MatrixOperation, TacticSource
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id
from engine.tactics.base import stable_tactic_id
from engine.tactics.gpu_cublaslt import ALGORITHMS_PER_MODE, cublaslt_unavailable

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
if cublaslt_unavailable():
    pytest.skip(cublaslt_unavailable(), allow_module_level=True)
RNG = np.random.default_rng(11)
TOLERANCE = {"fp32": 1e-5, "tf32": 5e-3, "fp16": 1e-2}


def lt(mode: str, rank: int = 0):
    return tactic_by_id(stable_tactic_id(f"gpu:matmul:cublaslt_{mode}_h{rank}"))


def context(a, b, bias=None, op0=MatrixOperation.NONE, op1=MatrixOperation.NONE, alpha=1.0, beta=1.0,
            activation=None, tf32=False) -> TacticContext:
    net = NetworkDefinition()
    inputs = [net.add_input("a", from_numpy(a.dtype), a.shape), net.add_input("b", from_numpy(b.dtype), b.shape)]
    if bias is not None:
        inputs.append(net.add_constant(bias.shape, bias).get_output(0))
    layer = net.add_layer(LayerType.MATRIX_MULTIPLY, inputs, {"op0": op0, "op1": op1, "alpha": alpha, "beta": beta})
    node = Node(layer.type, layer.name, layer.params, precision=layer.precision)
    if activation is not None:
        alpha = 0.1 if activation == ActivationType.LEAKY_RELU else 0.0
        node.epilogue = Epilogue(activation=Activation(activation, alpha))
    infos = [TensorInfo(a.shape, from_numpy(a.dtype)), TensorInfo(b.shape, from_numpy(b.dtype))]
    if bias is not None:
        infos.append(TensorInfo(bias.shape, from_numpy(bias.dtype), bias))
    return TacticContext(node, infos, [TensorInfo(layer.get_output(0).shape, from_numpy(a.dtype))], "gpu",
                         {"tf32": tf32})


def run(tactic, ctx: TacticContext, arrays: list[np.ndarray]) -> np.ndarray:
    out = cupy.full(ctx.outputs[0].shape, np.nan, dtype=arrays[0].dtype)
    workspace = cupy.empty(tactic.workspace_bytes(ctx), cupy.uint8)
    tactic.run(tactic.prepare(ctx), [cupy.asarray(x) for x in arrays], [out], workspace, cupy)
    cupy.cuda.get_current_stream().synchronize()
    return cupy.asnumpy(out)


def reference(a, b, bias, op0, op1, alpha, beta, activation) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    a = a.swapaxes(-1, -2) if op0 == MatrixOperation.TRANSPOSE else a
    b = b.swapaxes(-1, -2) if op1 == MatrixOperation.TRANSPOSE else b
    y = alpha * (a @ b) + (0 if bias is None else beta * bias.astype(np.float64))
    if activation == ActivationType.RELU:
        return np.maximum(y, 0)
    if activation == ActivationType.GELU_ERF:
        return 0.5 * y * (1 + erf(y / np.sqrt(2)))
    if activation == ActivationType.GELU_TANH:
        return 0.5 * y * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y ** 3)))
    if activation == ActivationType.LEAKY_RELU:  # context() gives it alpha 0.1
        return np.where(y >= 0, y, 0.1 * y)
    return y


CASES_LT = {  # name: (a shape, b shape, op0, op1, bias shape)
    "2d_bias": ((33, 64), (64, 17), MatrixOperation.NONE, MatrixOperation.NONE, (17,)),
    "transposed_both_bias": ((64, 33), (17, 64), MatrixOperation.TRANSPOSE, MatrixOperation.TRANSPOSE, (17,)),
    "tall_shared_weight_bias": ((3, 40, 48), (48, 24), MatrixOperation.NONE, MatrixOperation.NONE, (1, 24)),
    "batched_attention_scores": ((2, 4, 16, 32), (2, 4, 32, 16), MatrixOperation.NONE, MatrixOperation.NONE, None),
    "batched_key_transposed": ((2, 4, 16, 32), (2, 4, 16, 32), MatrixOperation.NONE, MatrixOperation.TRANSPOSE,
                               None),
    "batched_transposed_a_shared_b": ((4, 32, 6), (32, 10), MatrixOperation.TRANSPOSE, MatrixOperation.NONE, None),
    "broadcast_a": ((1, 7, 32), (4, 32, 9), MatrixOperation.NONE, MatrixOperation.NONE, None),
    "scalar_bias": ((8, 16), (16, 8), MatrixOperation.NONE, MatrixOperation.NONE, (1,)),
}


@pytest.mark.parametrize("mode", ["fp32", "tf32", "fp16"])
@pytest.mark.parametrize("name", CASES_LT)
def test_every_offered_algorithm_matches_float64(name, mode):
    a_shape, b_shape, op0, op1, bias_shape = CASES_LT[name]
    dtype = np.float16 if mode == "fp16" else np.float32
    a = RNG.standard_normal(a_shape).astype(dtype)
    b = (RNG.standard_normal(b_shape) / 4).astype(dtype)
    bias = None if bias_shape is None else RNG.standard_normal(bias_shape).astype(dtype)
    ctx = context(a, b, bias, op0, op1, alpha=0.5, beta=2.0, tf32=mode == "tf32")
    want = reference(a, b, bias, op0, op1, 0.5, 2.0, None)
    ran = []
    for rank in range(ALGORITHMS_PER_MODE):
        tactic = lt(mode, rank)
        verdict = tactic.supports(ctx)
        if verdict is not True:
            assert rank > 0 and "offers" in verdict, f"{tactic.name} refused {name}: {verdict}"
            continue
        got = run(tactic, ctx, [a, b] if bias is None else [a, b, bias])
        np.testing.assert_allclose(got, want, rtol=TOLERANCE[mode], atol=TOLERANCE[mode] * np.abs(want).max(),
                                   err_msg=f"{tactic.name} on {name}")
        ran.append(rank)
    assert ran and ran[0] == 0, f"no cuBLASLt algorithm ran {name}"


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("activation", [ActivationType.RELU, ActivationType.GELU_TANH, ActivationType.GELU_ERF,
                                        ActivationType.LEAKY_RELU, None])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_epilogue_matches_float64(activation, dtype, with_bias):
    """ReLU and tanh GELU in cuBLASLt's epilogue (FP16 also absorbs the erf GELU as tanh, within 4.8e-4); FP32's
    erf GELU and LeakyReLU are applied after the GEMM by the shared helper: every variant gives the activation once."""
    a = RNG.standard_normal((48, 64)).astype(dtype)
    b = (RNG.standard_normal((64, 40)) / 4).astype(dtype)
    bias = RNG.standard_normal(40).astype(dtype) if with_bias else None
    mode = "fp16" if dtype == np.float16 else "fp32"
    ctx = context(a, b, bias, activation=activation)
    assert lt(mode).supports(ctx) is True
    want = reference(a, b, bias, MatrixOperation.NONE, MatrixOperation.NONE, 1.0, 1.0, activation)
    tolerance = TOLERANCE[mode] + (5e-4 if activation == ActivationType.GELU_ERF and mode == "fp16" else 0)
    np.testing.assert_allclose(run(lt(mode), ctx, [a, b] if bias is None else [a, b, bias]), want, rtol=tolerance,
                               atol=tolerance * max(1.0, np.abs(want).max()), err_msg=f"{activation} {dtype}")


def test_refusals_name_the_reason():
    a, b = np.ones((4, 8), np.float32), np.ones((8, 4), np.float32)
    assert "BuilderFlag.TF32" in lt("tf32").supports(context(a, b))
    assert "fp16 GEMM needs" in lt("fp16").supports(context(a, b))
    ctx = context(a, b)
    ctx.layer.epilogue = Epilogue(residual=0, activation=Activation(ActivationType.RELU))
    assert "residual" in lt("fp32").supports(ctx)
    assert "broadcast" in lt("fp32").supports(context(np.ones((2, 4, 8), np.float32),
                                                      np.ones((3, 8, 4), np.float32)))


def test_layer_shape_change_plans_again_and_stays_correct():
    """A dynamic-shape layer plans each new shape on its first run (never inside a CUDA-graph capture)."""
    tactic = lt("fp32")
    a, b = RNG.standard_normal((6, 32)).astype(np.float32), RNG.standard_normal((32, 8)).astype(np.float32)
    state = tactic.prepare(context(a, b))
    out = cupy.empty((6, 8), np.float32)
    tactic.run(state, [cupy.asarray(a), cupy.asarray(b)], [out], None, cupy)
    bigger = RNG.standard_normal((20, 32)).astype(np.float32)
    out2 = cupy.empty((20, 8), np.float32)
    tactic.run(state, [cupy.asarray(bigger), cupy.asarray(b)], [out2], None, cupy)
    np.testing.assert_allclose(cupy.asnumpy(out), a.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(cupy.asnumpy(out2), bigger.astype(np.float64) @ b, rtol=1e-5, atol=1e-4)
    assert len(state["plans"]) == 2, state["plans"].keys()


# ---------------------------------------------------------------------------------------------- bert_tiny
BERT = next(c for c in CASES if c.model == "bert_tiny")


def build_bert(fp16: bool = False) -> tuple[trt.Engine, bytes]:
    def configure(config: trt.BuilderConfig) -> None:
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        config.set_tactic_sources(1 << int(TacticSource.CUBLAS_LT))  # no cuBLAS: every GEMM on cuBLASLt

    return build_case(BERT, "gpu", configure)


def assert_matmuls_on_cublaslt(engine: trt.Engine) -> None:
    rows = [row for row in engine.layer_info() if row["type"] == LayerType.MATRIX_MULTIPLY.value]
    others = [(row["name"], row["tactic"]) for row in rows if "cublaslt" not in row["tactic"]]
    assert rows and not others, f"MatMul layers not on cuBLASLt: {others}"


def onnxruntime_outputs(feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession((MODELS / "bert_tiny.onnx").as_posix(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_bert_tiny_on_cublaslt_matches_onnxruntime_replays_and_reloads():
    import onnx

    engine, plan = build_bert()
    assert_matmuls_on_cublaslt(engine)
    model = onnx.load(MODELS / "bert_tiny.onnx")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    plain = engine.create_execution_context()
    graphed = engine.create_execution_context()
    graphed.use_cuda_graph = True
    for seed, shapes in enumerate(BERT.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        want = onnxruntime_outputs(feeds)
        got = plain.execute(feeds)
        for name, expected in zip([o.name for o in model.graph.output], want):
            np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-4, err_msg=f"{name} {shapes}")
        for _ in range(2):  # the first enqueue captures, the second replays
            replayed = graphed.execute(feeds)
        for name in got:
            np.testing.assert_array_equal(replayed[name], got[name], err_msg=f"CUDA graph replay of {name}")
    assert graphed.cuda_graph_captures == len(BERT.run_shapes), engine.logger.messages
    reloaded = trt.Runtime(trt.CapturingLogger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    assert [r["tactic"] for r in reloaded.layer_info()] == [r["tactic"] for r in engine.layer_info()]
    feeds = make_feeds(model, BERT.run_shapes[-1], 7)
    again, first = reloaded.create_execution_context().execute(feeds), plain.execute(feeds)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=f"{name} after the plan round trip")
    assert names


def test_bert_tiny_fp16_on_cublaslt_within_fp16_bounds():
    import onnx

    engine, _ = build_bert(fp16=True)
    assert_matmuls_on_cublaslt(engine)
    model = onnx.load(MODELS / "bert_tiny.onnx")
    feeds = make_feeds(model, BERT.run_shapes[-1], 3)
    got = engine.create_execution_context().execute(feeds)
    for name, expected in zip([o.name for o in model.graph.output], onnxruntime_outputs(feeds)):
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(got[name].astype(np.float64), expected, rtol=1e-2, atol=1e-2 * scale,
                                   err_msg=name)
