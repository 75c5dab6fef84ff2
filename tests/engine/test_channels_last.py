"""Channels-last tensor formats (BuilderConfig.channels_last, passes/tensor_formats.py) on the CPU: which tensors the
pass makes HWC and where it puts REFORMAT layers (counted by hand in channels_last_models.py), the plan's format
fields (round trip, tampering), outputs against onnxruntime, memory really laid out channels-last, and plans
without the option unchanged."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from channels_last_models import FORMAT_REFORMATS, resnet_like_model
from channels_last_models import feeds as model_feeds
from shared_model_cases import MODELS
from test_tampered_plans import load, reseal, setter

import engine as trt
from engine.enums import LayerType, TensorFormat
from engine.errors import PlanFormatError
from engine.ir import graph_from_network
from engine.passes import pipeline as pass_pipeline
from engine.passes.base import PassContext
from engine.passes.pipeline import PassPipeline
from engine.shape_inference import infer_graph
from engine.tensor_formats import is_channels_last

HWC, LINEAR = TensorFormat.HWC, TensorFormat.LINEAR


def parse(model: onnx.ModelProto) -> trt.NetworkDefinition:
    network = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    return network


def build(model: onnx.ModelProto, channels_last: bool, batch=(1, 2, 4), input_name="x", level: int = 0,
          sources: int | None = None) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse(model.SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last, config.builder_optimization_level = "cpu", channels_last, level
    if sources is not None:
        config.set_tactic_sources(sources)
    shape = list(network.get_input(0).shape)
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, *[(b, *shape[1:]) for b in batch])
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def optimized(model: onnx.ModelProto, runs=lambda node: True):
    """The builder's graph after the pass pipeline with channels_last on and `runs` as the tactic check."""
    graph = graph_from_network(parse(model))
    infer_graph(graph)
    PassPipeline().run(graph, PassContext(channels_last=True, runs_channels_last=runs), lint=True)
    return graph


def reformats(graph) -> list:
    return [n for n in graph.nodes if n.type == LayerType.REFORMAT]


# ---------------------------------------------------------------------------------------------------- the pass
def test_the_pass_makes_chains_hwc_with_reformats_only_at_their_ends() -> None:
    graph = optimized(resnet_like_model())
    made = reformats(graph)
    assert len(made) == FORMAT_REFORMATS, [n.name for n in made]
    by_name = {n.name: n for n in graph.nodes}
    for name in ("conv1", "pool", "conv2", "conv3", "conv4", "gap"):
        assert by_name[name].outputs[0].format == HWC, name
    for name in ("scale_mul", "flatten", "fc"):
        assert by_name[name].outputs[0].format == LINEAR, name
    # every HWC tensor is made inside a chain or by a reformat into HWC; a reformat's two sides differ
    for node in made:
        assert node.inputs[0].format != node.outputs[0].format, node.name
        assert node.params["to_format"] == node.outputs[0].format
    # the network's IO stays LINEAR and keeps its names; the HWC side of a leaving tensor is renamed
    assert [(v.name, v.format) for v in graph.inputs + graph.outputs] == [
        ("x", LINEAR), ("y", LINEAR), ("block_out", LINEAR)]
    assert graph.value("block_out").producer.type == LayerType.REFORMAT
    assert graph.value("block_out:hwc").producer.name == "conv3"
    # a chain member reads only HWC activations, a LINEAR layer only LINEAR ones
    for node in graph.nodes:
        if node.type in (LayerType.REFORMAT, LayerType.CONSTANT):
            continue
        formats = {v.format for v in node.inputs[:1] if v is not None}
        assert formats == {node.outputs[0].format}, node.name


def test_a_layer_without_an_hwc_tactic_splits_the_chain() -> None:
    graph = optimized(resnet_like_model(), runs=lambda node: node.type != LayerType.POOLING)
    by_name = {n.name: n for n in graph.nodes}
    assert by_name["pool"].outputs[0].format == LINEAR and by_name["gap"].outputs[0].format == LINEAR
    # conv1 | pool | conv2, conv3 | mul | conv4 | gap: out of conv1, into and out of conv2-3 (block_out), into
    # and out of conv4
    assert len(reformats(graph)) == 6


