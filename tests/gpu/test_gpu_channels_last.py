"""Channels-last convolution chains on the GPU (BuilderConfig.channels_last; docs/formats.md): every cuDNN engine
run on NHWC memory against float64 NumPy; the NHWC pooling kernels against NumPy; the ResNet-like test model and
MobileNetV2 built channels-last on cuDNN convolutions against onnxruntime (FP32 within 1e-4, FP16 within 2e-2),
under CUDA-graph replay and after a plan reload; HWC tensors really laid out NHWC in device memory; no chain
without cuDNN; channels_last "auto" (the timed choice per chain) against onnxruntime. Needs nvidia-cudnn-frontend
and libcudnn 9 (docs/gpu.md)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from channels_last_models import feeds as model_feeds
from channels_last_models import resnet_like_model
from shared_model_cases import CASES, MODELS, make_feeds

import engine as trt
from engine.backends.cudnn_frontend import unavailable_reason, version_string
from engine.enums import ActivationType, LayerType, TacticSource, TensorFormat
from engine.ir import Activation, Epilogue, Node
from engine.network import NetworkDefinition
from engine.ops.base import TensorInfo
from engine.tactics import TacticContext, tactic_by_id, tactics_for
from engine.tensor_formats import empty_in_format, is_channels_last

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR


@pytest.fixture(autouse=True)
def _cudnn_usable():
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"cuDNN is not usable here ({reason}); install the nvidia-cudnn-frontend wheel (docs/gpu.md)")


def _hwc_on_device(array: np.ndarray):
    device = empty_in_format(cupy, array.shape, array.dtype, HWC)
    device[...] = cupy.asarray(array)
    return device


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_every_cudnn_engine_runs_an_nhwc_fused_conv(dtype) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 9, 9)).astype(dtype)
    w = (rng.standard_normal((32, 16, 3, 3)) / 12).astype(dtype)
    b = rng.standard_normal(32).astype(dtype)
    net = NetworkDefinition()
    layer = net.add_convolution_nd(net.add_input("x", trt.DataType.FLOAT, x.shape), 32, (3, 3), w, b)
    layer.padding_nd = [1, 1]
    epilogue = Epilogue(residual=3, activation=Activation(ActivationType.RELU))
    node = Node(layer.type, "conv", layer.params, precision=trt.DataType.FLOAT, epilogue=epilogue)
    kind = trt.DataType.HALF if dtype == np.float16 else trt.DataType.FLOAT
    y_shape = (2, 32, 9, 9)
    residual = rng.standard_normal(y_shape).astype(dtype)
    ctx = TacticContext(node, [TensorInfo(x.shape, kind), TensorInfo(w.shape, kind, w), TensorInfo(b.shape, kind, b),
                               TensorInfo(y_shape, kind)], [TensorInfo(y_shape, kind)], "gpu",
                        input_formats=(HWC, LINEAR, LINEAR, HWC), output_formats=(HWC,))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    padded = np.pad(x64, [(0, 0), (0, 0), (1, 1), (1, 1)])
    conv = sum(np.einsum("nchw,kc->nkhw", padded[:, :, i:i + 9, j:j + 9], w64[:, :, i, j])
               for i in range(3) for j in range(3))
    want = np.maximum(conv + b.reshape(1, -1, 1, 1) + residual, 0)
    tolerance = 2e-2 if dtype == np.float16 else 1e-4
    ran = []
    for tactic in (t for t in tactics_for(LayerType.CONVOLUTION, "gpu") if t.source == TacticSource.CUDNN):
        if tactic.supports(ctx) is not True:
            continue
        out = empty_in_format(cupy, y_shape, dtype, HWC)
        out[...] = np.nan
        nbytes = tactic.workspace_bytes(ctx)
        inputs = [_hwc_on_device(x), cupy.asarray(w), cupy.asarray(b), _hwc_on_device(residual)]
        tactic.run(tactic.prepare(ctx), inputs, [out], cupy.empty(nbytes, cupy.uint8) if nbytes else None, cupy)
        assert is_channels_last(out), "the output must stay in its NHWC buffer"
        np.testing.assert_allclose(cupy.asnumpy(out), want, rtol=tolerance, atol=tolerance,
                                   err_msg=f"{tactic.name} (cuDNN {version_string()}) NHWC {np.dtype(dtype)}")
        ran.append(tactic.name)
    assert ran, f"no cuDNN {version_string()} engine runs the NHWC conv+bias+residual+ReLU graph"


def _numpy_max_pool(x, kernel, stride, pre, post, dilation):
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pre[0], post[0]), (pre[1], post[1])],
                    constant_values=-np.inf)
    rows = (padded.shape[2] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    cols = (padded.shape[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    taps = [padded[:, :, i * dilation[0]:i * dilation[0] + stride[0] * (rows - 1) + 1:stride[0],
                   j * dilation[1]:j * dilation[1] + stride[1] * (cols - 1) + 1:stride[1]]
            for i in range(kernel[0]) for j in range(kernel[1])]
    return np.max(taps, axis=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_nhwc_pooling_kernels_match_numpy(dtype) -> None:
    """Max pooling (padding, stride 2, dilation) and global average pooling on HWC tensors, written into an HWC
    output in place and into a LINEAR one through a copy (C = 40: FP16 max pooling runs four channels a thread)."""
    from engine.network import NetworkDefinition as Net
    from engine.tactics.gpu_pooling import GlobalAvgPoolNvrtc, MaxPoolNvrtc

    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 40, 11, 9)).astype(dtype)
    x[1, 13, 4, 5] = np.nan  # a NaN propagates through its windows (and its plane's mean), lane by lane
    net = Net()
    pool = net.add_pooling_nd(net.add_input("x", trt.DataType.FLOAT, x.shape), trt.PoolingType.MAX, (3, 2))
    pool.stride_nd, pool.pre_padding, pool.post_padding, pool.dilation_nd = [2, 2], [1, 0], [1, 1], [1, 2]
    want = _numpy_max_pool(x, (3, 2), (2, 2), (1, 0), (1, 1), (1, 2))
    kind = trt.DataType.HALF if dtype == np.float16 else trt.DataType.FLOAT
    for tactic, layer, expected in (
            (MaxPoolNvrtc(), pool, want),
            (GlobalAvgPoolNvrtc(), net.add_pooling_nd(net.add_input("z", trt.DataType.FLOAT, x.shape),
                                                      trt.PoolingType.AVERAGE, (11, 9)),
             x.astype(np.float64).mean(axis=(2, 3), keepdims=True))):
        node = Node(layer.type, "pool", layer.params, precision=kind)
        for out_format in (HWC, LINEAR):
            ctx = TacticContext(node, [TensorInfo(x.shape, kind)], [TensorInfo(expected.shape, kind)], "gpu",
                                input_formats=(HWC,), output_formats=(out_format,))
            assert tactic.supports(ctx) is True
            out = empty_in_format(cupy, expected.shape, dtype, out_format)
            out[...] = np.nan
            tactic.run(tactic.prepare(ctx), [_hwc_on_device(x)], [out], None, cupy)
            tolerance = 1e-2 if dtype == np.float16 else 1e-5
            np.testing.assert_allclose(cupy.asnumpy(out), expected, rtol=tolerance, atol=tolerance,
                                       err_msg=f"{tactic.name} NHWC -> {out_format.value} {np.dtype(dtype)}")


@pytest.mark.parametrize("channels", [40, 6])  # four channels per thread (C % 4 == 0), and one byte per thread
@pytest.mark.parametrize("in_format", ["HWC", "LINEAR"])
def test_int8_max_pooling_equals_numpy(channels, in_format) -> None:
    """The MaxPool of INT8 networks moves quantized values: the NHWC (x4 and bytewise) and NCHW int8 kernels give
    NumPy's maximum exactly, padding included."""
    from engine.network import NetworkDefinition as Net
    from engine.tactics.gpu_pooling import MaxPoolNvrtc

    x = np.random.default_rng(9).integers(-128, 128, (2, channels, 11, 9)).astype(np.int8)
    net = Net()
    pool = net.add_pooling_nd(net.add_input("x", trt.DataType.FLOAT, x.shape), trt.PoolingType.MAX, (3, 3))
    pool.stride_nd, pool.pre_padding, pool.post_padding = [2, 2], [1, 1], [1, 1]
    want = _numpy_max_pool(x, (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)).astype(np.int8)
    node = Node(pool.type, "pool", pool.params)
    fmt = HWC if in_format == "HWC" else LINEAR
    ctx = TacticContext(node, [TensorInfo(x.shape, trt.DataType.INT8)], [TensorInfo(want.shape, trt.DataType.INT8)],
                        "gpu", input_formats=(fmt,), output_formats=(fmt,))
    tactic = MaxPoolNvrtc()
    assert tactic.supports(ctx) is True
    x_device = _hwc_on_device(x) if fmt == HWC else cupy.asarray(x)
    out = empty_in_format(cupy, want.shape, np.int8, fmt)
    out[...] = 55
    tactic.run(tactic.prepare(ctx), [x_device], [out], None, cupy)
    np.testing.assert_array_equal(cupy.asnumpy(out), want)


