"""The cuDNN convolution tactics on the GPU (needs nvidia-cudnn-frontend and libcudnn 9; docs/gpu.md): every engine
the builder would time, run directly against a float64 NumPy convolution with its fused bias, residual and
activation, FP32 within 1e-4 and FP16 within 1e-2; MobileNetV2 built with only the cuDNN source for its
convolutions against onnxruntime, under CUDA-graph replay and after a plan save/load that keeps every layer's engine."""
from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conv_reference import conv_float64
from shared_model_cases import CASES, MODELS, build_case, make_feeds

import engine as trt
from engine.backends.cudnn_frontend import unavailable_reason, version_string
from engine.dtypes import from_numpy
from engine.enums import ActivationType, LayerType, TacticSource
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactics_for

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(11)


@pytest.fixture(autouse=True)
def _cudnn_usable():
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"cuDNN is not usable here ({reason}); install the nvidia-cudnn-frontend wheel (docs/gpu.md)")


def reference(x, w, b, stride, dilation, pre, post, groups, residual=None, activation=None) -> np.ndarray:
    """float64 N-D grouped convolution (1-D or 2-D), + bias, + residual, then the activation."""
    y = conv_float64(x, w, b, stride, dilation, pre, post, groups)
    if residual is not None:
        y += residual.astype(np.float64)
    if activation is not None:
        kind, alpha, beta = activation
        y = {"RELU": lambda v: np.maximum(v, 0), "LEAKY_RELU": lambda v: np.where(v >= 0, v, alpha * v),
             "CLIP": lambda v: np.clip(v, alpha, beta), "SIGMOID": lambda v: 1 / (1 + np.exp(-v)),
             "TANH": np.tanh, "ELU": lambda v: np.where(v > 0, v, alpha * (np.exp(v) - 1)),
             "GELU_ERF": lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))}[kind](y)
    return y


def context(x, w, b, stride, dilation, pre, post, groups, residual=None, activation=None) -> TacticContext:
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", from_numpy(x.dtype), x.shape), w.shape[0], w.shape[2:], w, b)
    layer.stride_nd, layer.dilation_nd, layer.num_groups = list(stride), list(dilation), groups
    layer.pre_padding, layer.post_padding = list(pre), list(post)
    epilogue = Epilogue(residual=3 if residual is not None else None,
                        activation=None if activation is None else Activation(ActivationType(activation[0]),
                                                                              activation[1], activation[2]))
    node = Node(layer.type, "conv", layer.params, precision=layer.precision, epilogue=epilogue)
    dtype = from_numpy(x.dtype)
    inputs = [TensorInfo(x.shape, dtype), TensorInfo(w.shape, dtype, w),
              None if b is None else TensorInfo(b.shape, dtype, b)]
    if residual is not None:
        inputs.append(TensorInfo(residual.shape, dtype))
    return TacticContext(node, inputs, [TensorInfo(layer.get_output(0).shape, dtype)], "gpu")


def cudnn_engines() -> list:
    return [t for t in tactics_for(LayerType.CONVOLUTION, "gpu") if t.source == TacticSource.CUDNN]


