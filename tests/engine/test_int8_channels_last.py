"""INT8 convolution chains channels-last (passes/tensor_formats.py, tactics/cpu_int8_nhwc.py) on the CPU.

The ResNet-like model of channels_last_models, quantized two ways: explicitly (onnxruntime's quantize_static, QDQ)
and implicitly (EntropyCalibrator2). With channels_last=True its INT8 convolutions run on int8 HWC tensors and the
outputs are bit-identical to the option-off engine's (the same int32 sums and epilogue), within one quantization
step of onnxruntime's own QDQ execution; "auto" builds and matches too; the plan records the int8 HWC tensors and
inspect shows them. Counted by hand (see each test) rather than read back from the pass."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from channels_last_models import feeds, resnet_like_model
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from quantized_models import output_steps
from test_int8_calibration import Entropy
from test_tampered_plans import reseal

import engine as trt
from engine.dtypes import DataType
from engine.enums import LayerType, TensorFormat
from engine.errors import PlanFormatError
from engine.ir import graph_from_network
from engine.passes.base import PassContext
from engine.passes.pipeline import PassPipeline
from engine.passes.tensor_formats import can_join
from engine.plan import deserialize_plan
from engine.shape_inference import infer_graph

HWC = TensorFormat.HWC


class _Batches(CalibrationDataReader):
    def __init__(self):
        self._batches = iter([feeds(2, seed) for seed in range(4)])

    def get_next(self):
        return next(self._batches, None)


@pytest.fixture(scope="module")
def qdq_model(tmp_path_factory) -> onnx.ModelProto:
    folder = tmp_path_factory.mktemp("int8_hwc")
    onnx.save(resnet_like_model(), folder / "model.onnx")
    quantize_static(str(folder / "model.onnx"), str(folder / "qdq.onnx"), _Batches(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return onnx.load(folder / "qdq.onnx")


def build(model: onnx.ModelProto, channels_last, calibrate: bool = False) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last = "cpu", channels_last
    config.set_flag(trt.BuilderFlag.INT8)
    if calibrate:
        config.int8_calibrator = Entropy(4, shape=(2, 3, 12, 12))
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def load(plan: bytes):
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


def hwc_tensors(engine) -> list[tuple[str, DataType]]:
    return [(t.name, t.dtype) for t in engine.graph.tensors if t.format == HWC]


def conv_formats(engine) -> dict[str, tuple[TensorFormat, TensorFormat, DataType]]:
    """Per convolution: its input's and output's formats, and its input's type."""
    tensors = engine.graph.tensors
    return {s.layer.name: (tensors[s.inputs[0]].format, tensors[s.outputs[0]].format, tensors[s.inputs[0]].dtype)
            for s in engine.graph.layers if s.layer.type == LayerType.CONVOLUTION}


def tactics(engine, layer_type: str) -> set[str]:
    return {r["tactic"] for r in engine.layer_info() if r["type"] == layer_type}


def test_qdq_convolutions_run_int8_hwc_bit_identical_to_linear_and_within_one_step_of_onnxruntime(qdq_model):
    """onnxruntime's quantizer puts Q/DQ pairs between each Conv and its Relu, so each of the four convolutions is
    a chain of its own (the int8 Relu, residual Add and GAP run LINEAR int8_io layers), except that conv2's starts
    at the MaxPool before it, which moves int8 values (dq_commute): an int8 REFORMAT in and one out per chain, and
    one out for the pool's output, which the LINEAR residual Add also reads: 9 int8 HWC tensors, no float one."""
    off, on = load(build(qdq_model, False)), load(build(qdq_model, True))
    assert hwc_tensors(off) == []
    hwc = hwc_tensors(on)
    assert len(hwc) == 9 and {dtype for _, dtype in hwc} == {DataType.INT8}, hwc
    assert set(conv_formats(on).values()) == {(HWC, HWC, DataType.INT8)}
    assert tactics(on, "CONVOLUTION") == {"cpu:convolution:int8_nhwc"}
    assert tactics(off, "CONVOLUTION") == {"cpu:convolution:int8_exact"}
    assert sum(1 for r in on.layer_info() if r["type"] == "REFORMAT") == 9
    x = feeds(3, seed=7)
    got, want = on.create_execution_context().execute(x), off.create_execution_context().execute(x)
    names = [o.name for o in qdq_model.graph.output]
    reference = dict(zip(names, ort.InferenceSession(qdq_model.SerializeToString(),
                                                     providers=["CPUExecutionProvider"]).run(names, x)))
    steps = output_steps(qdq_model)
    for name in names:
        assert got[name].tobytes() == want[name].tobytes(), f"{name}: HWC INT8 engine differs from the LINEAR one"
        error = np.abs(got[name].astype(np.float64) - reference[name])
        assert error.max() <= steps[name] * 1.0001, f"{name}: {error.max()} > one step {steps[name]}"


