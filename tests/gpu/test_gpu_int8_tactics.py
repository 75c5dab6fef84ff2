"""The GPU INT8 tactics (engine/tactics/gpu_int8.py: IMMA GEMMs, the grouped kernel; gpu_quantize.py) on the GPU:
bit for bit equal to the int64 NumPy reference and to the CPU INT8 tactic on small odd shapes (padded to IMMA's
multiples of 4), faster than the float64 fallback, chosen for every INT8 convolution and GEMM of QDQ models from
onnxruntime's quantizer (a ResNet-style model, mobilenet_v2) that then match onnxruntime by
docs/quantization.md's metric, and captured in CUDA graphs (mobilenet_v2's QDQ engine, an implicitly calibrated
INT8 engine)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from int8_layer_cases import CASES, conv_layer, gpu_int8_tactic_name
from quantized_models import calibration_shapes, output_steps, qdq_model
from shared_model_cases import MODELS, make_feeds

from engine.enums import LayerType
from engine.tactics import tactic_by_id, tactics_for
from engine.tactics.base import stable_tactic_id

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")

IMMA = {LayerType.CONVOLUTION: "gpu:convolution:int8_imma_gemm",
        LayerType.MATRIX_MULTIPLY: "gpu:matrix_multiply:int8_imma_gemm"}


def run_on_gpu(tactic, layer) -> np.ndarray:
    """prepare + run into a preallocated device output (filled with a sentinel), with exactly the workspace the
    tactic claims (filled with garbage: padding must not depend on it)."""
    out = cupy.full(layer.ctx.outputs[0].shape, 99, dtype=layer.out_dtype)
    nbytes = tactic.workspace_bytes(layer.ctx)
    workspace = cupy.full(nbytes, 0x5A, cupy.uint8) if nbytes else None
    tactic.run(tactic.prepare(layer.ctx), [None if a is None else cupy.asarray(a) for a in layer.inputs], [out],
               workspace, cupy)
    cupy.cuda.get_current_stream().synchronize()
    return cupy.asnumpy(out)


@pytest.mark.parametrize("name", CASES)
def test_imma_tactic_is_bit_exact_to_the_int64_reference_and_the_cpu_tactic(name):
    layer = CASES[name](np.random.default_rng(11))
    tactic = tactic_by_id(stable_tactic_id(gpu_int8_tactic_name(layer)))
    assert tactic.supports(layer.ctx) is True
    got = run_on_gpu(tactic, layer)
    assert got.dtype == layer.out_dtype
    mismatch = np.flatnonzero(got.astype(np.float64) != layer.reference.astype(np.float64))
    assert mismatch.size == 0, (f"{name}: {mismatch.size} of {got.size} elements differ from the int64 reference, "
                                f"first at flat index {mismatch[:1]}: {got.ravel()[mismatch[:3]]} vs "
                                f"{layer.reference.ravel()[mismatch[:3]]}")
    cpu = next(t for t in tactics_for(layer.ctx.layer.type, "cpu") if t.runs_int8)
    on_cpu = np.empty(layer.ctx.outputs[0].shape, layer.out_dtype)
    cpu.run(cpu.prepare(layer.ctx), layer.inputs, [on_cpu], None, np)
    np.testing.assert_array_equal(got, on_cpu, err_msg=f"{name}: GPU INT8 tactic vs the CPU INT8 tactic")


def _median_ms(tactic, layer, repeats: int = 5) -> float:
    """The tactic's GPU time per call, as the builder times tactics (replayed as a CUDA graph)."""
    from engine.backends.gpu import GpuBackend

    state = tactic.prepare(layer.ctx)
    inputs = [None if a is None else cupy.asarray(a) for a in layer.inputs]
    out = cupy.empty(layer.ctx.outputs[0].shape, layer.out_dtype)
    nbytes = tactic.workspace_bytes(layer.ctx)
    workspace = cupy.empty(nbytes, cupy.uint8) if nbytes else None
    tactic.run(state, inputs, [out], workspace, cupy)  # warm-up: compiles the kernels
    return float(np.median(GpuBackend().time_runs(lambda: tactic.run(state, inputs, [out], workspace, cupy),
                                                  repeats)))


