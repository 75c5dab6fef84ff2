"""The runtime on the GPU: the plan's device, asynchronous execute_async_v3 on a caller's stream, user buffers as
CuPy arrays, raw pointers, DLPack objects and torch tensors, contexts on several streams from threads, and CUDA
graph capture/replay (identical outputs, recapture on shape change, logged fallback). Values are checked against
float64 NumPy."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import engine as trt
from engine.conformance.harness import build_engine_for_feeds
from engine.enums import ActivationType, LayerType, MatrixOperation
from engine.tactics import Tactic, register_tactic, unregister_tactic

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
RNG = np.random.default_rng(41)
FEATURES, HIDDEN, CLASSES = 16, 32, 8
W1 = RNG.standard_normal((FEATURES, HIDDEN)).astype(np.float32) / 4
B1 = RNG.standard_normal(HIDDEN).astype(np.float32)
W2 = RNG.standard_normal((HIDDEN, CLASSES)).astype(np.float32) / 4


def mlp_network() -> trt.NetworkDefinition:
    """x (N, 16) → Gemm + bias → ReLU (fused) → MatMul → softmax = y; LayerNorm of the hidden layer = h."""
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (-1, FEATURES))
    mm = net.add_layer(LayerType.MATRIX_MULTIPLY, [x, net.add_constant(W1.shape, W1).get_output(0),
                                                   net.add_constant(B1.shape, B1).get_output(0)],
                       {"op0": MatrixOperation.NONE, "op1": MatrixOperation.NONE, "alpha": 1.0, "beta": 1.0})
    hidden = net.add_activation(mm.get_output(0), ActivationType.RELU).get_output(0)
    logits = net.add_matrix_multiply(hidden, MatrixOperation.NONE, net.add_constant(W2.shape, W2).get_output(0),
                                     MatrixOperation.NONE).get_output(0)
    y = net.add_softmax(logits).get_output(0)
    h = net.add_normalization(hidden, None, None, [1]).get_output(0)
    y.name, h.name = "y", "h"
    net.mark_output(y)
    net.mark_output(h)
    return net


def reference(x: np.ndarray) -> dict[str, np.ndarray]:
    hidden = np.maximum(x.astype(np.float64) @ W1 + B1, 0)
    logits = hidden @ W2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    centered = hidden - hidden.mean(axis=1, keepdims=True)
    return {"y": e / e.sum(axis=1, keepdims=True),
            "h": centered / np.sqrt((centered ** 2).mean(axis=1, keepdims=True) + 1e-5)}


def assert_matches(outputs: dict, x: np.ndarray) -> None:
    for name, want in reference(x).items():
        got = outputs[name]
        got = cupy.asnumpy(got) if isinstance(got, cupy.ndarray) else np.asarray(got)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)


@pytest.fixture(scope="module")
def engine() -> trt.Engine:
    logger = trt.CapturingLogger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    config = builder.create_builder_config()
    config.device = "gpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, FEATURES), (8, FEATURES), (64, FEATURES))
    config.add_optimization_profile(profile)
    return trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(mlp_network(), config))


def sample(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, FEATURES)).astype(np.float32)


def test_plan_records_the_gpu_and_its_tactics(engine: trt.Engine) -> None:
    assert engine.device == "gpu" and engine.meta["device"] == "gpu"
    assert "sm_" in engine.meta["device_name"]
    tactics = {row["tactic"] for row in engine.layer_info() if not row["host"]}
    assert all(name.startswith("gpu") for name in tactics), tactics
    assert engine.device_memory_size > 0


def test_gpu_plan_is_refused_where_no_gpu_is_usable(engine: trt.Engine, monkeypatch) -> None:
    import engine.backends as backends

    monkeypatch.setattr(backends, "gpu_available", lambda: False)
    with pytest.raises(trt.PlanFormatError, match=r"built for device 'gpu', which is not usable here.*no CUDA GPU"):
        trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(engine.serialize())


def test_execute_with_host_arrays(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    for batch in (1, 5, 64):
        x = sample(batch, batch)
        outputs = context.execute({"x": x})
        assert all(isinstance(v, np.ndarray) for v in outputs.values())
        assert_matches(outputs, x)
    x = sample(3, 9)
    assert_matches(context.execute({"x": cupy.asarray(x)}), x)  # device feeds work too


SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) { }
}
"""