def test_auto_times_the_int8_chains_and_matches_the_linear_engine(qdq_model):
    plan = build(qdq_model, "auto")
    engine = load(plan)
    chains = deserialize_plan(plan)[1]["channels_last"]["chains"]
    assert {c["first"]: c["layers"] for c in chains} == {"conv1": 1, "pool": 2, "conv3": 1, "conv4": 1}
    hwc_convs = {"conv2" if c["first"] == "pool" else c["first"] for c in chains if c["hwc"]}
    assert {name for name, (i, o, _) in conv_formats(engine).items() if o == HWC} == hwc_convs
    x = feeds(2, seed=8)
    off = load(build(qdq_model, False)).create_execution_context().execute(x)
    got = engine.create_execution_context().execute(x)
    for name in off:
        np.testing.assert_array_equal(got[name], off[name], err_msg=name)


def test_implicit_int8_chain_mixes_int8_convolutions_with_float_pooling_and_residuals():
    """Calibrated (implicit) INT8: conv1 (+relu) -> float max pool -> conv2 (+relu, int8 out) -> conv3 (float
    residual p1 + relu) is one chain, conv4 -> GAP another. Int8 HWC tensors: x's quantized copy, p1's, r2 (conv2
    -> conv3, inside the chain) and scaled's; the float ones: r1, p1, block_out, c4, gap."""
    model = resnet_like_model()
    off, on = load(build(model, False, calibrate=True)), load(build(model, True, calibrate=True))
    hwc = dict(hwc_tensors(on))
    assert sorted(name for name, dtype in hwc.items() if dtype == DataType.INT8) == \
        ["p1#int8:hwc", "r2#int8", "scaled#int8:hwc", "x#int8:hwc"]
    assert sorted(name for name, dtype in hwc.items() if dtype == DataType.FLOAT) == \
        ["block_out:hwc", "c4", "gap:hwc", "p1:hwc", "r1"]
    assert conv_formats(on)["conv3"] == (HWC, HWC, DataType.INT8)
    x = feeds(3, seed=9)
    got, want = on.create_execution_context().execute(x), off.create_execution_context().execute(x)
    for name in want:
        assert got[name].tobytes() == want[name].tobytes(), f"{name}: HWC INT8 engine differs from the LINEAR one"


def test_the_pass_takes_int8_convolutions_only_and_says_why_not(qdq_model):
    """can_join: an INT8 convolution may join; the int8_io layers (Relu, Add, GAP on int8 tensors) and the
    QUANTIZE/DEQUANTIZE layers may not, each with the reason."""
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(qdq_model.SerializeToString())
    graph = graph_from_network(network)
    infer_graph(graph)
    PassPipeline().run(graph, PassContext(), lint=True)
    reasons = {node.name: can_join(node) for node in graph.nodes}
    assert all(reasons[name] is None for name in ("conv1", "conv2", "conv3", "conv4")), reasons
    assert reasons["relu1"] == "INT8 layers other than convolutions keep LINEAR tensors"
    assert reasons["gap"] == "INT8 layers other than convolutions keep LINEAR tensors"
    quantize = next(n for n in graph.nodes if n.type == LayerType.QUANTIZE)
    assert reasons[quantize.name] == "QUANTIZE layers keep LINEAR tensors"


def test_a_plan_with_an_int8_hwc_tensor_of_rank_2_is_refused(qdq_model):
    plan = build(qdq_model, True)

    def edit(header):
        flat = next(t for t in header["tensors"] if t["dtype"] == "INT8" and len(t["shape"] or []) == 2)
        flat["format"] = "HWC"
    with pytest.raises(PlanFormatError, match="HWC needs a 4-D FLOAT, HALF or INT8 tensor, not INT8"):
        load(reseal(plan, edit))


def test_inspect_shows_the_int8_hwc_tensors_and_reformats(tmp_path, capsys):
    from polyx.cli.app import main

    (tmp_path / "int8.plan").write_bytes(build(resnet_like_model(), True, calibrate=True))
    assert main(["inspect", "model", str(tmp_path / "int8.plan")]) == 0
    out = capsys.readouterr().out
    assert "tensor formats:      9 HWC" in out  # 4 int8 + 5 float, as counted in the implicit INT8 test
    reformat_rows = [line.split() for line in out.splitlines() if line.startswith("Reformat(")]
    assert ["Reformat(x#int8)->HWC", "INT8", "INT8", "HWC"] in reformat_rows
    assert sum(1 for row in reformat_rows if row[1:] == ["INT8", "INT8", "HWC"]) == 3