def test_chains_without_a_convolution_stay_linear() -> None:
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4, 5, 5])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4, 5, 5])
    model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["r"]), onnx.helper.make_node("Add", ["r", "x"], ["y"])],
        "no_conv", [x], [y]), opset_imports=[onnx.helper.make_opsetid("", 17)])
    graph = optimized(model)
    assert not reformats(graph) and all(v.format == LINEAR for v in graph.values())


def test_the_option_off_changes_nothing_in_the_graph() -> None:
    graph = graph_from_network(parse(resnet_like_model()))
    infer_graph(graph)
    report = PassPipeline().run(graph, PassContext(runs_channels_last=lambda node: True), lint=True)
    assert "channels_last" not in report and not reformats(graph)
    assert all(v.format == LINEAR for v in graph.values())


# ---------------------------------------------------------------------------------------------------- plans
@pytest.fixture(scope="module")
def hwc_plan() -> bytes:
    return build(resnet_like_model(), channels_last=True)


def test_the_plan_keeps_the_formats(hwc_plan) -> None:
    engine = load(hwc_plan)
    formats = {t.name: t.format for t in engine.graph.tensors}
    assert formats["x:hwc"] == HWC and formats["block_out:hwc"] == HWC and formats["x"] == LINEAR
    assert sum(f == HWC for f in formats.values()) == 8  # 6 chain members' outputs + 2 entering copies
    rows = [r for r in engine.layer_info() if r["type"] == "REFORMAT"]
    assert len(rows) == FORMAT_REFORMATS
    conv = next(spec for spec in engine.graph.layers if spec.layer.name == "conv2")
    assert [engine.graph.tensors[i].format for i in (conv.inputs[0], conv.outputs[0])] == [HWC, HWC]
    assert [engine.get_tensor_format(name) for name in ("x", "y", "block_out")] == [LINEAR] * 3
    # untimed (level 0), the NHWC GEMM convolution is preferred; the LINEAR-only CPU convolutions are not offered
    assert {r["tactic"] for r in engine.layer_info() if r["type"] == "CONVOLUTION"} == {"cpu:conv:nhwc_gemm"}


@pytest.mark.parametrize("edit, message", [
    (lambda h: h["tensors"][h["inputs"][0]].update(format="HWC"), "network inputs and outputs must be LINEAR"),
    (lambda h: next(t for t in h["tensors"] if t["name"] == "r2").update(format="NHWC"), "is not a TensorFormat"),
    (lambda h: next(t for t in h["tensors"] if t["name"] == "flat").update(format="HWC"),
     "HWC needs a 4-D FLOAT, HALF or INT8 tensor"),
    (setter("layers", "@Reformat(x)->HWC", "params", "to_format", value="LINEAR"), "params.to_format"),
    (setter("layers", "@Reformat(x)->HWC", "params", "to_format", value="CHW32"), "is not a TensorFormat"),
])
def test_tampered_format_fields_are_refused(hwc_plan, edit, message) -> None:
    with pytest.raises(PlanFormatError, match=message):
        load(reseal(hwc_plan, edit))


def test_an_hwc_tensor_on_a_linear_only_tactic_is_refused() -> None:
    """Flipping a tensor of a LINEAR plan to HWC passes the header checks (4-D float) but not the engine's: the
    native/GEMM convolution tactics chosen at level 3 do not run HWC tensors."""
    plan = build(resnet_like_model(), channels_last=False, level=3)
    engine = load(plan)
    conv = next(r for r in engine.layer_info() if r["name"] == "conv2")
    assert conv["tactic"].startswith("cpu:conv"), conv["tactic"]
    with pytest.raises(PlanFormatError, match="layer 'conv2' has HWC tensors, which its tactic cpu:conv"):
        load(reseal(plan, lambda h: next(t for t in h["tensors"] if t["name"] == "r2").update(format="HWC")))


# ---------------------------------------------------------------------------------------------------- values
class _Layouts(trt.IDebugListener):
    def __init__(self):
        self.seen: dict[str, bool] = {}

    def process_debug_tensor(self, name, array, layer) -> None:
        self.seen[name] = is_channels_last(np.asarray(array)) if np.ndim(array) == 4 else False


