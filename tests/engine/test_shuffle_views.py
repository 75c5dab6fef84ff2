"""Reshape-only SHUFFLE layers run as zero-copy views of their inputs (engine/shuffle_views.py): which layers the rule
takes (counted by hand on tests/reshape_view_models.py), values against float64 NumPy and onnxruntime, no kernel
run for them, a smaller memory plan, the plan field validated on load, and the debug tools still seeing them."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from reshape_view_models import NOT_VIEW_SHUFFLES, VIEW_LAYERS, VIEW_TENSORS, reference, reshape_view_model, sample
from shared_model_cases import CASES, MODELS, build_case, make_feeds

import engine as trt
from engine.binding import BoundInputs, bind
from engine.container import pack, unpack
from engine.enums import LayerType
from engine.errors import PlanFormatError
from engine.graph import resolve_shapes
from engine.memory_plan import device_lifetimes, plan_graph_memory
from engine.ops.base import LAYER_IMPLS
from engine.plan import FORMAT_VERSION, MAGIC
from engine.shuffle_views import view_refusal, view_roots


def _plan(model: onnx.ModelProto | None = None) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    assert trt.OnnxParser(network).parse((model or reshape_view_model()).SerializeToString())
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 0
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 4), (2, 3, 4), (4, 3, 4))
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


def _load(plan: bytes) -> trt.Engine:
    return trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)


@pytest.fixture(scope="module")
def plan() -> bytes:
    return _plan()


def _views(engine: trt.Engine) -> set[str]:
    return {row["name"] for row in engine.layer_info() if row["view"]}


def test_the_views_are_the_layers_counted_by_hand(plan):
    engine = _load(plan)
    assert _views(engine) == VIEW_LAYERS, engine.layer_info()
    assert engine.meta["memory"]["view_layers"] == len(VIEW_LAYERS) == 4
    graph = engine.graph
    reasons = {spec.layer.name: view_refusal(graph, spec) for spec in graph.layers}
    assert "transposes" in reasons["transpose_t"]
    assert "'y_reshaped' is a network output" in reasons["reshape_output"]
    assert "'x' is a network input" in reasons["reshape_input"]
    names = {i: t.name for i, t in enumerate(graph.tensors)}
    # chains end at their first non-view tensor: every view here shares the memory of Relu's output 'a'
    assert {names[o]: names[r] for o, r in view_roots(graph).items()} == dict.fromkeys(VIEW_TENSORS, "a")


@pytest.mark.parametrize("batch", [1, 4])
def test_outputs_match_float64_numpy_at_each_shape(plan, batch):
    x = sample(batch, seed=batch)
    outputs = _load(plan).create_execution_context().execute({"x": x})
    expected = reference(x)
    for name, value in outputs.items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-6, atol=1e-6, err_msg=f"output {name}, batch {batch}")


def test_view_layers_run_no_kernel(plan, monkeypatch):
    calls: list[str] = []
    impl = LAYER_IMPLS[LayerType.SHUFFLE]

    def recording(layer, inputs, xp):
        calls.append(layer.name)
        return impl.compute(layer, inputs, xp)

    # the reference tactic takes the kernel when the engine prepares it, so patch before loading
    monkeypatch.setitem(LAYER_IMPLS, LayerType.SHUFFLE, dataclasses.replace(impl, compute=recording))
    engine = _load(plan)
    x = sample(3)
    outputs = engine.create_execution_context().execute({"x": x})
    assert set(calls) == NOT_VIEW_SHUFFLES, f"shuffle kernels called: {calls}"
    np.testing.assert_allclose(outputs["y_g"], reference(x)["y_g"], rtol=1e-6)


@pytest.mark.parametrize("batch", [1, 4])
def test_each_view_is_its_roots_memory_at_the_bound_shape(plan, batch):
    engine = _load(plan)
    binding = bind(engine, BoundInputs(0, {engine.graph.inputs[0]: (batch, 3, 4)}, {}))
    shapes = {"r1": (batch, 12), "r2": (batch * 12,), "g": (batch, 3, 4), "u": (batch, 1, 3, 4)}
    for out, root in engine.view_roots.items():
        name = engine.graph.tensors[out].name
        view, base = binding.slots[out], binding.slots[root]
        assert view.shape == shapes[name] and np.shares_memory(view, base) and view.nbytes == base.nbytes, name


def _plans(graph, shapes):
    """(memory plan with the plan's views, memory plan with every layer writing a buffer of its own)."""
    _, with_views = plan_graph_memory(graph, shapes, device_lifetimes(graph))
    copied = dataclasses.replace(graph, layers=[dataclasses.replace(spec, view=False) for spec in graph.layers])
    _, without = plan_graph_memory(copied, shapes, device_lifetimes(copied))
    return with_views, without


def _peaks(graph, shapes) -> tuple[int, int]:
    with_views, without = _plans(graph, shapes)
    return with_views.peak_bytes, without.peak_bytes


def test_views_shrink_the_planned_peak(plan):
    graph = _load(plan).graph
    shapes = resolve_shapes(graph, {graph.inputs[0]: (4, 3, 4)}).shapes
    with_views, without = _peaks(graph, shapes)
    assert with_views < without, (with_views, without)
    assert _load(plan).meta["memory"]["planned_peak_bytes"] == with_views


def test_plan_round_trip_keeps_the_views(plan):
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    assert {layer["name"] for layer in header["layers"] if layer["view"]} == VIEW_LAYERS
    again = pack(MAGIC, FORMAT_VERSION, header, arrays)
    x = sample(2)
    np.testing.assert_array_equal(_load(again).create_execution_context().execute({"x": x})["y_u"],
                                  _load(plan).create_execution_context().execute({"x": x})["y_u"])


def _tampered(plan: bytes, layer: str, value) -> bytes:
    header, arrays = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    for entry in header["layers"]:
        if entry["name"] == layer:
            if value is KeyError:
                del entry["view"]
            else:
                entry["view"] = value
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


@pytest.mark.parametrize("layer, value, message", [
    ("transpose_t", True, r"layer 'transpose_t' view: true in the plan, but .*: it transposes"),
    ("reshape_output", True, r"layer 'reshape_output' view: .*'y_reshaped' is a network output"),
    ("reshape_input", True, r"layer 'reshape_input' view: .*'x' is a network input"),
    ("abs_t", True, r"layer 'abs_t' view: .*UNARY layer, not SHUFFLE"),
    ("reshape_r1", "yes", r"layer 'reshape_r1' view: must be true or false, got 'yes'"),
    ("reshape_r1", KeyError, r"layer 'reshape_r1' view: must be true or false, got None"),
])
def test_a_tampered_view_field_is_refused_naming_it(plan, layer, value, message):
    with pytest.raises(PlanFormatError, match=message):
        _load(_tampered(plan, layer, value))


def test_a_view_left_unmarked_still_computes(plan):
    """Clearing a view mark is allowed: the layer copies as before, with its own buffer."""
    engine = _load(_tampered(plan, "reshape_r2", False))
    assert _views(engine) == VIEW_LAYERS - {"reshape_r2"}
    x = sample(2)
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y_g"], reference(x)["y_g"],
                               rtol=1e-6)


