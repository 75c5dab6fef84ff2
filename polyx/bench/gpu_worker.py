"""GPU bench worker: its own execution context, non-blocking stream, device buffers and pinned host buffers.

One iteration, all on the worker's stream: host→device copies of the inputs, the engine's enqueue
(`execute_async_v3(stream)`, replaying a CUDA graph when asked), device→host copies of the outputs, then one
stream synchronize. CUDA events around each part give the H2D / compute / D2H split; the host time spent in
`execute_async_v3` is the enqueue time; the host wall-clock of the whole iteration is its latency. Without data
transfers the inputs stay in device memory (filled once) and only the enqueue is timed.
"""
from __future__ import annotations

import time

import cupy
import cupyx
import numpy as np

import engine as trt

from .io_tensors import io_names, tensor_dtype
from .timing import IterationTimes


class GpuWorker:
    def __init__(self, engine: trt.Engine, feeds: dict[str, np.ndarray], data_transfers: bool, use_cuda_graph: bool,
                 profile_index: int = 0):
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.data_transfers = data_transfers
        self.context = engine.create_execution_context()
        self.context.set_optimization_profile_async(profile_index)
        self.context.use_cuda_graph = use_cuda_graph
        self._inputs = []   # (device, pinned host)
        with self.stream:
            for name, array in feeds.items():
                pinned = cupyx.empty_pinned(array.shape, array.dtype)
                pinned[...] = array
                device = cupy.asarray(pinned)
                self._inputs.append((device, pinned))
                self.context.set_input_shape(name, array.shape)
                self.context.set_tensor_address(name, device)
            self._outputs = {}  # name -> (device, pinned host)
            for name in io_names(engine, trt.TensorIOMode.OUTPUT):
                shape, dtype = self.context.get_tensor_shape(name), tensor_dtype(engine, name)
                self._outputs[name] = (cupy.empty(shape, dtype), cupyx.empty_pinned(shape, dtype))
                self.context.set_tensor_address(name, self._outputs[name][0])
        self.stream.synchronize()
        self._events = [cupy.cuda.Event() for _ in range(4)]

    @property
    def cuda_graph_active(self) -> bool:
        """True once the engine has captured a CUDA graph for this worker (it replays it from then on)."""
        return getattr(self.context, "cuda_graph_captures", 0) > 0

    def run_once(self) -> IterationTimes:
        stream, (h2d_start, compute_start, compute_end, d2h_end) = self.stream, self._events
        start = time.perf_counter()
        if self.data_transfers:
            h2d_start.record(stream)
            for device, pinned in self._inputs:
                device.set(pinned, stream=stream)
        compute_start.record(stream)
        enqueue_start = time.perf_counter()
        self.context.execute_async_v3(stream)
        enqueue_ms = (time.perf_counter() - enqueue_start) * 1e3
        compute_end.record(stream)
        if self.data_transfers:
            for device, pinned in self._outputs.values():
                device.get(stream=stream, out=pinned, blocking=False)
            d2h_end.record(stream)
        stream.synchronize()
        latency_ms = (time.perf_counter() - start) * 1e3
        elapsed = cupy.cuda.get_elapsed_time
        if not self.data_transfers:
            return IterationTimes(latency_ms, enqueue_ms, elapsed(compute_start, compute_end))
        return IterationTimes(latency_ms, enqueue_ms, elapsed(compute_start, compute_end),
                              h2d_ms=elapsed(h2d_start, compute_start), d2h_ms=elapsed(compute_end, d2h_end))

    def outputs(self) -> dict[str, np.ndarray]:
        """Host copies of the outputs of the last iteration."""
        result = {name: cupy.asnumpy(device, stream=self.stream) for name, (device, _) in self._outputs.items()}
        self.stream.synchronize()
        return result