def build(model: onnx.ModelProto, name: str, batch: tuple, fp16: bool = False, channels_last=True) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "gpu", channels_last, 2
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    shape = list(network.get_input(0).shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(name, *[(b, *shape[1:]) for b in batch])
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


class _Layouts(trt.IDebugListener):
    def __init__(self):
        self.seen: dict[str, bool] = {}

    def process_debug_tensor(self, name, array, layer) -> None:
        self.seen[name] = array.ndim == 4 and is_channels_last(array)


@pytest.mark.parametrize("fp16", [False, True])
def test_resnet_like_channels_last_on_cudnn_matches_onnxruntime(fp16) -> None:
    model = resnet_like_model()
    plan = build(model, "x", (1, 2, 4), fp16)
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    rows = {r["name"]: r for r in engine.layer_info()}
    convs = {n: r["tactic"] for n, r in rows.items() if r["type"] == "CONVOLUTION"}
    # conv3, the 1x1, may run as a cuBLASLt GEMM (gpu_cublaslt_conv.py) where nvmath-python is installed
    assert all(t.startswith("gpu:conv:cudnn_engine") or (n == "conv3" and t.startswith("gpu:conv:cublaslt_nhwc_"))
               for n, t in convs.items()), convs
    # the pools run HWC inside the chain, on whichever HWC tactic timed fastest (an H200 took the reference max
    # pool at this size in FP32, the NVRTC one in FP16)
    for name in ("pool", "gap"):
        assert HWC in tactic_by_id(rows[name]["tactic_id"]).formats, rows[name]
    formats = {t.name: t.format for t in engine.graph.tensors}
    # as on the CPU (channels_last_models.py, test_channels_last.py): the pools run NHWC inside the chains; in
    # FP16 the chain's block_out is the HALF tensor that the FLOAT output is converted from
    inner = "block_out:half:hwc" if fp16 else "block_out:hwc"
    assert all(formats[name] == HWC for name in ("r1", "p1", "r2", inner, "c4", "gap:hwc")), formats
    assert formats["block_out"] == LINEAR and formats["gap"] == LINEAR
    assert sum(r["type"] == "REFORMAT" for r in engine.layer_info()) == (6 if fp16 else 4)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    layouts = _Layouts()
    watched = engine.create_execution_context()
    watched.set_debug_listener(layouts)
    tolerance = 2e-2 if fp16 else 1e-4
    for batch in (1, 3):
        feeds = model_feeds(batch, seed=batch)
        want = dict(zip(["y", "block_out"], session.run(["y", "block_out"], feeds)))
        got = plain.execute(feeds)
        graphed.execute(feeds)
        replayed = graphed.execute(feeds)
        watched.execute(feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=tolerance, atol=tolerance,
                                       err_msg=f"{name}, cuDNN {version_string()}, "
                                               f"engines {sorted(set(convs.values()))}")
            np.testing.assert_array_equal(replayed[name], got[name], err_msg="CUDA-graph replay differs")
    assert layouts.seen["r2"], "an HWC tensor must lie NHWC in device memory"


def test_resnet_like_channels_last_auto_matches_onnxruntime() -> None:
    """channels_last "auto" on the GPU (engine/channels_last_choice.py): both chains timed LINEAR and HWC on the
    device, the choice recorded; whatever it chose, the plan's HWC tensors are those of the chosen chains and the
    FP32 outputs are within 1e-4 of onnxruntime, also under CUDA-graph replay."""
    from engine.plan import deserialize_plan

    model = resnet_like_model()
    plan = build(model, "x", (1, 2, 4), channels_last="auto")
    chains = deserialize_plan(plan)[1]["channels_last"]["chains"]
    assert [(c["first"], c["layers"]) for c in chains] == [("conv1", 4), ("conv4", 2)], chains
    assert all(c["linear_ms"] > 0 and c["hwc_ms"] > 0 for c in chains), chains
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    formats = {t.name: t.format for t in engine.graph.tensors}
    for chain, inner in zip(chains, ("r2", "c4")):
        assert formats[inner] == (HWC if chain["hwc"] else LINEAR), (chain, formats)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    for batch in (1, 3):
        feeds = model_feeds(batch, seed=batch + 7)
        want = dict(zip(["y", "block_out"], session.run(["y", "block_out"], feeds)))
        got = plain.execute(feeds)
        graphed.execute(feeds)
        replayed = graphed.execute(feeds)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4,
                                       err_msg=f"{name}, auto choice {chains}, cuDNN {version_string()}")
            np.testing.assert_array_equal(replayed[name], got[name], err_msg="CUDA-graph replay differs")


