"""GPU backend on CuPy: device arrays from CuPy's memory pool, CUDA streams and events, event-based timing,
pinned host staging for execute(), user buffers given as CuPy arrays, `__cuda_array_interface__` or DLPack
objects (a PyTorch tensor) or raw device pointers, and CUDA-graph capture (engine/backends/gpu_graph.py).

Imported only when a plan targets the GPU (engine.backends.get_backend), so CPU-only machines never import CuPy.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import cupy
import cupyx
import numpy as np

from ..dtypes import BFLOAT16

# Calls of a tactic captured into the CUDA graph a timing replays (at least): the graph launch's own latency, a
# few microseconds, is shared by them, and is the same for every tactic of a layer, so it does not reorder them.
GRAPH_TIMED_CALLS = 3


def as_stream(stream: Any):
    """A CuPy stream for a stream argument: None → current stream, int → raw cudaStream_t handle, or a stream
    object (CuPy, or anything with `cuda_stream`/`ptr` such as a torch.cuda.Stream)."""
    if stream is None or (isinstance(stream, int) and stream == 0):
        return cupy.cuda.get_current_stream()
    if isinstance(stream, (cupy.cuda.Stream, cupy.cuda.ExternalStream)):
        return stream
    if isinstance(stream, int):
        return _external_stream(stream)
    handle = getattr(stream, "cuda_stream", None) or getattr(stream, "ptr", None)
    if handle is None:
        raise TypeError(f"cannot use {type(stream).__name__} as a CUDA stream")
    return _external_stream(int(handle))


@functools.lru_cache(maxsize=256)
def _external_stream(handle: int):
    """A CuPy view of a stream created elsewhere (it owns nothing, so views are cached by handle). CuPy 14
    deprecates ExternalStream in favour of the __cuda_stream__ protocol, which raw handles do not speak."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(handle)


@functools.cache
def _timing_stream(device: int):
    """The stream tactic timings capture and replay on, one per device (the legacy default stream cannot
    capture)."""
    return cupy.cuda.Stream(non_blocking=True)


