"""Data-dependent shapes end to end: NonZero mask selections and NMS chains built with a dynamic profile and run
against onnxruntime at several shapes; layers consuming data-dependent tensors; -1 dims reported by the engine;
the output allocator called with the right sizes; user buffers; plan round trips; the upper bound used for timing;
errors. GPU variants are marked gpu."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from data_dependent_models import detection_model, mask_model

import engine as trt
from engine.conformance.harness import parse_onnx
from engine.errors import ExecutionError

RNG = np.random.default_rng(5)


def build(model: onnx.ModelProto, shapes: dict[str, tuple], device: str = "cpu",
          selector: trt.IAlgorithmSelector | None = None) -> trt.Engine:
    """One profile; `shapes` maps each dynamic input to (min, opt, max)."""
    network = parse_onnx(model)
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.builder_optimization_level = 0
    config.device = device
    config.algorithm_selector = selector
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    return trt.Runtime().deserialize_cuda_engine(builder.build_serialized_network(network, config))


def ort_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def assert_outputs_match(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name, expected in want.items():
        actual = np.asarray(got[name])
        assert actual.dtype == expected.dtype and actual.shape == expected.shape, (name, actual.shape,
                                                                                   expected.shape)
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def mask_engine() -> trt.Engine:
    return build(mask_model(), {"x": ((1, 5), (4, 5), (8, 5))})


def detections(n: int) -> dict[str, np.ndarray]:
    low = RNG.uniform(0, 6, (1, n, 2))
    boxes = np.concatenate([low, low + RNG.uniform(1, 3, (1, n, 2))], -1).astype(np.float32)
    return {"boxes": boxes, "scores": RNG.random((1, n)).astype(np.float32)}


def test_mask_selection_matches_onnxruntime_at_several_shapes(mask_engine):
    context = mask_engine.create_execution_context()
    model = mask_model()
    for rows in (1, 3, 8, 3, 6):  # repeated shapes reuse cached stages; counts differ call by call
        x = RNG.standard_normal((rows, 5)).astype(np.float32)
        assert_outputs_match(context.execute({"x": x}), ort_outputs(model, {"x": x}))


def test_nothing_selected_gives_empty_outputs_and_a_zero_sum(mask_engine):
    x = -np.ones((4, 5), np.float32)
    outputs = mask_engine.create_execution_context().execute({"x": x})
    assert outputs["rows"].shape == (0, 3) and outputs["picked"].shape == (0,)
    assert outputs["total"] == 0 and outputs["count"].tolist() == [0]
    assert_outputs_match(outputs, ort_outputs(mask_model(), {"x": x}))


def test_nms_chain_matches_onnxruntime():
    model = detection_model()
    engine = build(model, {"boxes": ((1, 1, 4), (1, 20, 4), (1, 64, 4)), "scores": ((1, 1), (1, 20), (1, 64))})
    context = engine.create_execution_context()
    for n in (20, 64, 7, 1):
        feeds = detections(n)
        assert_outputs_match(context.execute(feeds), ort_outputs(model, feeds))


def test_engine_reports_data_dependent_dims_and_the_context_the_last_sizes(mask_engine):
    assert mask_engine.get_tensor_shape("rows") == (-1, 3)
    assert mask_engine.get_tensor_shape("picked") == (-1,)
    assert mask_engine.get_tensor_shape("relu") == (-1, 5)
    context = mask_engine.create_execution_context()
    context.set_input_shape("x", (4, 5))
    assert context.get_tensor_shape("relu") == (4, 5)
    assert context.get_tensor_shape("rows") == (-1, 3)  # unknown until an execution
    x = np.full((4, 5), -1, np.float32)
    x[[0, 2], 1] = 2.0
    context.execute({"x": x})
    assert context.get_tensor_shape("rows") == (2, 3) and context.get_tensor_shape("picked") == (2,)


class RecordingAllocator(trt.IOutputAllocator):
    """Keeps one NumPy byte buffer per output, grown when asked for more; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.buffers: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple] = {}

    def reallocate_output(self, tensor_name, memory, size, alignment):
        given_back = memory is not None and memory is self.buffers.get(tensor_name)
        self.calls.append(("reallocate", tensor_name, size, alignment, given_back))
        if tensor_name not in self.buffers or self.buffers[tensor_name].nbytes < size:
            self.buffers[tensor_name] = np.empty(max(size, 1), np.uint8)
        return self.buffers[tensor_name]

    def notify_shape(self, tensor_name, shape):
        self.calls.append(("shape", tensor_name, tuple(shape)))
        self.shapes[tensor_name] = tuple(shape)

    def value(self, name: str, dtype) -> np.ndarray:
        count = int(np.prod(self.shapes[name]))
        return self.buffers[name][:count * np.dtype(dtype).itemsize].view(dtype).reshape(self.shapes[name])


