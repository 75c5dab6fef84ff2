"""Channels-last INT8 convolutions on the GPU (engine/tactics/gpu_int8_nhwc.py, passes/tensor_formats.py): the
IMMA NHWC tactic bit for bit equal to the int64 reference and to the CPU's cpu:convolution:int8_nhwc on HWC
tensors (1x1 read in place, 1x1 with C not a multiple of 4, 3x3 stride 2, padded, dilated, int8 and half
residuals, ReLU, float outputs), its workspace filled with garbage; and end to end: QDQ models built with
channels_last=True run every ungrouped INT8 convolution on it, give the bits of the channels_last=False GPU
engine, match onnxruntime within one quantization step and replay as a CUDA graph."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from channels_last_models import feeds as resnet_like_feeds
from channels_last_models import resnet_like_model
from int8_layer_cases import RELU, conv_layer
from quantized_models import output_steps

from engine.enums import LayerType, TacticSource, TensorFormat
from engine.tactics import tactics_for
from engine.tensor_formats import empty_in_format, is_channels_last

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR
# Every tactic source but cuBLASLt, whose int8 GEMMs requantize in float32 (within a step, not bit-exact:
# tests/gpu/test_gpu_int8_cublaslt.py): the engines compared bit for bit below run the exact tactics.
EXACT_SOURCES = sum(1 << int(s) for s in TacticSource if s != TacticSource.CUBLAS_LT)
IMMA_NHWC = "gpu:convolution:int8_imma_nhwc"
CASES = {
    "1x1_in_place_relu_int8": lambda rng: conv_layer(rng, (2, 16, 7, 9), 12, (1, 1), activation=RELU),
    "1x1_c7_padded_rows_float32": lambda rng: conv_layer(rng, (2, 7, 5, 6), 5, (1, 1), output="float32"),
    "1x1_stride2_im2col_int8": lambda rng: conv_layer(rng, (1, 8, 9, 9), 6, (1, 1), stride=(2, 2)),
    "3x3_stride2_padded_relu_int8": lambda rng: conv_layer(rng, (2, 6, 11, 10), 10, (3, 3), stride=(2, 2),
                                                           pre=(1, 1), post=(1, 1), activation=RELU),
    "3x3_dilated_asym_float16": lambda rng: conv_layer(rng, (1, 5, 12, 9), 7, (3, 3), dilation=(2, 1),
                                                       pre=(2, 0), post=(1, 2), bias=False, output="float16"),
    "3x3_c32_vectorized_im2col_int8": lambda rng: conv_layer(rng, (2, 32, 7, 6), 12, (3, 3), stride=(2, 1),
                                                             pre=(1, 1), post=(1, 1), activation=RELU),
    "3x3_c3650_unstaged_im2col_float32": lambda rng: conv_layer(rng, (1, 3650, 4, 4), 4, (3, 3), output="float32"),
    "residual_int8_relu_int8": lambda rng: conv_layer(rng, (2, 16, 6, 6), 16, (1, 1), activation=RELU,
                                                      residual="int8"),
    "residual_float16_3x3_float16": lambda rng: conv_layer(rng, (1, 8, 7, 7), 8, (3, 3), pre=(1, 1), post=(1, 1),
                                                           residual="float16", output="float16"),
    "residual_float32_relu_int8": lambda rng: conv_layer(rng, (2, 12, 5, 5), 12, (3, 3), pre=(1, 1),
                                                         post=(1, 1), activation=RELU, residual="float32"),
}


def _hwc_context(ctx):
    import dataclasses

    residual = ctx.layer.epilogue.residual
    formats = [HWC, LINEAR, None if ctx.inputs[2] is None else LINEAR] + ([HWC] if residual is not None else [])
    return dataclasses.replace(ctx, input_formats=tuple(formats), output_formats=(HWC,))


def _hwc(array, xp):
    view = empty_in_format(xp, array.shape, array.dtype, HWC)
    view[...] = xp.asarray(array)
    return view


def _tactic(name: str, backend: str):
    return next(t for t in tactics_for(LayerType.CONVOLUTION, backend) if t.name == name)


def run_hwc(tactic, layer, ctx) -> np.ndarray:
    """Run `tactic` on the layer's inputs in HWC memory (weights and bias LINEAR), its workspace filled with
    garbage and its output with 99s; the output must stay in its NHWC memory. Returns it on the host."""
    assert tactic.supports(ctx) is True, tactic.supports(ctx)
    inputs = [cupy.asarray(a) if a is not None and i in (1, 2) else None if a is None else _hwc(a, cupy)
              for i, a in enumerate(layer.inputs)]
    out = empty_in_format(cupy, ctx.outputs[0].shape, layer.out_dtype, HWC)
    out[...] = 99
    nbytes = tactic.workspace_bytes(ctx)
    workspace = cupy.full(nbytes, 0x5A, cupy.uint8) if nbytes else None
    tactic.run(tactic.prepare(ctx), inputs, [out], workspace, cupy)
    cupy.cuda.get_current_stream().synchronize()
    assert is_channels_last(out), "the output must stay in its NHWC memory"
    return cupy.asnumpy(out)


@pytest.mark.parametrize("name", CASES)
def test_imma_nhwc_is_bit_exact_to_the_int64_reference_and_the_cpu_hwc_tactic(name):
    layer = CASES[name](np.random.default_rng(17))
    ctx = _hwc_context(layer.ctx)
    got = run_hwc(_tactic(IMMA_NHWC, "gpu"), layer, ctx)
    mismatch = np.flatnonzero(got.astype(np.float64) != layer.reference.astype(np.float64))
    assert mismatch.size == 0, (f"{name}: {mismatch.size} of {got.size} elements differ from the int64 reference, "
                                f"first at flat index {mismatch[:1]}: {got.ravel()[mismatch[:3]]} vs "
                                f"{layer.reference.ravel()[mismatch[:3]]}")
    cpu = _tactic("cpu:convolution:int8_nhwc", "cpu")
    on_cpu = empty_in_format(np, ctx.outputs[0].shape, layer.out_dtype, HWC)
    cpu.run(cpu.prepare(ctx), [a if a is None or i in (1, 2) else _hwc(a, np) for i, a in enumerate(layer.inputs)],
            [on_cpu], None, np)
    np.testing.assert_array_equal(got, on_cpu, err_msg=f"{name}: GPU IMMA NHWC vs the CPU HWC INT8 tactic")


def _qdq(model: onnx.ModelProto, folder, batches) -> onnx.ModelProto:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    onnx.save(model, folder / "model.onnx")
    quantize_static(str(folder / "model.onnx"), str(folder / "qdq.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return onnx.load(folder / "qdq.onnx")


def _build(model: onnx.ModelProto, channels_last, shape, sources: int | None = None, selector=None):
    """An INT8 GPU engine; `sources` is the tactic-source mask (None: the default, every source), `selector` an
    algorithm selector (None: the fastest tactic of each layer)."""
    import engine as trt

    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last = "gpu", channels_last
    config.set_flag(trt.BuilderFlag.INT8)
    if sources is not None:
        config.set_tactic_sources(sources)
    config.algorithm_selector = selector
    profile = builder.create_optimization_profile()
    name = model.graph.input[0].name
    profile.set_shape(name, shape, shape, shape)
    config.add_optimization_profile(profile)
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
        builder.build_serialized_network(network, config))


def _conv_tactics(engine) -> dict[str, str]:
    return {r["name"]: r["tactic"] for r in engine.layer_info() if r["type"] == "CONVOLUTION"}


def check_against_onnxruntime(engine, model: onnx.ModelProto, steps_allowed: float, linear=None):
    """Seeds 5 and 6 through `engine` plainly and as a CUDA graph: the replay equals the plain run, every output is
    within `steps_allowed` quantization steps of onnxruntime's execution of the QDQ model and, given the `linear`
    engine, bit-identical to its outputs. Returns the graphed context."""
    names = [o.name for o in model.graph.output]
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    steps = output_steps(model)
    for seed in (5, 6):
        x = resnet_like_feeds(2, seed)
        got, replayed = plain.execute(x), graphed.execute(x)
        want_linear = None if linear is None else linear.create_execution_context().execute(x)
        for name, want in zip(names, session.run(names, x)):
            np.testing.assert_array_equal(replayed[name], got[name], err_msg=f"{name}: CUDA-graph replay")
            if want_linear is not None:
                np.testing.assert_array_equal(got[name], want_linear[name], err_msg=f"{name}: HWC vs LINEAR engine")
            assert np.max(np.abs(got[name].astype(np.float64) - want)) <= steps_allowed * steps[name] * 1.0001, name
    return graphed


@pytest.mark.parametrize("channels_last", [True, "auto"])
def test_qdq_resnet_like_runs_hwc_int8_like_the_linear_gpu_engine_and_replays_as_a_cuda_graph(tmp_path,
                                                                                             channels_last):
    model = _qdq(resnet_like_model(), tmp_path, [resnet_like_feeds(2, seed) for seed in range(4)])
    engine = _build(model, channels_last, (2, 3, 12, 12), EXACT_SOURCES)
    linear = _build(model, False, (2, 3, 12, 12))
    tactics = _conv_tactics(engine)
    if channels_last is True:  # conv4 is depthwise: it joins no GPU chain and stays on the grouped kernel
        assert tactics == {"conv1": IMMA_NHWC, "conv2": IMMA_NHWC, "conv3": IMMA_NHWC,
                           "conv4": "gpu:convolution:int8_direct_grouped"}, tactics
        assert {t.dtype.value for t in engine.graph.tensors if t.format == HWC} == {"INT8"}
    check_against_onnxruntime(engine, model, 1, linear)


def test_qdq_resnet_style_runs_every_convolution_on_imma_nhwc_bit_identical_to_linear(tmp_path):
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from bench.resnet_style import resnet18_style

    onnx.save(resnet18_style(num_classes=10, width=8), tmp_path / "float.onnx")
    quant_pre_process(str(tmp_path / "float.onnx"), str(tmp_path / "folded.onnx"), skip_symbolic_shape=True)
    feeds = [{"input": np.random.default_rng(s).standard_normal((2, 3, 224, 224)).astype(np.float32)}
             for s in range(4)]
    model = _qdq(onnx.load(tmp_path / "folded.onnx"), tmp_path, feeds)
    shape = (2, 3, 224, 224)
    engine, linear = _build(model, True, shape, EXACT_SOURCES), _build(model, False, shape)
    tactics = _conv_tactics(engine)
    assert tactics and set(tactics.values()) == {IMMA_NHWC}, tactics
    graphed = engine.create_execution_context()
    graphed.use_cuda_graph = True
    x = {"input": np.random.default_rng(9).standard_normal(shape).astype(np.float32)}
    got = graphed.execute(x)["output"]
    np.testing.assert_array_equal(got, linear.create_execution_context().execute(x)["output"],
                                  err_msg="channels-last INT8 engine vs the LINEAR one")
    assert graphed.cuda_graph_captures == 1, engine.logger.messages