def test_imma_convolution_is_faster_than_the_float64_fallback():
    # 7.4 GMAC: the float64 fallback's im2col alone moves 230 MB; IMMA's int8 GEMM takes tens of microseconds
    layer = conv_layer(np.random.default_rng(3), (32, 128, 28, 28), 128, (3, 3), pre=(1, 1), post=(1, 1))
    imma = tactic_by_id(stable_tactic_id(IMMA[LayerType.CONVOLUTION]))
    exact = next(t for t in tactics_for(LayerType.CONVOLUTION, "gpu") if t.name.endswith("int8_exact"))
    imma_ms, exact_ms = _median_ms(imma, layer), _median_ms(exact, layer)
    assert imma_ms < exact_ms, f"IMMA {imma_ms:.3f} ms is not faster than the float64 fallback's {exact_ms:.3f} ms"


@pytest.fixture(scope="module")
def resnet_style(tmp_path_factory):
    from bench.resnet_style import resnet18_style

    path = tmp_path_factory.mktemp("int8") / "resnet_style.onnx"
    onnx.save(resnet18_style(num_classes=10, width=8), path)
    return path


def _feeds(seed: int, batch: int = 2) -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(seed).standard_normal((batch, 3, 224, 224)).astype(np.float32)}


def _int8_tactics(engine) -> dict[str, str]:
    return {r["name"]: r["tactic"] for r in engine.layer_info()
            if not r["host"] and r["precision"] == "INT8" and r["type"] in ("CONVOLUTION", "MATRIX_MULTIPLY")}