def _enqueue_with_allocators(context, x: np.ndarray, allocator) -> np.ndarray:
    relu = np.empty_like(x)
    context.set_input_shape("x", x.shape)
    context.set_tensor_address("x", x)
    context.set_tensor_address("relu", relu)
    for name in ("rows", "picked", "total", "count"):
        context.set_output_allocator(name, allocator)
    assert context.execute_async_v3(0)
    return relu


def test_output_allocator_is_called_with_the_sizes_of_this_execution(mask_engine):
    context = mask_engine.create_execution_context()
    allocator = RecordingAllocator()
    x = np.full((3, 5), -1, np.float32)
    x[1, [0, 3, 4]] = 5.0  # one row and three elements selected
    relu = _enqueue_with_allocators(context, x, allocator)
    want = ort_outputs(mask_model(), {"x": x})
    np.testing.assert_array_equal(relu, want["relu"])
    assert ("reallocate", "rows", 1 * 3 * 4, 256, False) in allocator.calls
    assert ("shape", "rows", (1, 3)) in allocator.calls and ("shape", "picked", (3,)) in allocator.calls
    assert ("reallocate", "count", 8, 256, False) in allocator.calls and ("shape", "total", ()) in allocator.calls
    for name, dtype in (("rows", np.float32), ("picked", np.float32), ("total", np.float32), ("count", np.int64)):
        np.testing.assert_allclose(allocator.value(name, dtype), want[name], rtol=1e-6, err_msg=name)
    # A second run with more rows selected: the allocator is offered the memory it gave last time and grows it.
    allocator.calls.clear()
    x = RNG.uniform(1, 2, (6, 5)).astype(np.float32)
    _enqueue_with_allocators(context, x, allocator)
    assert ("reallocate", "rows", 6 * 3 * 4, 256, True) in allocator.calls
    assert ("shape", "rows", (6, 3)) in allocator.calls
    np.testing.assert_allclose(allocator.value("rows", np.float32), ort_outputs(mask_model(), {"x": x})["rows"],
                               rtol=1e-5, atol=1e-5)
    assert context.get_tensor_shape("picked") == (30,)