def test_outputs_match_onnxruntime_and_memory_is_channels_last(hwc_plan) -> None:
    model = resnet_like_model()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    context = load(hwc_plan).create_execution_context()
    layouts = _Layouts()
    context.set_debug_listener(layouts)
    for batch in (1, 3):
        feeds = model_feeds(batch, seed=batch)
        expected = dict(zip(["y", "block_out"], session.run(["y", "block_out"], feeds)))
        got = context.execute(feeds)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
    # the HWC tensors lie channels-last in memory (with 8 channels and 6x6 planes, NCHW memory is not)
    assert layouts.seen["p1"] and layouts.seen["r2"] and layouts.seen["c4"], layouts.seen
    assert not layouts.seen["block_out"] and not layouts.seen["scaled"], layouts.seen


def test_a_timed_build_matches_onnxruntime_and_keys_its_timings_by_format() -> None:
    """At level 2 the HWC layers' candidates (NHWC GEMM and reference convolutions) are timed; the timing cache
    keeps them apart from the same layers built LINEAR."""
    model = resnet_like_model()
    cache_config = trt.Builder(trt.Logger()).create_builder_config()
    cache = cache_config.create_timing_cache(b"")
    plans = {}
    for channels_last in (False, True):
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        network = builder.create_network()
        trt.OnnxParser(network).parse(model.SerializeToString())
        config = builder.create_builder_config()
        config.device, config.channels_last, config.builder_optimization_level = "cpu", channels_last, 2
        config.set_timing_cache(cache, ignore_mismatch=False)
        profile = builder.create_optimization_profile()
        profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
        config.add_optimization_profile(profile)
        before = len(cache.entries)
        plans[channels_last] = builder.build_serialized_network(network, config)
        if channels_last:  # the LINEAR build's entries were no hits for the HWC layers: new entries were made
            assert len(cache.entries) > before
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = model_feeds(2, seed=9)
    expected = dict(zip(["y", "block_out"], session.run(["y", "block_out"], feeds)))
    for channels_last, plan in plans.items():
        got = load(plan).create_execution_context().execute(feeds)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}, channels_last={channels_last}")


def test_fp16_precision_reformats_convert_the_layout_too() -> None:
    """FP16 alone makes 3 REFORMATs (x to HALF, y and block_out back to FLOAT). Channels-last adds only 3: x's HALF
    reformat writes HWC itself and block_out's FLOAT reformat reads HWC itself; block_out into scale_mul, scaled
    into conv4 and gap out to flatten need their own."""
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    trt.OnnxParser(network).parse(resnet_like_model().SerializeToString())
    config = builder.create_builder_config()
    config.device, config.channels_last = "cpu", True
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 12, 12), (2, 3, 12, 12), (4, 3, 12, 12))
    config.add_optimization_profile(profile)
    engine = load(builder.build_serialized_network(network, config))
    tensors = engine.graph.tensors
    sides = {spec.layer.name: tuple(f"{tensors[i].dtype.value} {tensors[i].format.value}"
                                    for i in (spec.inputs[0], spec.outputs[0]))
             for spec in engine.graph.layers if spec.layer.type == LayerType.REFORMAT}
    assert len(sides) == 6, sides
    assert sides["Reformat(x)->HALF"] == ("FLOAT LINEAR", "HALF HWC")
    assert sides["Reformat(block_out:half)->FLOAT"] == ("HALF HWC", "FLOAT LINEAR")
    feeds = model_feeds(2, seed=4)
    expected = ort.InferenceSession(resnet_like_model().SerializeToString(),
                                    providers=["CPUExecutionProvider"]).run(["y", "block_out"], feeds)
    got = engine.create_execution_context().execute(feeds)
    for name, want in zip(["y", "block_out"], expected):
        np.testing.assert_allclose(got[name].astype(np.float32), want, rtol=2e-2, atol=2e-2, err_msg=name)


def test_a_format_reformat_is_no_noop() -> None:
    from engine.passes.eliminate import is_noop

    graph = optimized(resnet_like_model())
    assert all(not is_noop(node) for node in reformats(graph))


