"""The cuBLASLt 1x1-convolution tactics (engine/tactics/gpu_cublaslt_conv.py) on the GPU: every heuristic-ranked
algorithm on HWC tensors against float64 NumPy (bias, residual as the C operand, ReLU/GELU in the epilogue or
after it, FP32/TF32/FP16), operands not laid out NHWC (copied), then networks built channels-last: a pointwise
block with cuBLASLt as the only HWC convolution source, and the ResNet-like test model with cuDNN beside it, both
against onnxruntime, replayed as CUDA graphs and reloaded from the plan. Skipped where nvmath-python or cuBLASLt
is unavailable (docs/gpu.md)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from channels_last_models import feeds as resnet_feeds
from channels_last_models import pointwise_block_model, resnet_like_model
from conv_reference import conv_float64
from scipy.special import erf

import engine as trt
from engine.enums import ActivationType, LayerType, TacticSource, TensorFormat
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id
from engine.tactics.base import stable_tactic_id
from engine.tactics.gpu_cublaslt import ALGORITHMS_PER_MODE, cublaslt_unavailable
from engine.tensor_formats import empty_in_format, is_channels_last

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
if cublaslt_unavailable():
    pytest.skip(cublaslt_unavailable(), allow_module_level=True)
HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
RNG = np.random.default_rng(19)
TOLERANCE = {"fp32": 1e-5, "tf32": 5e-3, "fp16": 1e-2}


def lt_conv(mode: str, rank: int = 0):
    return tactic_by_id(stable_tactic_id(f"gpu:conv:cublaslt_nhwc_{mode}_h{rank}"))


def context(x, w, b, residual, activation, tf32=False, stride=(1, 1)) -> TacticContext:
    """A 1x1 convolution of x (NCHW dims) with kernel w, bias b (or None), a fused residual at input 3 (or None)
    and a fused activation (LeakyReLU with alpha 0.1)."""
    kind = trt.DataType.HALF if x.dtype == np.float16 else trt.DataType.FLOAT
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", kind, x.shape), w.shape[0], (1, 1), w, b)
    layer.stride_nd = list(stride)
    epilogue = Epilogue(residual=None if residual is None else 3,
                        activation=None if activation is None else Activation(activation, 0.1))
    node = Node(layer.type, "conv1x1", layer.params, precision=kind, epilogue=epilogue)
    y_shape = tuple(layer.get_output(0).shape)
    inputs = [TensorInfo(x.shape, kind), TensorInfo(w.shape, kind, w),
              None if b is None else TensorInfo(b.shape, kind, b)]
    formats = [HWC, LINEAR, None if b is None else LINEAR]
    if residual is not None:
        inputs.append(TensorInfo(residual.shape, kind))
        formats.append(HWC)
    return TacticContext(node, inputs, [TensorInfo(y_shape, kind)], "gpu", {"tf32": tf32},
                         input_formats=tuple(formats), output_formats=(HWC,))


def reference(x, w, b, residual, activation, stride=(1, 1)) -> np.ndarray:
    """ONNX's order in float64: conv + bias + residual, then the activation."""
    y = conv_float64(x, w, b, stride, (1, 1), (0, 0), (0, 0), 1)
    if residual is not None:
        y = y + residual.astype(np.float64)
    if activation == ActivationType.RELU:
        return np.maximum(y, 0)
    if activation == ActivationType.GELU_ERF:
        return 0.5 * y * (1 + erf(y / np.sqrt(2)))
    if activation == ActivationType.LEAKY_RELU:
        return np.where(y >= 0, y, 0.1 * y)
    return y


def on_device(array: np.ndarray | None, tensor_format: TensorFormat = HWC):
    if array is None:
        return None
    device = empty_in_format(cupy, array.shape, array.dtype, tensor_format)
    device[...] = cupy.asarray(array)
    return device


def run(tactic, ctx, x, w, b, residual, x_format=HWC, r_format=HWC, out_format=HWC) -> np.ndarray:
    out = empty_in_format(cupy, ctx.outputs[0].shape, x.dtype, out_format)
    out[...] = np.nan
    inputs = [on_device(x, x_format), cupy.asarray(w), None if b is None else cupy.asarray(b)]
    if residual is not None:
        inputs.append(on_device(residual, r_format))
    tactic.run(tactic.prepare(ctx), inputs, [out], cupy.empty(tactic.workspace_bytes(ctx), cupy.uint8), cupy)
    cupy.cuda.get_current_stream().synchronize()
    assert out_format != HWC or is_channels_last(out), "the output must stay in its NHWC buffer"
    return cupy.asnumpy(out)


def operands(dtype, with_bias=True, with_residual=True, shape=(2, 24, 7, 9), maps=40):
    x = RNG.standard_normal(shape).astype(dtype)
    w = (RNG.standard_normal((maps, shape[1], 1, 1)) / 4).astype(dtype)
    b = RNG.standard_normal(maps).astype(dtype) if with_bias else None
    r = RNG.standard_normal((shape[0], maps, *shape[2:])).astype(dtype) if with_residual else None
    return x, w, b, r


