"""Device choice without a GPU: config.device / POLYX_DEVICE resolution, a GPU plan refused with a clear message
where no GPU is usable, and CPU engines rejecting raw device pointers. Runs everywhere (CI has no GPU)."""
from __future__ import annotations

import numpy as np
import pytest

import engine as trt
import engine.backends as backends
from engine.config import resolve_device
from engine.plan import deserialize_plan, serialize_plan


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(backends, "gpu_available", lambda: False)


def small_plan() -> bytes:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 3))
    y = network.add_activation(x, trt.ActivationType.RELU).get_output(0)
    y.name = "y"
    network.mark_output(y)
    config = builder.create_builder_config()
    config.device = "cpu"
    return builder.build_serialized_network(network, config)


def test_device_resolution(monkeypatch, no_gpu) -> None:
    monkeypatch.delenv("POLYX_DEVICE", raising=False)
    assert resolve_device(None) == "cpu"  # auto without a GPU
    monkeypatch.setenv("POLYX_DEVICE", "CPU")
    assert resolve_device(None) == "cpu"
    monkeypatch.setenv("POLYX_DEVICE", "gpu")
    with pytest.raises(trt.BuildError, match="device 'gpu' was requested but no CUDA GPU is usable"):
        resolve_device(None)
    assert resolve_device("cpu") == "cpu"  # an explicit config.device wins over the environment
    with pytest.raises(trt.BuildError, match="device must be 'cpu', 'gpu' or 'auto', got 'tpu'"):
        resolve_device("tpu")


def test_gpu_plan_is_refused_without_a_gpu(no_gpu) -> None:
    graph, meta = deserialize_plan(small_plan())
    meta["device"] = "gpu"
    with pytest.raises(trt.PlanFormatError, match=r"plan: built for device 'gpu', which is not usable here: .*"
                                                  r"no CUDA GPU is usable here"):
        trt.Runtime().deserialize_cuda_engine(serialize_plan(graph, meta))


def test_cpu_engine_rejects_raw_pointers() -> None:
    engine = trt.Runtime().deserialize_cuda_engine(small_plan())
    assert engine.device == "cpu"
    context = engine.create_execution_context()
    context.set_tensor_address("x", 12345)
    context.set_tensor_address("y", np.empty((2, 3), np.float32))
    with pytest.raises(trt.ExecutionError, match="tensor 'x': raw pointers need a GPU engine"):
        context.execute_async_v3(0)