def busy(stream, seconds: float = 0.3) -> None:
    """Occupies `stream` for about `seconds` with a one-thread spin loop."""
    kernel = cupy.RawKernel(SPIN, "spin")
    with stream:
        kernel((1,), (1,), (np.int64(seconds * 2e9),))  # cycles at about 2 GHz


def test_execute_async_v3_enqueues_without_waiting(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    stream = cupy.cuda.Stream(non_blocking=True)
    x = sample(7, 1)
    with stream:
        x_dev, y_dev, h_dev = cupy.asarray(x), cupy.empty((7, CLASSES), cupy.float32), cupy.empty((7, HIDDEN),
                                                                                                  cupy.float32)
    for name, array in (("x", x_dev), ("y", y_dev), ("h", h_dev)):
        context.set_tensor_address(name, array)
    context.execute_async_v3(stream.ptr)  # binds the shapes (allocations) once
    stream.synchronize()
    y_dev.fill(np.nan)
    busy(stream)
    assert context.execute_async_v3(stream.ptr)
    assert not stream.done, "execute_async_v3 waited for the stream"
    stream.synchronize()
    assert_matches({"y": y_dev, "h": h_dev}, x)


class DlpackOnly:
    """A device buffer reachable only through the DLPack protocol."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


def test_user_buffers_as_pointers_dlpack_and_interfaces(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    x = sample(4, 2)
    x_dev, y_dev, h_dev = cupy.asarray(x), cupy.empty((4, CLASSES), cupy.float32), cupy.empty((4, HIDDEN),
                                                                                              cupy.float32)
    context.set_input_shape("x", (4, FEATURES))
    context.set_tensor_address("x", x_dev.data.ptr)
    context.set_tensor_address("y", DlpackOnly(y_dev))
    context.set_tensor_address("h", h_dev.data.ptr)
    context.execute_async_v3(0)
    cupy.cuda.get_current_stream().synchronize()
    assert_matches({"y": y_dev, "h": h_dev}, x)

    class Interface:  # only __cuda_array_interface__ (Numba, PyTorch and others export it)
        def __init__(self, array):
            self.__cuda_array_interface__ = array.__cuda_array_interface__

    y_dev.fill(np.nan)
    context.set_tensor_address("x", Interface(x_dev))
    context.set_tensor_address("y", Interface(y_dev))
    context.execute_async_v3(0)
    cupy.cuda.get_current_stream().synchronize()
    assert_matches({"y": y_dev, "h": h_dev}, x)
    y_dev.fill(np.nan)
    assert context.execute_v2([x_dev, y_dev, h_dev])  # synchronous
    assert_matches({"y": y_dev, "h": h_dev}, x)


def test_pointer_without_shape_and_host_buffer_errors(engine: trt.Engine) -> None:
    context = engine.create_execution_context()
    x_dev = cupy.asarray(sample(2, 3))
    context.set_tensor_address("x", x_dev.data.ptr)
    context.set_tensor_address("y", cupy.empty((2, CLASSES), cupy.float32))
    context.set_tensor_address("h", cupy.empty((2, HIDDEN), cupy.float32))
    with pytest.raises(trt.ExecutionError, match=r"tensor 'x': a raw device pointer needs its shape set first"):
        context.execute_async_v3(0)
    context.set_tensor_address("x", sample(2, 3))
    with pytest.raises(trt.ExecutionError, match="tensor 'x': a GPU engine needs device memory, got a NumPy array"):
        context.execute_async_v3(0)


def test_torch_tensors_on_a_torch_stream(engine: trt.Engine) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    context = engine.create_execution_context()
    x = sample(6, 4)
    x_t = torch.from_numpy(x).cuda()
    y_t = torch.empty((6, CLASSES), device="cuda")
    h_t = torch.empty((6, HIDDEN), device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    for name, tensor in (("x", x_t), ("y", y_t), ("h", h_t)):
        context.set_tensor_address(name, tensor)
    context.execute_async_v3(stream)
    stream.synchronize()
    assert_matches({"y": y_t.cpu().numpy(), "h": h_t.cpu().numpy()}, x)


def test_contexts_on_their_own_streams_from_threads(engine: trt.Engine) -> None:
    failures: list[str] = []
    barrier = threading.Barrier(4)

    def worker(thread: int) -> None:
        context = engine.create_execution_context()
        stream = cupy.cuda.Stream(non_blocking=True)
        barrier.wait()
        for run in range(15):
            batch = 1 + (thread * 7 + run) % 64
            x = sample(batch, 1000 * thread + run)
            try:
                if run % 2:
                    assert_matches(context.execute({"x": x}), x)
                    continue
                with stream:
                    x_dev = cupy.asarray(x)
                    y_dev, h_dev = cupy.empty((batch, CLASSES), cupy.float32), cupy.empty((batch, HIDDEN),
                                                                                           cupy.float32)
                context.set_tensor_address("x", x_dev)
                context.set_tensor_address("y", y_dev)
                context.set_tensor_address("h", h_dev)
                context.execute_async_v3(stream)
                stream.synchronize()
                assert_matches({"y": y_dev, "h": h_dev}, x)
            except Exception as exc:  # noqa: BLE001 - collected and reported by the main thread
                failures.append(f"thread {thread} run {run}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# ---------------------------------------------------------------------------------------------- CUDA graphs
def run_bound(context: trt.ExecutionContext, x: np.ndarray, stream) -> dict[str, np.ndarray]:
    """One execute_async_v3 into buffers kept per batch size on the context (stable addresses)."""
    buffers = context.__dict__.setdefault("_test_buffers", {})
    batch = x.shape[0]
    if batch not in buffers:
        buffers[batch] = (cupy.empty((batch, FEATURES), cupy.float32), cupy.empty((batch, CLASSES), cupy.float32),
                          cupy.empty((batch, HIDDEN), cupy.float32))
    x_dev, y_dev, h_dev = buffers[batch]
    with stream:
        x_dev.set(x)
        y_dev.fill(np.nan)
    for name, array in (("x", x_dev), ("y", y_dev), ("h", h_dev)):
        context.set_tensor_address(name, array)
    context.execute_async_v3(stream)
    stream.synchronize()
    return {"y": y_dev.get(), "h": h_dev.get()}


def test_cuda_graph_replay_matches_plain_enqueue_and_recaptures_on_shape_change(engine: trt.Engine) -> None:
    plain, graphed = engine.create_execution_context(), engine.create_execution_context()
    graphed.use_cuda_graph = True
    stream = cupy.cuda.Stream(non_blocking=True)
    for run, (batch, expected_captures) in enumerate(((8, 1), (8, 1), (8, 1), (3, 2), (3, 2), (8, 2))):
        x = sample(batch, 100 + run)
        want = run_bound(plain, x, stream)
        got = run_bound(graphed, x, stream)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        assert_matches(got, x)
        assert graphed.cuda_graph_captures == expected_captures, engine.logger.messages
    x = sample(5, 77)  # execute() stages into buffers the binding keeps, so it replays too
    first = graphed.execute({"x": x})
    assert_matches(first, x)
    assert graphed.cuda_graph_captures == 3
    x2 = sample(5, 78)
    assert_matches(graphed.execute({"x": x2}), x2)
    assert graphed.cuda_graph_captures == 3


class HostRoundTripRelu(Tactic):
    """A ReLU that copies through host memory: correct, but a synchronous transfer cannot be captured."""

    name = "test:gpu:host_round_trip_relu"
    layer_type = LayerType.ACTIVATION
    backend = "gpu"
    heuristic_rank = 0

    def run(self, state, inputs, outputs, workspace, xp) -> None:
        outputs[0].set(np.maximum(cupy.asnumpy(inputs[0]), 0))


def test_cuda_graph_capture_failure_falls_back_with_a_warning() -> None:
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (4, 6))
    relu = net.add_activation(x, ActivationType.RELU, name="relu")
    y = net.add_softmax(relu.get_output(0)).get_output(0)
    y.name = "y"
    net.mark_output(y)
    tactic = register_tactic(HostRoundTripRelu())
    try:
        logger = trt.CapturingLogger(trt.Logger.WARNING)
        engine = build_engine_for_feeds(net, {"x": np.zeros((4, 6), np.float32)}, logger=logger, device="gpu")
        assert engine.layer_info()[0]["tactic"] == HostRoundTripRelu.name
        context = engine.create_execution_context()
        context.use_cuda_graph = True
        for seed in range(3):
            data = np.random.default_rng(seed).standard_normal((4, 6)).astype(np.float32)
            e = np.exp(np.maximum(data, 0).astype(np.float64))
            np.testing.assert_allclose(context.execute({"x": data})["y"], e / e.sum(axis=1, keepdims=True),
                                       rtol=1e-5)
    finally:
        unregister_tactic(tactic)
    warnings = [m for s, m in logger.messages if s == trt.Logger.WARNING and "CUDA graph capture failed" in m]
    assert len(warnings) == 1, logger.messages
    assert "layer 'relu'" in warnings[0]
    assert context.cuda_graph_captures == 0


def test_shape_driven_slice_and_reshape_capture_into_a_cuda_graph(tmp_path) -> None:
    """x[:, :Shape(x)[1] - 1] reshaped by Shape-computed dims, as exporters write position-id slices: the bounds
    are host values, so nothing is read back from the GPU and the execution captures (it did not before host
    operands: 'the current stream is capturing, so D2H transfers are disallowed')."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from polyx.build import BuildOptions, build_engine

    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "one"], ["width"], axis=0),
             helper.make_node("Sub", ["width", "one"], ["end"]),
             helper.make_node("Unsqueeze", ["end", "zero"], ["ends"]),
             helper.make_node("Slice", ["x", "zeros", "ends", "ones"], ["sliced"]),
             helper.make_node("Concat", ["minus_one", "ends"], ["dims"], axis=0),
             helper.make_node("Reshape", ["sliced", "dims"], ["flat"]),
             helper.make_node("Relu", ["flat"], ["y"])]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("one", 1), ("zero", [0]), ("zeros", [0]), ("ones", [1]), ("minus_one", [-1]))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "slice.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    engine, _, _ = build_engine(path, BuildOptions(input_shapes={"x": (3, 9)}, device="gpu"))
    context = engine.create_execution_context()
    context.use_cuda_graph = True
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((3, 9)).astype(np.float32)
        np.testing.assert_array_equal(context.execute({"x": x})["y"], np.maximum(x[:, :8], 0).reshape(-1, 8))
    assert context.cuda_graph_captures == 1