def test_mobilenet_v2_channels_last_matches_onnxruntime() -> None:
    case = CASES[0]
    path = MODELS / f"{case.model}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is absent (set POLYX_MODELS_DIR to the folder holding the shared models)")
    model = onnx.load(path)
    plan = build(model, "input", (1, 2, 4))
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan)
    reformats = [r for r in engine.layer_info() if r["type"] == "REFORMAT"]
    hwc = [t.name for t in engine.graph.tensors if t.format == HWC]
    assert len(reformats) == 2 and len(hwc) > 50, (len(reformats), len(hwc))  # no pooling inside its body
    session = ort.InferenceSession(path.as_posix(), providers=["CPUExecutionProvider"])
    context = engine.create_execution_context()
    reloaded = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan).create_execution_context()
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        want = session.run(None, feeds)[0]
        got = context.execute(feeds)["output"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=f"cuDNN {version_string()} at {shapes}")
        np.testing.assert_array_equal(reloaded.execute(feeds)["output"], got, err_msg="the reloaded plan differs")


def test_without_cudnn_no_chain_is_formed() -> None:
    """With the cuDNN and cuBLASLt sources off, no GPU convolution tactic but the reference one runs HWC: nothing
    is made HWC (cuBLASLt alone would run the 1x1 conv3 HWC: tests/gpu/test_gpu_cublaslt_conv.py)."""
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(resnet_like_model().SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last = "gpu", True
    config.set_tactic_sources(sum(1 << int(s) for s in TacticSource
                                  if s not in (TacticSource.CUDNN, TacticSource.CUBLAS_LT)))
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
    config.add_optimization_profile(profile)
    engine = trt.Runtime().deserialize_cuda_engine(builder.build_serialized_network(network, config))
    assert all(t.format == LINEAR for t in engine.graph.tensors)
    assert not any(r["type"] == "REFORMAT" for r in engine.layer_info())