class _Recorder(trt.IDebugListener):
    def __init__(self):
        self.values: dict[str, np.ndarray] = {}
        self.layers: dict[str, str] = {}

    def process_debug_tensor(self, name, array, layer):
        self.values[name] = np.array(array, copy=True)
        self.layers[name] = layer


def test_the_debug_listener_sees_each_view_with_its_values(plan):
    context = _load(plan).create_execution_context()
    recorder = _Recorder()
    context.set_debug_listener(recorder)
    x = sample(3, seed=7)
    context.execute({"x": x})
    expected = reference(x)
    for name in VIEW_TENSORS:
        np.testing.assert_allclose(recorder.values[name], expected[name], rtol=1e-6, err_msg=name)
    assert recorder.layers["r2"] == "reshape_r2"


def test_the_profiler_lists_view_layers(plan):
    times: dict[str, float] = {}

    class Profiler(trt.IProfiler):
        def report_layer_time(self, layer_name, ms):
            times[layer_name] = ms

    context = _load(plan).create_execution_context()
    context.profiler = Profiler()
    context.execute({"x": sample(2)})
    assert VIEW_LAYERS <= set(times) and NOT_VIEW_SHUFFLES <= set(times), times


def test_mark_all_compares_the_reshaped_tensors(tmp_path):
    from polyx.build import BuildOptions
    from polyx.run_session import RunOptions, run_session

    path = tmp_path / "views.onnx"
    onnx.save(reshape_view_model(), path)
    result = run_session(RunOptions(model=path, use_engine=True, use_onnxrt=True, compare_engine_layers=True,
                                    build=BuildOptions(optimization_level=0, device="cpu")))
    compared = {c.name for c in result.comparisons}
    assert VIEW_TENSORS <= compared and result.passed, (compared, result.passed)