CASES_2D = {  # name: (x shape, K, groups, kernel, stride, dilation, pre, post, residual, activation)
    "3x3_bias_relu": ((2, 8, 9, 8), 16, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), False, ("RELU", 0, 0)),
    "1x1_residual_relu": ((2, 16, 7, 7), 16, 1, (1, 1), (1, 1), (1, 1), (0, 0), (0, 0), True, ("RELU", 0, 0)),
    "3x3_residual_no_activation": ((1, 8, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), True, None),
    "grouped_strided_dilated": ((2, 8, 11, 10), 12, 2, (3, 3), (2, 1), (1, 2), (1, 0), (2, 1), False, None),
    "depthwise_clip6": ((2, 16, 9, 9), 16, 16, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1), False, ("CLIP", 0, 6)),
    "5x5_leaky": ((1, 4, 12, 11), 8, 1, (5, 5), (1, 2), (2, 1), (2, 0), (1, 3), False, ("LEAKY_RELU", 0.1, 0)),
    "sigmoid": ((2, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), False, ("SIGMOID", 0, 0)),
    "tanh": ((2, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), False, ("TANH", 0, 0)),
    "gelu": ((2, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), False, ("GELU_ERF", 0, 0)),
    "elu_after_the_graph": ((2, 4, 6, 6), 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1), True, ("ELU", 1.0, 0)),
    "1d_strided": ((2, 6, 20), 8, 1, (3,), (2,), (1,), (1,), (1,), False, ("RELU", 0, 0)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", CASES_2D)
def test_every_candidate_engine_matches_float64(name, dtype):
    shape, maps, groups, kernel, stride, dilation, pre, post, with_residual, activation = CASES_2D[name]
    x = RNG.standard_normal(shape).astype(dtype)
    w = (RNG.standard_normal((maps, shape[1] // groups, *kernel)) / math.sqrt(math.prod(kernel))).astype(dtype)
    b = RNG.standard_normal(maps).astype(dtype)
    ctx0 = context(x, w, b, stride, dilation, pre, post, groups)
    residual = RNG.standard_normal(ctx0.outputs[0].shape).astype(dtype) if with_residual else None
    ctx = context(x, w, b, stride, dilation, pre, post, groups, residual, activation)
    want = reference(x, w, b, stride, dilation, pre, post, groups, residual, activation)
    tolerance = 1e-2 if dtype == np.float16 else 1e-4
    ran, reasons = [], {}
    for tactic in cudnn_engines():
        ok = tactic.supports(ctx)
        if ok is not True:
            reasons.setdefault(ok, tactic.name)
            continue
        out = cupy.full(ctx.outputs[0].shape, np.nan, dtype=dtype)
        nbytes = tactic.workspace_bytes(ctx)
        workspace = cupy.empty(nbytes, cupy.uint8) if nbytes else None
        inputs = [cupy.asarray(a) for a in (x, w, b)] + ([cupy.asarray(residual)] if with_residual else [])
        tactic.run(tactic.prepare(ctx), inputs, [out], workspace, cupy)
        got = cupy.asnumpy(out)
        np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance,
                                   err_msg=f"{tactic.name} (cuDNN {version_string()}) on {name} {np.dtype(dtype)}")
        ran.append(tactic.name)
    assert ran, f"no cuDNN engine supports {name} {np.dtype(dtype)} (cuDNN {version_string()}): " \
                f"{list(reasons)[:3]}"


class CudnnConvolutions(trt.IAlgorithmSelector):
    """Convolutions only on cuDNN engines (an empty choice is a BuildError listing what was offered); other layers
    keep every tactic, so the cuBLAS GEMM of the classifier stays capturable in a CUDA graph."""

    def select_algorithms(self, context, choices):
        if context.layer_type != "CONVOLUTION":
            return list(range(len(choices)))
        return [i for i, a in enumerate(choices) if a.tactic_name.startswith("gpu:conv:cudnn_engine")]

    def report_algorithms(self, contexts, choices):
        pass


def build_mobilenet(sources: int | None = None, selector=None, level: int = 2) -> tuple[trt.Engine, bytes]:
    def configure(config: trt.BuilderConfig) -> None:
        config.builder_optimization_level = level
        config.algorithm_selector = selector
        if sources is not None:
            config.set_tactic_sources(sources)

    return build_case(CASES[0], "gpu", configure)


def conv_tactics(engine: trt.Engine) -> dict[str, str]:
    return {row["name"]: row["tactic"] for row in engine.layer_info() if row["type"] == "CONVOLUTION"}


def test_mobilenet_on_cudnn_convolutions_matches_onnxruntime_replays_and_reloads():
    engine, plan = build_mobilenet(selector=CudnnConvolutions())
    tactics = conv_tactics(engine)
    assert tactics and all(t.startswith("gpu:conv:cudnn_engine") for t in tactics.values()), tactics
    case = CASES[0]
    model = onnx.load(MODELS / f"{case.model}.onnx")
    session = ort.InferenceSession((MODELS / f"{case.model}.onnx").as_posix(), providers=["CPUExecutionProvider"])
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    reloaded = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    assert conv_tactics(reloaded) == tactics  # the plan keeps every layer's cuDNN engine
    again = reloaded.create_execution_context()
    for seed, shapes in enumerate(case.run_shapes):  # batch 1 and 3: the engines are rebuilt at run shapes
        feeds = make_feeds(model, shapes, seed)
        want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        got, loaded = plain.execute(feeds), again.execute(feeds)
        graphed.execute(feeds)  # runs and captures
        replayed = graphed.execute(feeds)
        for name, reference_output in want.items():
            np.testing.assert_allclose(got[name], reference_output, rtol=1e-4, atol=1e-4,
                                       err_msg=f"cuDNN {version_string()} engines {sorted(set(tactics.values()))} "
                                               f"at {shapes}")
            np.testing.assert_array_equal(replayed[name], got[name], err_msg="CUDA-graph replay differs")
            np.testing.assert_array_equal(loaded[name], got[name], err_msg="the reloaded plan differs")
    assert graphed.cuda_graph_captures == len(case.run_shapes), engine.logger.messages


def test_cudnn_source_alone_builds_mobilenet_and_without_it_no_layer_uses_it():
    only, _ = build_mobilenet(1 << int(TacticSource.CUDNN), level=1)
    assert all(t.startswith("gpu:conv:cudnn_engine") for t in conv_tactics(only).values()), conv_tactics(only)
    engine, _ = build_mobilenet(sum(1 << int(s) for s in TacticSource if s != TacticSource.CUDNN), level=1)
    assert not any(t.startswith("gpu:conv:cudnn") for t in conv_tactics(engine).values())
