"""IErrorRecorder on the runtime, engine and execution contexts; the IGpuAllocator hook (never called on the CPU;
the GPU test is marked gpu); ProfilingVerbosity recorded in the plan and NVTX ranges for DETAILED GPU engines."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
from engine import nvtx_ranges


def build(verbosity=None, device: str = "cpu", allocator=None) -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    builder.gpu_allocator = allocator
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 4))
    y = network.add_activation(x, trt.ActivationType.RELU, name="relu").get_output(0)
    y = network.add_unary(y, trt.UnaryOperation.EXP, name="exp").get_output(0)
    y.name = "y"
    network.mark_output(y)
    config = builder.create_builder_config()
    config.device = device
    if verbosity is not None:
        config.profiling_verbosity = verbosity
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 4), (2, 4), (8, 4))
    config.add_optimization_profile(profile)
    return builder.build_serialized_network(network, config)


@pytest.fixture(scope="module")
def plan() -> bytes:
    return build()


def test_recorder_collects_runtime_and_context_errors_with_codes(plan) -> None:
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    recorder = trt.ErrorRecorder()
    runtime.error_recorder = recorder
    with pytest.raises(trt.PlanFormatError):
        runtime.deserialize_cuda_engine(b"not a plan at all, just some bytes" * 2)
    engine = runtime.deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    assert engine.error_recorder is recorder and context.error_recorder is recorder  # inherited
    with pytest.raises(trt.ShapeError):
        context.execute({"x": np.zeros((9, 4), np.float32)})  # outside the profile: reported once, not twice
    with pytest.raises(trt.ExecutionError):
        context.execute({"x": np.zeros((2, 4), np.float64)})
    assert recorder.num_errors() == 3
    assert [recorder.get_error_code(i) for i in range(3)] == [
        trt.ErrorCode.INVALID_ARGUMENT, trt.ErrorCode.INVALID_ARGUMENT, trt.ErrorCode.FAILED_EXECUTION]
    assert recorder.get_error_desc(0).startswith("PlanFormatError: plan: ")
    assert "outside optimization profile 0" in recorder.get_error_desc(1)
    assert "expected dtype float32, got float64" in recorder.get_error_desc(2)
    recorder.clear()
    assert recorder.num_errors() == 0 and not recorder.has_overflowed()


def test_context_recorder_can_be_replaced_and_overflows(plan) -> None:
    context = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan).create_execution_context()
    assert context.error_recorder is None
    recorder = trt.ErrorRecorder(max_errors=2)
    context.error_recorder = recorder
    for _ in range(3):
        with pytest.raises(trt.ExecutionError):
            context.set_input_shape("nope", (1, 4))
    assert recorder.num_errors() == 2 and recorder.has_overflowed()
    with pytest.raises(IndexError, match="error index 2 is out of range: the recorder holds 2 errors"):
        recorder.get_error_desc(2)


def test_recorders_and_allocators_must_have_the_right_type(plan) -> None:
    with pytest.raises(TypeError, match="error_recorder must be an engine.IErrorRecorder .*got list"):
        trt.Runtime().error_recorder = []
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()
    for owner in (engine, context, trt.Builder()):  # one error_recorder attribute, checked the same everywhere
        with pytest.raises(TypeError, match="error_recorder must be an engine.IErrorRecorder .*got str"):
            owner.error_recorder = "recorder.log"
        assert owner.error_recorder is None
    with pytest.raises(TypeError, match="gpu_allocator must be an engine.IGpuAllocator .*got dict"):
        trt.Builder().gpu_allocator = {}
    with pytest.raises(ValueError, match="max_errors must be at least 1"):
        trt.ErrorRecorder(0)


class CountingAllocator(trt.IGpuAllocator):
    """Allocates through CuPy's own pool and counts calls (a GPU test checks the hook reaches it)."""

    def __init__(self):
        self.allocated, self.freed, self._keep = [], [], {}

    def allocate(self, size, alignment, flags):
        import cupy

        memory = cupy.cuda.memory.alloc(size)
        self._keep[memory.ptr] = memory
        self.allocated.append(size)
        return memory.ptr

    def deallocate(self, memory):
        self.freed.append(memory)
        return self._keep.pop(memory, None) is not None


def test_allocator_is_not_used_by_cpu_engines(plan) -> None:
    allocator = CountingAllocator()
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    runtime.gpu_allocator = allocator
    engine = runtime.deserialize_cuda_engine(build(allocator=allocator))
    out = engine.create_execution_context().execute({"x": np.array([[-1, 0, 1, 2]], np.float32)})["y"]
    np.testing.assert_allclose(out, np.exp(np.maximum([[-1, 0, 1, 2]], 0)), rtol=1e-6)
    assert allocator.allocated == [] and allocator.freed == []


@pytest.mark.parametrize("verbosity", list(trt.ProfilingVerbosity))
def test_profiling_verbosity_is_recorded(verbosity) -> None:
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(build(verbosity))
    assert engine.profiling_verbosity == verbosity and engine.meta["profiling_verbosity"] == verbosity.value


def test_missing_nvtx_is_said_once(monkeypatch) -> None:
    monkeypatch.setattr(nvtx_ranges, "_range_functions", lambda: None)
    monkeypatch.setattr(nvtx_ranges, "_missing_reported", False)
    logger = trt.CapturingLogger()
    assert nvtx_ranges.layer_ranges(logger) is None and nvtx_ranges.layer_ranges(logger) is None
    infos = [m for s, m in logger.messages if "NVTX" in m]
    assert len(infos) == 1 and "run without NVTX ranges" in infos[0]


@pytest.mark.gpu
def test_gpu_allocator_serves_engine_memory_and_gets_it_back() -> None:
    import gc

    allocator = CountingAllocator()
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    runtime.gpu_allocator = allocator
    engine = runtime.deserialize_cuda_engine(build(device="gpu"))
    context = engine.create_execution_context()
    x = np.array([[-1, 0, 1, 2]], np.float32)
    np.testing.assert_allclose(context.execute({"x": x})["y"], np.exp(np.maximum(x, 0)), rtol=1e-6)
    assert allocator.allocated and all(size > 0 for size in allocator.allocated)
    del context, engine
    gc.collect()
    assert allocator.freed


@pytest.mark.gpu
def test_detailed_gpu_engine_runs_with_nvtx_ranges(monkeypatch) -> None:
    pushed = []
    monkeypatch.setattr(nvtx_ranges, "_range_functions", lambda: (pushed.append, lambda: None))
    engine = trt.Runtime(trt.Logger(trt.Logger.ERROR)).deserialize_cuda_engine(
        build(trt.ProfilingVerbosity.DETAILED, device="gpu"))
    x = np.array([[-1, 0, 1, 2]], np.float32)
    np.testing.assert_allclose(engine.create_execution_context().execute({"x": x})["y"], np.exp(np.maximum(x, 0)),
                               rtol=1e-6)
    assert pushed == [row["name"] for row in engine.layer_info() if not row["host"]]