@pytest.mark.skipif(not (MODELS / "mobilenet_v2.onnx").exists(), reason="shared models not present")
def test_mobilenet_v2_channels_last_matches_onnxruntime() -> None:
    model = onnx.load(str(MODELS / "mobilenet_v2.onnx"))
    plan = build(model, channels_last=True, batch=(1, 2, 2), input_name="input")
    engine = load(plan)
    hwc = [t.name for t in engine.graph.tensors if t.format == HWC]
    rows = [r for r in engine.layer_info() if r["type"] == "REFORMAT"]
    # one chain from the input's reformat to the global pooling's: the whole network body runs HWC
    assert len(rows) == 2 and len(hwc) > 50, (len(rows), len(hwc))
    feeds = {"input": np.random.default_rng(5).standard_normal((2, 3, 224, 224)).astype(np.float32)}
    expected = ort.InferenceSession(str(MODELS / "mobilenet_v2.onnx"),
                                    providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = engine.create_execution_context().execute(feeds)["output"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------------- option off
@pytest.mark.skipif(not (MODELS / "mobilenet_v2.onnx").exists(), reason="shared models not present")
def test_without_the_option_the_plan_is_byte_for_byte_what_it_was(monkeypatch) -> None:
    """The plan built with the option off equals the plan of a builder without the format pass at all (the
    pipeline as it was before it), and it records no format."""
    model = onnx.load(str(MODELS / "mobilenet_v2.onnx"))
    plan = build(model, channels_last=False, batch=(1, 1, 2), input_name="input")
    without_pass = [p for p in pass_pipeline.default_passes() if p.name != "channels_last"]
    monkeypatch.setattr(pass_pipeline, "default_passes", lambda: without_pass)
    assert build(model, channels_last=False, batch=(1, 1, 2), input_name="input") == plan
    assert b'"format"' not in plan and b"to_format" not in plan


def test_the_cli_flag(tmp_path, capsys) -> None:
    from polyx.cli.app import main

    onnx.save(resnet_like_model(), tmp_path / "model.onnx")
    assert main(["run", str(tmp_path / "model.onnx"), "--engine", "--onnxrt", "--input-shapes", "x:[2,3,12,12]",
                 "--channels-last", "--device", "cpu", "--save-engine", str(tmp_path / "model.plan")]) == 0
    assert "PASSED" in capsys.readouterr().out
    assert main(["inspect", "model", str(tmp_path / "model.plan"), "--show", "layers"]) == 0
    out = capsys.readouterr().out
    assert "tensor formats:      8 HWC" in out and "FLOAT HWC" in out, out


def test_the_formats_doc_example_runs(capsys) -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    code = text.split("## Example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(code, "docs/formats.md", "exec"), {})
    names, difference = capsys.readouterr().out.splitlines()
    assert names == str(['x:hwc', 'r1', 'p1', 'r2', 'block_out:hwc', 'scaled:hwc', 'c4', 'gap:hwc'])
    assert float(difference) < 1e-5


@pytest.mark.parametrize("device", ["cpu", "gpu"], ids=["cpu_tactics", "cuda_tactics"])
def test_every_tactic_offering_hwc_convolutions_accepts_their_linear_weights(device):
    """A channels-last convolution has HWC activations and LINEAR constant weights and bias: a tactic that says it
    may run the node channels-last but declares HWC alone would be skipped for every such layer (the cuBLASLt
    1x1 convolutions were, until a GPU run showed the reference kernel taking their layers)."""
    from engine.ir import Node
    from engine.network import NetworkDefinition
    from engine.tactics import tactics_for
    from engine.tensor_formats import layer_formats

    net = NetworkDefinition()
    w, b = np.ones((8, 4, 1, 1), np.float32), np.zeros(8, np.float32)
    layer = net.add_convolution_nd(net.add_input("x", trt.DataType.FLOAT, (2, 4, 5, 5)), 8, (1, 1), w, b)
    node = Node(layer.type, "conv", layer.params, precision=trt.DataType.FLOAT)
    formats = layer_formats(type("Ctx", (), {"input_formats": (HWC, LINEAR, LINEAR), "output_formats": (HWC,)}))
    offering = [t for t in tactics_for(LayerType.CONVOLUTION, device)
                if HWC in t.formats and not t.runs_int8 and t.may_run_channels_last(node)]
    assert offering, f"no {device} tactic runs 1x1 convolutions channels-last"
    refusing = [t.name for t in offering if not formats <= t.formats]
    assert not refusing, f"these tactics offer HWC but not the LINEAR weights: {refusing}"
