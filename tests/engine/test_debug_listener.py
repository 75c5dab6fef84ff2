"""ExecutionContext.set_debug_listener: every tensor at a layer boundary of the built engine is handed over right
after the layer that writes it, with the plan untouched. Values are checked against a float64 NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from fused_block_model import fused_block_model, reference_tensors, sample_input

import engine as trt
from engine.conformance.harness import build_engine_for_feeds, parse_onnx

BOUNDARY = ["relu1_out", "pool_out", "relu2_out", "flat_out", "y"]  # conv+bn+relu, pool, conv+add+relu, ...


class Recorder(trt.IDebugListener):
    def __init__(self, backend=None):
        self.seen: list[tuple[str, str]] = []
        self.values: dict[str, np.ndarray] = {}
        self.backend = backend

    def process_debug_tensor(self, name, array, layer):
        self.seen.append((name, layer))
        host = self.backend.to_host(array) if self.backend is not None else array
        self.values[name] = np.array(host, copy=True)  # valid during the call only: later layers reuse the memory


def _engine(device: str = "cpu") -> trt.Engine:
    return build_engine_for_feeds(parse_onnx(fused_block_model()), {"x": sample_input()}, device=device)


@pytest.fixture(scope="module")
def engine() -> trt.Engine:
    return _engine()


def test_every_layer_boundary_tensor_reaches_the_listener_with_its_value(engine: trt.Engine) -> None:
    x = sample_input(3)
    context = engine.create_execution_context()
    recorder = Recorder()
    context.set_debug_listener(recorder)
    outputs = context.execute({"x": x})
    assert recorder.seen == [("relu1_out", "conv1"), ("pool_out", "pool"), ("relu2_out", "conv2"),
                             ("flat_out", "flatten"), ("y", "fc")]
    expected = reference_tensors(x)
    for name in BOUNDARY:
        np.testing.assert_allclose(recorder.values[name], expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(outputs["y"], recorder.values["y"])


def test_listener_does_not_change_the_engine_or_its_results(engine: trt.Engine) -> None:
    x = sample_input(4)
    plain = engine.create_execution_context().execute({"x": x})["y"]
    context = engine.create_execution_context()
    context.set_debug_listener(Recorder())
    watched = context.execute({"x": x})["y"]
    np.testing.assert_array_equal(plain, watched)
    assert [row["fused_from"] for row in engine.layer_info() if row["type"] == "CONVOLUTION"] == [
        ["conv1", "bn", "relu1"], ["conv2", "add", "relu2"]]
    assert engine.num_io_tensors == 2  # nothing was marked as an output


def test_listener_watches_only_named_tensors_and_can_be_removed(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    recorder = Recorder()
    context.set_debug_listener(recorder, ["pool_out"])
    context.execute({"x": sample_input()})
    assert recorder.seen == [("pool_out", "pool")]
    context.set_debug_listener(None)
    context.execute({"x": sample_input()})
    assert len(recorder.seen) == 1 and context.get_debug_listener() is None


def test_absorbed_or_unknown_tensor_is_refused_by_name(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    with pytest.raises(trt.ExecutionError, match="'bn_out' is not a tensor at a layer boundary"):
        context.set_debug_listener(Recorder(), ["bn_out"])
    with pytest.raises(trt.ExecutionError, match="no process_debug_tensor"):
        context.set_debug_listener(object())


def test_debug_tensor_shapes_follow_the_input_shapes(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    context.set_input_shape("x", sample_input().shape)
    shapes = context.debug_tensor_shapes()
    assert list(shapes) == BOUNDARY
    assert shapes["pool_out"] == ((2, 4, 4, 4), trt.DataType.FLOAT) and shapes["y"] == ((2, 5), trt.DataType.FLOAT)


def test_a_failing_listener_stops_the_execution_with_its_error(engine: trt.Engine) -> None:
    class Failing(trt.IDebugListener):
        def process_debug_tensor(self, name, array, layer):
            raise RuntimeError(f"stop at {name}")

    context = engine.create_execution_context()
    context.set_debug_listener(Failing())
    with pytest.raises(RuntimeError, match="stop at relu1_out"):
        context.execute({"x": sample_input()})


@pytest.mark.gpu
def test_gpu_listener_sees_the_fused_engine_tensors_on_the_device() -> None:
    engine = _engine("gpu")
    x = sample_input(5)
    context = engine.create_execution_context()
    context.use_cuda_graph = True  # a listener turns capture off: every layer must hand its tensor over
    recorder = Recorder(engine.backend)
    context.set_debug_listener(recorder)
    context.execute({"x": x})
    assert [name for name, _ in recorder.seen] == BOUNDARY and context.cuda_graph_captures == 0
    expected = reference_tensors(x)
    for name in BOUNDARY:
        np.testing.assert_allclose(recorder.values[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=name)