@pytest.mark.parametrize("mode", ["fp32", "tf32", "fp16"])
def test_every_offered_algorithm_runs_conv_bias_residual_relu(mode):
    dtype = np.float16 if mode == "fp16" else np.float32
    x, w, b, r = operands(dtype)
    ctx = context(x, w, b, r, ActivationType.RELU, tf32=mode == "tf32")
    want = reference(x, w, b, r, ActivationType.RELU)
    ran = []
    for rank in range(ALGORITHMS_PER_MODE):
        tactic = lt_conv(mode, rank)
        verdict = tactic.supports(ctx)
        if verdict is not True:
            assert rank > 0 and "offers" in verdict, f"{tactic.name} refused a 1x1 HWC conv: {verdict}"
            continue
        np.testing.assert_allclose(run(tactic, ctx, x, w, b, r), want, rtol=TOLERANCE[mode],
                                   atol=TOLERANCE[mode] * np.abs(want).max(),
                                   err_msg=f"{tactic.name}: conv + bias + residual -> ReLU on NHWC memory")
        ran.append(rank)
    assert ran and ran[0] == 0, f"no cuBLASLt algorithm ran the 1x1 convolution in {mode}"


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("activation", [ActivationType.RELU, ActivationType.GELU_ERF, ActivationType.LEAKY_RELU,
                                        None])
@pytest.mark.parametrize("with_bias, with_residual", [(True, True), (False, True), (True, False), (False, False)])
def test_epilogue_variants_match_float64(dtype, activation, with_bias, with_residual):
    """Bias and ReLU in cuBLASLt's epilogue, the residual as C with beta 1 (before the activation), FP16's erf
    GELU as cuBLASLt's tanh one (within 4.8e-4), FP32's erf GELU and LeakyReLU applied after the GEMM."""
    x, w, b, r = operands(dtype, with_bias, with_residual)
    mode = "fp16" if dtype == np.float16 else "fp32"
    ctx = context(x, w, b, r, activation)
    assert lt_conv(mode).supports(ctx) is True
    want = reference(x, w, b, r, activation)
    tolerance = TOLERANCE[mode] + (5e-4 if activation == ActivationType.GELU_ERF and mode == "fp16" else 0)
    np.testing.assert_allclose(run(lt_conv(mode), ctx, x, w, b, r), want, rtol=tolerance,
                               atol=tolerance * max(1.0, np.abs(want).max()),
                               err_msg=f"{activation} bias={with_bias} residual={with_residual} {np.dtype(dtype)}")


def test_operands_not_laid_out_nhwc_are_copied_not_misread():
    """An input, a residual and an output in NCHW memory (the tactic is handed HWC-shaped views elsewhere, but a
    caller may give plain arrays): the result is still the convolution, via copies."""
    x, w, b, r = operands(np.float32)
    ctx = context(x, w, b, r, ActivationType.RELU)
    got = run(lt_conv("fp32"), ctx, x, w, b, r, x_format=LINEAR, r_format=LINEAR, out_format=LINEAR)
    np.testing.assert_allclose(got, reference(x, w, b, r, ActivationType.RELU), rtol=1e-5, atol=1e-4)


