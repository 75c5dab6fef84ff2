"""A bench worker: one execution context with its IO bound once, run one timed iteration at a time.

On the CPU the engine reads and writes host memory directly: there are no transfers, and execution is synchronous,
so the enqueue time is the compute time. The GPU worker lives in gpu_worker.py (imported only for GPU engines).
"""
from __future__ import annotations

import time

import numpy as np

import engine as trt

from .io_tensors import io_names, tensor_dtype
from .timing import IterationTimes


class CpuWorker:
    cuda_graph_active = False

    def __init__(self, engine: trt.Engine, feeds: dict[str, np.ndarray], profile_index: int = 0):
        self.context = engine.create_execution_context()
        self.context.set_optimization_profile_async(profile_index)
        for name, array in feeds.items():
            self.context.set_input_shape(name, array.shape)
            self.context.set_tensor_address(name, np.array(array, order="C"))
        self._outputs = {name: np.empty(self.context.get_tensor_shape(name), tensor_dtype(engine, name))
                         for name in io_names(engine, trt.TensorIOMode.OUTPUT)}
        for name, array in self._outputs.items():
            self.context.set_tensor_address(name, array)

    def run_once(self) -> IterationTimes:
        start = time.perf_counter()
        self.context.execute_async_v3(0)
        elapsed_ms = (time.perf_counter() - start) * 1e3
        return IterationTimes(latency_ms=elapsed_ms, enqueue_ms=elapsed_ms, compute_ms=elapsed_ms)

    def outputs(self) -> dict[str, np.ndarray]:
        """Copies of the outputs of the last iteration."""
        return {name: array.copy() for name, array in self._outputs.items()}


def create_workers(engine: trt.Engine, feeds: dict[str, np.ndarray], count: int, data_transfers: bool = True,
                   use_cuda_graph: bool = False, profile_index: int = 0) -> list:
    """`count` workers, each with its own execution context on optimization profile `profile_index` (and, on a GPU,
    its own stream and buffers). CPU workers ignore `data_transfers` (nothing to transfer) and `use_cuda_graph`
    (callers reject it first)."""
    if engine.device == "gpu":
        from .gpu_worker import GpuWorker

        return [GpuWorker(engine, feeds, data_transfers, use_cuda_graph, profile_index) for _ in range(count)]
    return [CpuWorker(engine, feeds, profile_index) for _ in range(count)]