class GpuBackend:
    name = "gpu"
    xp = cupy
    supports_cuda_graphs = True

    @property
    def device_name(self) -> str:
        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"{name} (sm_{props['major']}{props['minor']})"

    @property
    def compute_capability(self) -> str:
        """"MAJOR.MINOR" of the current device, as plans record it (engine/compatibility.py)."""
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return f"{props['major']}.{props['minor']}"

    def allocate(self, nbytes: int):
        return cupy.empty(int(nbytes), dtype=cupy.uint8)

    def to_device(self, array):
        if getattr(array, "dtype", None) == BFLOAT16:
            array = array.view(np.uint16)  # CuPy has no bfloat16: BF16 tensors live as their bits (bfloat16.py)
        return cupy.asarray(array)

    def to_host(self, array):
        return cupy.asnumpy(array) if isinstance(array, cupy.ndarray) else np.asarray(array)

    def synchronize(self, stream: Any = None) -> None:
        """Waits for `stream` (None: this thread's current stream) — never the whole device, so other threads'
        streams keep running."""
        as_stream(stream).synchronize()

    def stream_scope(self, stream: Any):
        """Context manager making `stream` current, so every kernel of an execution is enqueued on it."""
        return as_stream(stream)

    def current_stream(self):
        return cupy.cuda.get_current_stream()

    def time_runs(self, run: Callable[[], None], iterations: int) -> list[float]:
        """Milliseconds per call of `run` (already warmed up by the caller) as the GPU spends them, `iterations`
        samples: the calls are captured into one CUDA graph and replayed, because an engine replays its tactics
        as a CUDA graph. Timed one call at a time instead, the events would also measure the host's work of
        enqueueing each call (tens of microseconds of Python, more than many kernels take), and tactics would
        win by having less Python, not faster kernels. A `run` that cannot be captured (it reads a result back
        to the host) is timed one call at a time, as it would run."""
        from .gpu_graph import run_and_capture

        stream = cupy.cuda.get_current_stream()
        calls = max(int(iterations), GRAPH_TIMED_CALLS)

        def enqueue() -> None:
            for _ in range(calls):
                run()

        timing_stream = _timing_stream(cupy.cuda.Device().id)
        captured, _ = run_and_capture(enqueue, stream, timing_stream)
        if captured is None:
            samples = []
            for _ in range(iterations):
                with _EventTimer() as timer:  # its exit waits for the end event on this stream
                    run()
                samples.append(timer.elapsed_ms)
            return samples
        samples = []  # the first replay also uploads the graph: one high sample, which the callers' medians drop
        for _ in range(iterations):
            start, end = cupy.cuda.Event(), cupy.cuda.Event()
            start.record(timing_stream)
            captured.launch(timing_stream)
            end.record(timing_stream)
            end.synchronize()
            samples.append(cupy.cuda.get_elapsed_time(start, end) / calls)
        return samples

    # ------------------------------------------------------------------ user buffers
    def wrap(self, buffer: Any, shape: tuple[int, ...] | None, dtype: np.dtype, what: str):
        """A CuPy array viewing a user buffer: a CuPy array, an object with `__cuda_array_interface__` or
        `__dlpack__` (PyTorch, JAX, ...), or a raw device pointer (an int), which is read as `shape`/`dtype`."""
        if isinstance(buffer, cupy.ndarray):
            return buffer
        if isinstance(buffer, (int, np.integer)) and not isinstance(buffer, bool):
            if shape is None:
                raise ValueError(f"{what}: a raw device pointer needs its shape set first (set_input_shape)")
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            memory = cupy.cuda.UnownedMemory(int(buffer), max(nbytes, 1), None)
            return cupy.ndarray(tuple(shape), dtype=dtype, memptr=cupy.cuda.MemoryPointer(memory, 0))
        if isinstance(buffer, np.ndarray):
            raise ValueError(f"{what}: a GPU engine needs device memory, got a NumPy array (use cupy.asarray, a "
                             "device pointer, or ExecutionContext.execute for host arrays)")
        if hasattr(buffer, "__cuda_array_interface__"):
            return cupy.asarray(buffer)
        if hasattr(buffer, "__dlpack__"):
            return cupy.from_dlpack(buffer)
        raise ValueError(f"{what}: cannot use {type(buffer).__name__} as device memory (expected a CuPy array, a "
                         "__cuda_array_interface__ or DLPack object, or an int device pointer)")

    # ------------------------------------------------------------------ execute(): staged host I/O
    def stage_input(self, staging: dict, key: int, host: Any, stream) -> Any:
        """Copies a host array into a device buffer kept in `staging` (fixed address, so a captured CUDA graph
        replays), through a pinned buffer so the copy is asynchronous on `stream`. Device arrays are copied
        device to device."""
        host_dtype = np.dtype(host.dtype)
        device, pinned = self._staging_pair(staging, key, tuple(host.shape), host_dtype)
        if isinstance(host, cupy.ndarray):
            cupy.copyto(device, host)
        else:
            np.copyto(pinned, host, casting="no")
            device.set(pinned, stream=stream)
        return device

    def stage_output(self, staging: dict, key: int, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        return self._staging_pair(staging, key, tuple(shape), np.dtype(dtype))[0]

    def fetch_outputs(self, staging: dict, outputs: dict[int, Any], stream) -> dict[int, np.ndarray]:
        """Device → pinned copies enqueued on `stream`, one wait, then private host copies for the caller."""
        pinned = {}
        for key, device in outputs.items():
            _, host = self._staging_pair(staging, key, tuple(device.shape), device.dtype)
            device.get(stream=stream, out=host, blocking=False)
            pinned[key] = host
        stream.synchronize()
        return {key: host.copy() for key, host in pinned.items()}

    @staticmethod
    def _staging_pair(staging: dict, key: int, shape: tuple[int, ...], dtype: np.dtype):
        pair = staging.get(key)
        if pair is None or pair[0].shape != shape or pair[0].dtype != dtype:
            pair = staging[key] = (cupy.empty(shape, dtype=dtype), cupyx.empty_pinned(shape, dtype=dtype))
        return pair


class _EventTimer:
    """Times the enclosed GPU work with CUDA events on the current stream."""

    def __enter__(self):
        self._start = cupy.cuda.Event()
        self._end = cupy.cuda.Event()
        self._start.record()
        return self

    def __exit__(self, *exc):
        self._end.record()
        self._end.synchronize()
        self.elapsed_ms = cupy.cuda.get_elapsed_time(self._start, self._end)
        return False