def test_inspect_model_counts_the_views(plan, tmp_path, capsys):
    from polyx.cli.app import main

    (tmp_path / "views.plan").write_bytes(plan)
    assert main(["inspect", "model", str(tmp_path / "views.plan"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["layer_counts"]["views"] == 4
    assert main(["inspect", "model", str(tmp_path / "views.plan"), "--show", "layers"]) == 0
    out = capsys.readouterr().out
    assert "4 shuffle layers are views" in out and out.count("yes (no kernel)") == 4, out


def test_a_network_with_data_dependent_sizes_has_no_views():
    """Such a network runs in stages with an arena each: a view could reach into an earlier stage's arena."""
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
             helper.make_node("Reshape", ["a", "dims"], ["r"], name="reshape_r"),
             helper.make_node("Relu", ["r"], ["y"], name="relu_y"),
             helper.make_node("NonZero", ["x"], ["nz"], name="nonzero")]
    graph = helper.make_graph(nodes, "staged", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("nz", TensorProto.INT64, None)],
                              [helper.make_tensor("dims", TensorProto.INT64, [2], [0, 12])])
    engine = _load(_plan(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])))
    spec = next(s for s in engine.graph.layers if s.layer.name == "reshape_r")
    assert not spec.view and "runs in stages" in view_refusal(engine.graph, spec)
    x = sample(2)
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y"],
                               np.maximum(x, 0).reshape(2, 12), rtol=1e-6)


@pytest.mark.parametrize("case", [c for c in CASES if c.model in ("bert_tiny", "gpt2_tiny")], ids=lambda c: c.model)
def test_transformers_with_views_match_onnxruntime_in_no_more_memory(case):
    engine, _ = build_case(case, "cpu")
    views = _views(engine)
    assert len(views) == engine.meta["memory"]["view_layers"] > 0
    model = onnx.load(MODELS / f"{case.model}.onnx")
    session = ort.InferenceSession(str(MODELS / f"{case.model}.onnx"), providers=["CPUExecutionProvider"])
    context = engine.create_execution_context()
    for seed, shapes in enumerate(case.run_shapes):
        feeds = make_feeds(model, shapes, seed)
        got = context.execute(feeds)
        for name, expected in zip([o.name for o in session.get_outputs()], session.run(None, feeds)):
            np.testing.assert_allclose(got[name], expected, rtol=1e-4, atol=1e-4, err_msg=f"{name} at {shapes}")
    graph = engine.graph
    shapes = resolve_shapes(graph, {i: case.profile[graph.tensors[i].name][2] for i in graph.inputs}).shapes
    with_views, without = _plans(graph, shapes)
    # the peak is set by the largest activations (the MLP's), which are no reshapes: it may stay; the buffers shrink
    assert with_views.peak_bytes <= without.peak_bytes, (with_views, without)
    assert with_views.naive_bytes < without.naive_bytes, (with_views, without)


def test_the_documented_example_runs(capsys):
    """docs/architecture.md's memory-plan example, executed as written (tests/ is on the path here)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    section = text[text.index("## Memory plan and views"):]
    start = section.index("```python\n") + len("```python\n")
    exec(compile(section[start:section.index("```\n", start)], "docs/architecture.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(sorted(VIEW_LAYERS)) and lines[1].startswith("4 ") and lines[2] == "(3, 3, 4)", lines