def test_qdq_resnet_style_runs_on_imma_and_matches_onnxruntime(resnet_style, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from polyx.build import BuildOptions, build_engine

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([_feeds(seed) for seed in range(4)])

        def get_next(self):
            return next(self.batches, None)

    folded, quantized = tmp_path / "folded.onnx", tmp_path / "qdq.onnx"
    quant_pre_process(str(resnet_style), str(folded), skip_symbolic_shape=True)
    quantize_static(str(folded), str(quantized), Batches(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    engine, _, _ = build_engine(quantized, BuildOptions(device="gpu", input_shapes={"input": (2, 3, 224, 224)}))
    tactics = _int8_tactics(engine)
    assert len(tactics) == 21 and set(tactics.values()) == set(IMMA.values()), tactics
    feeds = _feeds(99)
    got = engine.create_execution_context().execute(feeds)["output"]
    (want,) = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"]).run(None, feeds)
    step = output_steps(onnx.load(quantized))["output"]
    within = np.mean(np.abs(got.astype(np.float64) - want) <= step * (1 + 1e-5) + 1e-6 * np.abs(want))
    assert within >= 0.999, f"{within:.4%} of the outputs within one step ({step:g}) of onnxruntime's"


def test_qdq_mobilenet_runs_depthwise_on_the_grouped_kernel_and_replays_as_a_cuda_graph():
    if not (MODELS / "mobilenet_v2.onnx").is_file():
        pytest.skip("shared model mobilenet_v2 is not available")
    from polyx.build import BuildOptions, build_engine

    path = qdq_model("mobilenet_v2", preprocessed=True)
    shapes = calibration_shapes("mobilenet_v2")
    engine, _, _ = build_engine(path, BuildOptions(device="gpu", input_shapes=shapes))
    chosen = Counter(_int8_tactics(engine).values())
    assert chosen == {"gpu:convolution:int8_direct_grouped": 17, "gpu:convolution:int8_imma_gemm": 35,
                      "gpu:matrix_multiply:int8_imma_gemm": 1}, chosen
    feeds = make_feeds(onnx.load(MODELS / "mobilenet_v2.onnx"), shapes, seed=3)
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    got, replayed = plain.execute(feeds)["output"], graphed.execute(feeds)["output"]
    np.testing.assert_array_equal(replayed, got, err_msg="CUDA-graph replay vs plain enqueue")
    assert graphed.cuda_graph_captures == 1, engine.logger.messages
    (want,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    step = output_steps(onnx.load(path))["output"]
    within = np.mean(np.abs(got.astype(np.float64) - want) <= step * (1 + 1e-5) + 1e-6 * np.abs(want))
    assert within >= 0.999, f"{within:.4%} of the outputs within one step ({step:g}) of onnxruntime's"


def test_implicit_int8_engine_replays_as_a_cuda_graph_like_the_cpu_engine(resnet_style, tmp_path):
    from polyx.build import BuildOptions, build_engine

    cache = tmp_path / "resnet_style.cache"
    common = {"input_shapes": {"input": (2, 3, 224, 224)}, "int8": True, "calibration_cache": cache,
              "calibration_data": [_feeds(seed) for seed in range(3)]}
    cpu_engine, _, _ = build_engine(resnet_style, BuildOptions(device="cpu", **common))  # calibrates, writes cache
    gpu_engine, _, _ = build_engine(resnet_style, BuildOptions(device="gpu", **common))  # reads the cache
    tactics = _int8_tactics(gpu_engine)
    assert tactics and set(tactics.values()) <= set(IMMA.values()), tactics
    plain, graphed = gpu_engine.create_execution_context(), gpu_engine.create_execution_context()
    graphed.use_cuda_graph = True
    for seed in (5, 6, 7):
        feeds = _feeds(seed)
        want = plain.execute(feeds)["output"]
        got = graphed.execute(feeds)["output"]
        np.testing.assert_array_equal(got, want, err_msg="CUDA-graph replay vs plain enqueue")
        on_cpu = cpu_engine.create_execution_context().execute(feeds)["output"]
        # the same INT8 layers bit for bit; float32 pooling between them may round one requantization differently
        assert np.max(np.abs(got - on_cpu)) <= 0.05 * np.max(np.abs(on_cpu)), "GPU INT8 engine vs CPU INT8 engine"
    assert graphed.cuda_graph_captures == 1, gpu_engine.logger.messages


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_quantize_kernel_rounds_half_to_even_and_saturates_like_the_reference(dtype):
    from engine.dtypes import DataType, from_numpy
    from engine.ir import Node
    from engine.ops.base import TensorInfo, layer_impl
    from engine.tactics import TacticContext

    scale, zero = np.float32(0.5), np.int8(-3)
    halfway = (np.arange(-300, 300) + 0.5) * scale  # every value lies halfway between two steps
    x = np.concatenate([halfway, np.random.default_rng(4).standard_normal(1000) * 80, [1e30, -1e30]]).astype(dtype)
    node = Node(LayerType.QUANTIZE, "q", {"output_type": DataType.INT8})
    ctx = TacticContext(node, [TensorInfo(x.shape, from_numpy(x.dtype)), TensorInfo((), DataType.FLOAT, scale),
                               TensorInfo((), DataType.INT8, zero)], [TensorInfo(x.shape, DataType.INT8)], "gpu")
    tactic = tactic_by_id(stable_tactic_id("gpu:quantize:int8_kernel"))
    assert tactic.supports(ctx) is True
    out = cupy.zeros(x.shape, cupy.int8)
    tactic.run(tactic.prepare(ctx), [cupy.asarray(x), cupy.asarray(scale), cupy.asarray(zero)], [out], None, cupy)
    (want,) = layer_impl(LayerType.QUANTIZE).compute(node, [x, scale, zero], np)
    np.testing.assert_array_equal(cupy.asnumpy(out), want, err_msg="GPU quantize vs the reference kernel")
    assert want[299] == 0 + zero and want[300] == 0 + zero  # -0.25 and 0.25: rint(-0.5) = rint(0.5) = 0 (even)