def test_a_broadcast_residual_is_added_through_the_output():
    x, w, b, _ = operands(np.float32)
    r = RNG.standard_normal((1, 40, 1, 9)).astype(np.float32)  # broadcast over batch and rows
    ctx = context(x, w, b, r, ActivationType.RELU)
    out = empty_in_format(cupy, ctx.outputs[0].shape, np.float32, HWC)
    inputs = [on_device(x), cupy.asarray(w), cupy.asarray(b), cupy.asarray(r)]
    tactic = lt_conv("fp32")
    tactic.run(tactic.prepare(ctx), inputs, [out], cupy.empty(tactic.workspace_bytes(ctx), cupy.uint8), cupy)
    np.testing.assert_allclose(cupy.asnumpy(out), reference(x, w, b, r, ActivationType.RELU), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", ["fp32", "fp16"])
@pytest.mark.parametrize("stride", [(2, 2), (2, 1), (3, 3)])
def test_a_strided_1x1_convolution_gathers_its_pixels_then_runs_the_gemm(mode, stride):
    """ResNet's downsample convolutions: the pixels at the stride gathered into the workspace's tail (odd sizes:
    the last row and column are read), then the GEMM with bias, residual and ReLU; also with no workspace given."""
    dtype = np.float16 if mode == "fp16" else np.float32
    x, w, b, _ = operands(dtype, with_residual=False, shape=(2, 24, 9, 7))
    y_shape = (2, 40, -(-9 // stride[0]), -(-7 // stride[1]))
    r = RNG.standard_normal(y_shape).astype(dtype)
    ctx = context(x, w, b, r, ActivationType.RELU, stride=stride)
    assert tuple(ctx.outputs[0].shape) == y_shape
    tactic = lt_conv(mode)
    assert tactic.supports(ctx) is True, tactic.supports(ctx)
    assert tactic.workspace_bytes(ctx) > lt_conv(mode).workspace_bytes(context(x, w, b, None, None))
    want = reference(x, w, b, r, ActivationType.RELU, stride)
    np.testing.assert_allclose(run(tactic, ctx, x, w, b, r), want, rtol=TOLERANCE[mode],
                               atol=TOLERANCE[mode] * np.abs(want).max(), err_msg=f"stride {stride}")
    out = empty_in_format(cupy, y_shape, dtype, HWC)
    tactic.run(tactic.prepare(ctx), [on_device(x), None, None, on_device(r)], [out], None, cupy)
    np.testing.assert_allclose(cupy.asnumpy(out), want, rtol=TOLERANCE[mode], atol=TOLERANCE[mode] * np.abs(want).max(),
                               err_msg=f"stride {stride}, no workspace given")


def test_a_new_batch_size_plans_again_and_stays_correct():
    x, w, b, r = operands(np.float32)
    ctx = context(x, w, b, r, None)
    tactic = lt_conv("fp32")
    state = tactic.prepare(ctx)
    for batch in (2, 5):
        xb, _, _, rb = operands(np.float32, shape=(batch, 24, 7, 9))
        out = empty_in_format(cupy, (batch, 40, 7, 9), np.float32, HWC)
        tactic.run(state, [on_device(xb), None, None, on_device(rb)], [out], None, cupy)
        np.testing.assert_allclose(cupy.asnumpy(out), reference(xb, w, b, rb, None), rtol=1e-5, atol=1e-4,
                                   err_msg=f"batch {batch}")
    assert len(state["plans"]) == 2, state["plans"].keys()


# ------------------------------------------------------------------------------------------- networks
def build(model: onnx.ModelProto, sources: int | None = None, fp16: bool = False) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "gpu", True, 2
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if sources is not None:
        config.set_tactic_sources(sources)
    shape = list(network.get_input(0).shape)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", *[(b, *shape[1:]) for b in (1, 2, 4)])
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def check_against_onnxruntime(model, plan, feeds_for, outputs, tolerance) -> list[dict]:
    """Outputs within `tolerance` of onnxruntime at batch 1 and 3, CUDA-graph replay bit-equal, the reloaded plan
    bit-equal; returns the engine's layer rows."""
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    reloaded = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan).create_execution_context()
    for batch in (1, 3):
        feeds = feeds_for(batch)
        want = dict(zip(outputs, session.run(outputs, feeds)))
        got = plain.execute(feeds)
        graphed.execute(feeds)  # the first enqueue at a shape captures, the second replays
        replayed, again = graphed.execute(feeds), reloaded.execute(feeds)
        for name in outputs:
            np.testing.assert_allclose(got[name].astype(np.float64), want[name], rtol=tolerance, atol=tolerance,
                                       err_msg=f"{name} at batch {batch}")
            np.testing.assert_array_equal(replayed[name], got[name], err_msg=f"CUDA-graph replay of {name}")
            np.testing.assert_array_equal(again[name], got[name], err_msg=f"{name} after the plan round trip")
    assert graphed.cuda_graph_captures >= 2, "the engine must replay as a CUDA graph (a tactic not capturable?)"
    return engine.layer_info()


@pytest.mark.parametrize("fp16", [False, True])
def test_pointwise_block_runs_hwc_on_cublaslt_alone(fp16):
    """cuDNN's source off: the only HWC convolution tactics are this module's, and they take every conv."""
    model = pointwise_block_model()
    sources = sum(1 << int(s) for s in TacticSource if s != TacticSource.CUDNN)
    plan = build(model, sources, fp16)
    rows = check_against_onnxruntime(
        model, plan, lambda n: {"x": np.random.default_rng(n).standard_normal((n, 16, 10, 10)).astype(np.float32)},
        ["y"], 2e-2 if fp16 else 1e-4)
    convs = {r["name"]: r["tactic"] for r in rows if r["type"] == LayerType.CONVOLUTION.value}
    assert len(convs) == 2 and all(t.startswith("gpu:conv:cublaslt_nhwc_") for t in convs.values()), convs
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    assert any(t.format == HWC for t in engine.graph.tensors), "the block must run channels-last"


@pytest.mark.parametrize("fp16", [False, True])
def test_resnet_like_1x1_convs_take_cudnn_or_cublaslt_and_match_onnxruntime(fp16):
    from engine.backends.cudnn_frontend import unavailable_reason

    if unavailable_reason() is not None:
        pytest.skip(f"cuDNN is not usable here ({unavailable_reason()})")
    model = resnet_like_model()
    plan = build(model, fp16=fp16)
    rows = check_against_onnxruntime(model, plan, lambda n: resnet_feeds(n, seed=n), ["y", "block_out"],
                                     2e-2 if fp16 else 1e-4)
    convs = {r["name"]: r["tactic"] for r in rows if r["type"] == LayerType.CONVOLUTION.value}
    assert convs["conv3"].startswith(("gpu:conv:cudnn_engine", "gpu:conv:cublaslt_nhwc_")), convs  # the 1x1
    assert all(convs[n].startswith("gpu:conv:cudnn_engine") for n in ("conv1", "conv2", "conv4")), convs