def test_gpu_builds_leave_out_tactics_cuda_graphs_cannot_capture() -> None:
    """cupy_matmul and the MatMul reference go through CuPy's cuBLAS wrapper, which refuses capture: they are
    chosen only where no other tactic supports the layer (a 1-D operand), and the engine still captures."""
    net = trt.NetworkDefinition()
    x = net.add_input("x", trt.DataType.FLOAT, (6, FEATURES))
    w = net.add_constant(W1.shape, W1).get_output(0)
    v = net.add_constant((HIDDEN,), B1).get_output(0)
    hidden = net.add_matrix_multiply(x, MatrixOperation.NONE, w, MatrixOperation.NONE, name="matrix").get_output(0)
    y = net.add_matrix_multiply(hidden, MatrixOperation.NONE, v, MatrixOperation.VECTOR, name="vector").get_output(0)
    y.name = "y"
    net.mark_output(y)
    logger = trt.CapturingLogger(trt.Logger.VERBOSE)
    data = sample(6, 5)
    engine = build_engine_for_feeds(net, {"x": data}, logger=logger, device="gpu")
    tactics = {row["name"]: row["tactic"] for row in engine.layer_info()}
    assert tactics["matrix"].startswith(("gpu:matmul:cublas_gemm", "gpu:matmul:cublaslt_")), tactics
    assert any(m.startswith("[matrix] left out, CUDA graphs cannot capture them: gpu:matmul:cupy_matmul")
               for _, m in logger.messages)
    assert tactics["vector"] in ("gpu:matmul:cupy_matmul", "gpu_reference_matrix_multiply")
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": data})["y"],
                               (data.astype(np.float64) @ W1) @ B1, rtol=1e-4, atol=1e-4)
