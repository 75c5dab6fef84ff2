"""Engine queries and ExecutionContext behaviour: shapes and profiles, errors, user buffers, threads, memory
plan, profiler. Values are checked against a float64 NumPy reference."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import engine as trt

FEATURES = 8
BIAS = np.linspace(-1, 1, FEATURES, dtype=np.float32).reshape(1, FEATURES)
SCALE = np.linspace(0.5, 2, FEATURES, dtype=np.float32).reshape(1, FEATURES)
PROFILE = ((1, FEATURES), (4, FEATURES), (8, FEATURES))
CHAIN = ["add", "abs", "mul", "sqrt", "softmax"]


def chain_network(network: trt.NetworkDefinition) -> None:
    """x (N,8) → +bias → abs → *scale → sqrt → softmax = y; max over axis 1 of y = m. No layer fuses."""
    x = network.add_input("x", trt.DataType.FLOAT, (-1, FEATURES))
    bias = network.add_constant(BIAS.shape, BIAS, name="bias").get_output(0)
    scale = network.add_constant(SCALE.shape, SCALE, name="scale").get_output(0)
    t = network.add_elementwise(x, bias, trt.ElementWiseOperation.SUM, name="add").get_output(0)
    t = network.add_unary(t, trt.UnaryOperation.ABS, name="abs").get_output(0)
    t = network.add_elementwise(t, scale, trt.ElementWiseOperation.PROD, name="mul").get_output(0)
    t = network.add_unary(t, trt.UnaryOperation.SQRT, name="sqrt").get_output(0)
    y = network.add_softmax(t, name="softmax").get_output(0)
    m = network.add_reduce(y, trt.ReduceOperation.MAX, 1 << 1, keep_dims=False, name="max").get_output(0)
    y.name, m.name = "y", "m"
    network.mark_output(y)
    network.mark_output(m)


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    t = np.sqrt(np.abs(x.astype(np.float64) + BIAS) * SCALE)
    e = np.exp(t - t.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    return {"y": y, "m": y.max(axis=1)}


@pytest.fixture(scope="module")
def engine() -> trt.Engine:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    chain_network(network)
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", *PROFILE)
    config.add_optimization_profile(profile)
    return trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))


def sample(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, FEATURES)).astype(np.float32)


def assert_matches(outputs: dict[str, np.ndarray], x: np.ndarray) -> None:
    expected = reference(x)
    assert set(outputs) == {"y", "m"}
    for name, value in expected.items():
        assert outputs[name].dtype == np.float32 and outputs[name].shape == value.shape
        np.testing.assert_allclose(outputs[name], value, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------------------------- engine queries
def test_engine_queries(engine: trt.Engine) -> None:
    assert engine.num_io_tensors == 3
    assert [engine.get_tensor_name(i) for i in range(3)] == ["x", "y", "m"]
    assert [engine.get_tensor_mode(n) for n in ("x", "y", "m")] == [trt.TensorIOMode.INPUT, trt.TensorIOMode.OUTPUT,
                                                                     trt.TensorIOMode.OUTPUT]
    assert {engine.get_tensor_dtype(n) for n in ("x", "y", "m")} == {trt.DataType.FLOAT}
    assert engine.get_tensor_shape("x") == (-1, FEATURES)
    assert engine.get_tensor_shape("y") == (-1, FEATURES)
    assert engine.get_tensor_shape("m") == (-1,)
    assert engine.num_layers == len(CHAIN) + 1
    assert engine.num_optimization_profiles == 1
    assert engine.get_tensor_profile_shape("x", 0) == PROFILE
    assert engine.device_memory_size > 0
    assert not engine.has_implicit_batch_dimension
    with pytest.raises(trt.ExecutionError, match="'nope' is not an input or output of this engine"):
        engine.get_tensor_dtype("nope")


def test_activation_memory_plan_reuses_memory(engine: trt.Engine) -> None:
    memory = engine.meta["memory"]
    # Four intermediates of 8 x 8 floats at the max shape (256 bytes each); at most two are alive at a time.
    assert memory["planned_tensors"] == 4
    assert memory["naive_bytes"] == 4 * 256
    assert memory["planned_peak_bytes"] == 2 * 256 < memory["naive_bytes"]
    assert engine.device_memory_size == memory["planned_peak_bytes"] + memory["workspace_bytes"]


# ---------------------------------------------------------------------------------------------- shapes
def test_output_shapes_resolve_after_input_shapes(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    assert context.get_tensor_shape("y") == (-1, FEATURES)
    assert not context.all_binding_shapes_specified
    assert context.infer_shapes() == ["x"]
    context.set_input_shape("x", (3, FEATURES))
    assert context.all_binding_shapes_specified and context.infer_shapes() == []
    assert context.get_tensor_shape("x") == (3, FEATURES)
    assert context.get_tensor_shape("y") == (3, FEATURES)
    assert context.get_tensor_shape("m") == (3,)
    context.set_input_shape("x", (8, FEATURES))
    assert context.get_tensor_shape("m") == (8,)


@pytest.mark.parametrize("shape, message", [
    ((9, FEATURES), r"input 'x': shape \(9, 8\) is outside optimization profile 0 \(min \(1, 8\), max \(8, 8\)\)"),
    ((0, FEATURES), r"input 'x': shape \(0, 8\) is outside optimization profile 0 \(min \(1, 8\), max \(8, 8\)\)"),
    ((2, 7), r"input 'x': shape \(2, 7\) does not match the engine's static shape \(-1, 8\)"),
    ((2, FEATURES, 1), r"input 'x': shape \(2, 8, 1\) has rank 3, the engine expects rank 2"),
])
def test_input_shape_outside_profile(engine: trt.Engine, shape, message) -> None:
    context = engine.create_execution_context()
    with pytest.raises(trt.ShapeError, match=message):
        context.set_input_shape("x", shape)
    with pytest.raises(trt.ShapeError, match=message):
        context.execute({"x": np.zeros(shape, np.float32)})


def test_two_batch_sizes_in_one_profile(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    for batch in (1, 8, 3, 1):
        x = sample(batch, seed=batch)
        assert_matches(context.execute({"x": x}), x)


# ---------------------------------------------------------------------------------------------- wrong use
def test_wrong_input_dtype(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    with pytest.raises(trt.ExecutionError, match="input 'x': expected dtype float32, got float64"):
        context.execute({"x": sample(2).astype(np.float64)})


def test_missing_and_unknown_inputs(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    with pytest.raises(trt.ExecutionError, match="missing input 'x'"):
        context.execute({})
    with pytest.raises(trt.ExecutionError, match=r"unknown input\(s\) \['z'\]; the engine's inputs are \['x'\]"):
        context.execute({"x": sample(2), "z": sample(2)})
    with pytest.raises(trt.ExecutionError, match="'z' is not an input or output of this engine"):
        context.set_input_shape("z", (2, FEATURES))
    with pytest.raises(trt.ExecutionError, match="'y' is an output; only input shapes can be set"):
        context.set_input_shape("y", (2, FEATURES))


# ---------------------------------------------------------------------------------------------- user buffers
def test_execute_async_v3_into_user_arrays(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    x = sample(5, seed=11)
    y = np.full((5, FEATURES), np.nan, np.float32)
    m = np.full((5,), np.nan, np.float32)
    context.set_input_shape("x", x.shape)
    for name, array in (("x", x), ("y", y), ("m", m)):
        assert context.set_tensor_address(name, array)
    assert context.get_tensor_address("y") is y
    assert context.execute_async_v3(0)
    assert_matches({"y": y, "m": m}, x)

    x2 = sample(5, seed=12)
    x[...] = x2  # same buffers, new data: the next run reads it
    assert context.execute_async_v3(0)
    assert_matches({"y": y, "m": m}, x2)


def test_execute_v2_with_bindings_in_io_order(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    x = sample(2, seed=5)
    y, m = np.empty((2, FEATURES), np.float32), np.empty((2,), np.float32)
    assert context.execute_v2([x, y, m])
    assert_matches({"y": y, "m": m}, x)


def test_user_buffer_errors(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    x = sample(4)
    context.set_tensor_address("x", x)
    context.set_tensor_address("y", np.empty((4, FEATURES), np.float32))
    with pytest.raises(trt.ExecutionError, match=r"no address set for 'm' \(call set_tensor_address\)"):
        context.execute_async_v3(0)
    context.set_tensor_address("m", np.empty((3,), np.float32))
    with pytest.raises(trt.ExecutionError, match=r"output 'm': buffer shape \(3,\) does not match \(4,\)"):
        context.execute_async_v3(0)
    context.set_tensor_address("m", np.empty((4,), np.float64))
    with pytest.raises(trt.ExecutionError, match="output 'm': buffer dtype float64 does not match the engine's"):
        context.execute_async_v3(0)


# ---------------------------------------------------------------------------------------------- threads
def test_contexts_run_concurrently_in_threads(engine: trt.Engine) -> None:
    failures: list[str] = []
    barrier = threading.Barrier(4)

    def worker(thread: int) -> None:
        context = engine.create_execution_context()
        barrier.wait()
        for run in range(20):
            x = sample(1 + (thread + run) % 8, seed=1000 * thread + run)
            try:
                assert_matches(context.execute({"x": x}), x)
            except Exception as exc:  # noqa: BLE001 - collected and reported by the main thread
                failures.append(f"thread {thread} run {run}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_one_context_shared_by_two_threads_at_different_batch_sizes(engine: trt.Engine) -> None:
    """execute() is atomic: the shape one thread sets cannot leak into the other thread's run. A pause right after
    each set_input_shape widens the window in which an unlocked shape would be overwritten by the other thread."""
    context = engine.create_execution_context()
    set_input_shape = context.set_input_shape

    def slow_set_input_shape(name: str, shape) -> bool:
        result = set_input_shape(name, shape)
        time.sleep(0.005)
        return result

    context.set_input_shape = slow_set_input_shape
    failures: list[str] = []
    barrier = threading.Barrier(2)

    def worker(batch: int) -> None:
        barrier.wait()
        for run in range(15):
            x = sample(batch, seed=100 * batch + run)
            try:
                outputs = context.execute({"x": x})
                assert outputs["y"].shape == (batch, FEATURES)
                assert_matches(outputs, x)
            except Exception as exc:  # noqa: BLE001 - collected and reported by the main thread
                failures.append(f"batch {batch} run {run}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(batch,)) for batch in (1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# ---------------------------------------------------------------------------------------------- profiler
class LayerTimes(trt.IProfiler):
    def __init__(self):
        self.calls: list[tuple[str, float]] = []

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        self.calls.append((layer_name, ms))


def test_profiler_receives_every_device_layer(engine: trt.Engine) -> None:
    device_layers = [row["name"] for row in engine.layer_info() if not row["host"]]
    assert device_layers == CHAIN + ["max"]
    context = engine.create_execution_context()
    context.profiler = LayerTimes()
    x = sample(3)
    assert_matches(context.execute({"x": x}), x)
    assert_matches(context.execute({"x": x}), x)
    assert [name for name, _ in context.profiler.calls] == device_layers * 2
    assert all(ms >= 0 for _, ms in context.profiler.calls)


def test_profiler_reports_replayed_layer_time_where_the_backend_replays(engine: trt.Engine, monkeypatch) -> None:
    """On a backend that replays (the GPU's CUDA graphs), each layer's reported time is the median of its replays'
    times, after the layer ran for real, and the results stay those of an unprofiled run; with
    `profile_device_time = False`, or on the CPU, the layer's wall time is reported. The replaying backend is the
    CPU's here with its replay timing stood in, so the CPU tests see the path the GPU takes."""
    backend = engine.backend
    replayed: list[int] = []

    def time_runs(run, iterations):
        for _ in range(iterations):
            run()  # the step again, with the same slots: its outputs must come out the same
        replayed.append(iterations)
        return [7.0, 5.0, 6.0][:iterations]

    monkeypatch.setattr(backend, "supports_cuda_graphs", True, raising=False)
    monkeypatch.setattr(backend, "time_runs", time_runs, raising=False)
    context = engine.create_execution_context()
    context.profiler = LayerTimes()
    x = sample(5)
    assert_matches(context.execute({"x": x}), x)
    layers = len(CHAIN) + 1
    assert replayed == [3] * layers
    assert context.profiler.calls and all(ms == 6.0 for _, ms in context.profiler.calls)
    context.profile_device_time = False
    context.profiler = LayerTimes()
    assert_matches(context.execute({"x": x}), x)
    assert replayed == [3] * layers, "wall time asked for: no replays"
    assert len(context.profiler.calls) == layers and all(ms != 6.0 for _, ms in context.profiler.calls)


# ---------------------------------------------------------------------------------------------- 0-D tensors
def test_scalar_input_and_folded_scalar_output() -> None:
    """0-D tensors stay 0-D: a scalar network input, and a scalar output that constant folding computes."""
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, ())
    two = network.add_constant((), np.float32(2), name="two").get_output(0)
    three = network.add_constant((), np.float32(3), name="three").get_output(0)
    y = network.add_elementwise(x, two, trt.ElementWiseOperation.PROD, name="double").get_output(0)
    s = network.add_elementwise(two, three, trt.ElementWiseOperation.SUM, name="five").get_output(0)
    y.name, s.name = "y", "s"
    network.mark_output(y)
    network.mark_output(s)
    config = builder.create_builder_config()
    config.device = "cpu"
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    assert engine.meta["passes"]["constant_folding"] == 1
    assert engine.get_tensor_shape("x") == engine.get_tensor_shape("y") == engine.get_tensor_shape("s") == ()
    outputs = engine.create_execution_context().execute({"x": np.array(1.5, np.float32)})
    assert outputs["y"].shape == () and outputs["y"] == np.float32(3)
    assert outputs["s"].shape == () and outputs["s"] == np.float32(5)