def test_host_output_allocator_returns_the_last_outputs(mask_engine):
    context = mask_engine.create_execution_context()
    allocator = trt.HostOutputAllocator()
    x = RNG.standard_normal((5, 5)).astype(np.float32)
    _enqueue_with_allocators(context, x, allocator)
    want = ort_outputs(mask_model(), {"x": x})
    np.testing.assert_allclose(allocator.result("rows", np.float32), want["rows"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(allocator.result("count", np.int64), want["count"])


def test_execute_v2_writes_into_big_enough_buffers_and_refuses_small_ones(mask_engine):
    context = mask_engine.create_execution_context()
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    want = ort_outputs(mask_model(), {"x": x})
    # IO order: x, then outputs in the model's order; data-dependent ones get buffers at their upper bound.
    names = [mask_engine.get_tensor_name(i) for i in range(mask_engine.num_io_tensors)]
    assert names == ["x", "rows", "picked", "total", "count", "relu"]
    buffers = [x, np.zeros(4 * 3, np.float32), np.zeros(20, np.float32), np.zeros((), np.float32),
               np.zeros(1, np.int64), np.zeros((4, 5), np.float32)]
    context.set_input_shape("x", x.shape)
    assert context.execute_v2(buffers)
    rows_shape = context.get_tensor_shape("rows")
    assert rows_shape == want["rows"].shape
    np.testing.assert_allclose(buffers[1][:np.prod(rows_shape)].reshape(rows_shape), want["rows"], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(buffers[4], want["count"])
    x = RNG.uniform(1, 2, (4, 5)).astype(np.float32)  # every row selected: 12 floats, more than 5 given
    buffers[0], buffers[1] = x, np.zeros(5, np.float32)
    with pytest.raises(ExecutionError, match=r"output 'rows': its shape is \[4, 3\] in this execution \(48 bytes\), "
                                             r"the memory given holds 20 bytes; set an output allocator"):
        context.execute_v2(buffers)


class RefusingAllocator(trt.IOutputAllocator):
    def reallocate_output(self, tensor_name, memory, size, alignment):
        return None

    def notify_shape(self, tensor_name, shape):
        raise AssertionError("not reached")


class FailingAllocator(RefusingAllocator):
    def reallocate_output(self, tensor_name, memory, size, alignment):
        raise MemoryError("pool exhausted")


@pytest.mark.parametrize("allocator,message", [
    (RefusingAllocator(), r"output 'rows': the output allocator gave no memory for \d+ bytes"),
    (FailingAllocator(), "output 'rows': the output allocator's reallocate_output raised MemoryError: pool exhausted"),
])
def test_allocator_failures_name_the_output(mask_engine, allocator, message):
    context = mask_engine.create_execution_context()
    x = RNG.uniform(1, 2, (2, 5)).astype(np.float32)
    context.set_input_shape("x", x.shape)
    for name, buffer in (("x", x), ("relu", np.empty_like(x)), ("picked", np.empty(10, np.float32)),
                         ("total", np.empty((), np.float32)), ("count", np.empty(1, np.int64))):
        context.set_tensor_address(name, buffer)
    context.set_output_allocator("rows", allocator)
    with pytest.raises(ExecutionError, match=message):
        context.execute_async_v3(0)


def test_output_allocator_api_errors(mask_engine):
    context = mask_engine.create_execution_context()
    with pytest.raises(ExecutionError, match="'x' is an input; output allocators are for outputs"):
        context.set_output_allocator("x", trt.HostOutputAllocator())
    with pytest.raises(ExecutionError, match="output allocator for 'rows' has no notify_shape"):
        context.set_output_allocator("rows", object.__new__(type("Half", (), {"reallocate_output": print})))
    with pytest.raises(ExecutionError, match="'nope' is not an input or output"):
        context.set_output_allocator("nope", trt.HostOutputAllocator())
    allocator = trt.HostOutputAllocator()
    context.set_output_allocator("rows", allocator)
    assert context.get_output_allocator("rows") is allocator
    context.set_output_allocator("rows", None)
    assert context.get_output_allocator("rows") is None
    x = np.ones((2, 5), np.float32)
    context.set_input_shape("x", x.shape)
    context.set_tensor_address("x", x)
    with pytest.raises(ExecutionError, match=r"no address set for 'rows' \(call set_tensor_address or "
                                             r"set_output_allocator\)"):
        context.execute_async_v3(0)


def test_plan_round_trip_keeps_data_dependent_layers(mask_engine, tmp_path):
    path = tmp_path / "mask.plan"
    path.write_bytes(mask_engine.serialize())
    loaded = trt.Runtime().deserialize_cuda_engine(path.read_bytes())
    types = {row["type"] for row in loaded.layer_info()}
    assert "NON_ZERO" in types and loaded.get_tensor_shape("rows") == (-1, 3)
    x = RNG.standard_normal((7, 5)).astype(np.float32)
    assert_outputs_match(loaded.create_execution_context().execute({"x": x}), ort_outputs(mask_model(), {"x": x}))


def test_layers_after_a_data_dependent_one_are_timed_at_its_upper_bound():
    class Recorder(trt.IAlgorithmSelector):
        contexts: dict = {}

        def select_algorithms(self, context, choices):
            self.contexts[context.name] = context
            return list(range(len(choices)))

        def report_algorithms(self, contexts, choices):
            pass

    recorder = Recorder()
    build(mask_model(), {"x": ((1, 5), (4, 5), (8, 5))}, selector=recorder)
    by_type = {}
    for context in recorder.contexts.values():
        by_type.setdefault(context.layer_type, []).append(context)
    # NonZero of the [n, 5] mask: at most n * 5 indices; (min, opt, max) of its output is (5, 20, 40) columns.
    nonzero_outputs = {c.output_shapes[0] for c in by_type["NON_ZERO"]}
    assert ((2, 5), (2, 20), (2, 40)) in nonzero_outputs and ((1, 1), (1, 4), (1, 8)) in nonzero_outputs
    matmul = by_type["MATRIX_MULTIPLY"][0]
    assert matmul.input_shapes[0] == ((1, 5), (4, 5), (8, 5))  # rows gathered at the upper bound of the row mask


def test_the_docs_example_runs(capsys):
    text = (Path(__file__).resolve().parents[2] / "docs" / "dynamic-shapes.md").read_text()
    block = re.search(r"## Example.*?```python\n(.*?)```", text, re.DOTALL)[1]
    exec(compile(block, "docs/dynamic-shapes.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "(-1, 3)" and lines[1].endswith("rows selected")


@pytest.mark.gpu
def test_gpu_mask_selection_and_nms_chain_match_onnxruntime():
    pytest.importorskip("cupy")
    engine = build(mask_model(), {"x": ((1, 5), (4, 5), (8, 5))}, device="gpu")
    context = engine.create_execution_context()
    context.use_cuda_graph = True  # staged engines read sizes back between stages: they run without a graph
    for rows in (1, 4, 8):
        x = RNG.standard_normal((rows, 5)).astype(np.float32)
        assert_outputs_match(context.execute({"x": x}), ort_outputs(mask_model(), {"x": x}))
    assert context.cuda_graph_captures == 0
    model = detection_model()
    engine = build(model, {"boxes": ((1, 1, 4), (1, 20, 4), (1, 64, 4)), "scores": ((1, 1), (1, 20), (1, 64))},
                   device="gpu")
    context = engine.create_execution_context()
    for n in (20, 64, 3):
        feeds = detections(n)
        assert_outputs_match(context.execute(feeds), ort_outputs(model, feeds))


@pytest.mark.gpu
def test_gpu_output_allocator_gets_device_memory():
    cupy = pytest.importorskip("cupy")

    class DeviceAllocator(trt.IOutputAllocator):
        def __init__(self):
            self.memory, self.shapes = {}, {}

        def reallocate_output(self, tensor_name, memory, size, alignment):
            self.memory[tensor_name] = cupy.empty(max(size, 1), cupy.uint8)
            return self.memory[tensor_name]

        def notify_shape(self, tensor_name, shape):
            self.shapes[tensor_name] = tuple(shape)

    engine = build(mask_model(), {"x": ((1, 5), (4, 5), (8, 5))}, device="gpu")
    context = engine.create_execution_context()
    x = RNG.standard_normal((6, 5)).astype(np.float32)
    allocator = DeviceAllocator()
    context.set_input_shape("x", x.shape)
    context.set_tensor_address("x", cupy.asarray(x))
    context.set_tensor_address("relu", cupy.empty((6, 5), cupy.float32))
    for name in ("rows", "picked", "total", "count"):
        context.set_output_allocator(name, allocator)
    stream = cupy.cuda.Stream(non_blocking=True)
    context.execute_async_v3(stream.ptr)
    stream.synchronize()
    want = ort_outputs(mask_model(), {"x": x})
    shape = allocator.shapes["rows"]
    rows = allocator.memory["rows"][:int(np.prod(shape)) * 4].view(cupy.float32).reshape(shape)
    np.testing.assert_allclose(cupy.asnumpy(rows), want["rows"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edit, message", [
    (("bounding_box_format", "DIAGONAL"), r"params\.bounding_box_format: 'DIAGONAL' is not a BoundingBoxFormat"),
    (("topk_box_limit", "all"), r"NMS topk_box_limit must be a positive integer or None, got 'all'"),
    (("topk_box_limit", 0), r"NMS topk_box_limit must be a positive integer or None, got 0"),
])
def test_tampered_nms_params_are_refused_at_load(edit, message):
    from test_tampered_plans import load, reseal

    engine = build(detection_model(), {"boxes": ((1, 1, 4), (1, 8, 4), (1, 8, 4)), "scores": ((1, 1), (1, 8), (1, 8))})
    key, value = edit

    def tamper(header):
        layer = next(layer for layer in header["layers"] if layer["type"] == "NMS")
        layer["params"][key] = value

    with pytest.raises(trt.PlanFormatError, match=message):
        load(reseal(engine.serialize(), tamper))


def test_output_allocator_also_provides_outputs_sized_by_the_input_shapes(mask_engine):
    context = mask_engine.create_execution_context()
    allocator = RecordingAllocator()
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    context.set_input_shape("x", x.shape)
    context.set_tensor_address("x", x)
    for name in ("rows", "picked", "total", "count", "relu"):
        context.set_output_allocator(name, allocator)
    context.execute_async_v3(0)
    assert ("reallocate", "relu", 3 * 5 * 4, 256, False) in allocator.calls
    assert ("shape", "relu", (3, 5)) in allocator.calls
    want = ort_outputs(mask_model(), {"x": x})
    np.testing.assert_array_equal(allocator.value("relu", np.float32), want["relu"])
    np.testing.assert_allclose(allocator.value("picked", np.float32), want["picked"], rtol=1e-6)


def test_profiler_sees_every_layer_of_every_stage(mask_engine):
    class Names(trt.IProfiler):
        def __init__(self):
            self.names = []

        def report_layer_time(self, layer_name, ms):
            self.names.append(layer_name)

    context = mask_engine.create_execution_context()
    context.profiler = Names()
    context.execute({"x": RNG.standard_normal((4, 5)).astype(np.float32)})
    device_layers = [row["name"] for row in mask_engine.layer_info() if not row["host"]]
    assert sorted(context.profiler.names) == sorted(device_layers)


def test_replayed_profiling_leaves_data_dependent_layers_to_the_wall_clock(mask_engine, monkeypatch):
    """Where the backend replays layers for the profiler (the GPU), a data-dependent layer is not replayed: it reads
    its sizes back to the host and replaces its output arrays, which a replay must not do behind the run's back.
    The CPU backend stands in for the replaying one; the outputs still match onnxruntime."""
    replayed = []

    def time_runs(run, iterations):
        replayed.append(run.args[0].name)  # partial(run_step, step, ...)
        run()
        return [1.0] * iterations

    monkeypatch.setattr(mask_engine.backend, "supports_cuda_graphs", True, raising=False)
    monkeypatch.setattr(mask_engine.backend, "time_runs", time_runs, raising=False)

    class Times(trt.IProfiler):
        def __init__(self):
            self.times = {}

        def report_layer_time(self, layer_name, ms):
            self.times[layer_name] = ms

    context = mask_engine.create_execution_context()
    context.profiler = Times()
    x = RNG.standard_normal((4, 5)).astype(np.float32)
    assert_outputs_match(context.execute({"x": x}), ort_outputs(mask_model(), {"x": x}))
    kinds = {row["name"]: row["type"] for row in mask_engine.layer_info() if not row["host"]}
    data_dependent = {name for name, kind in kinds.items() if kind == "NON_ZERO"}
    assert data_dependent and replayed
    assert not data_dependent & set(replayed), "a data-dependent layer was replayed"
    assert set(replayed) | data_dependent == set(kinds)
    assert all(context.profiler.times[name] == 1.0 for name in replayed)
