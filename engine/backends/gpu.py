"""GPU backend on CuPy: device arrays from CuPy's memory pool, CUDA streams and events, event-based timing.

Imported only when a plan targets the GPU (engine.backends.get_backend), so CPU-only machines never import CuPy.
"""
from __future__ import annotations

from typing import Any

import cupy
import numpy as np


def as_stream(stream: Any):
    """A CuPy stream for a stream argument: None → current stream, int → raw cudaStream_t handle, or a stream
    object (CuPy, or anything with `cuda_stream`/`ptr` such as a torch.cuda.Stream)."""
    if stream is None or stream == 0:
        return cupy.cuda.get_current_stream()
    if isinstance(stream, (cupy.cuda.Stream, cupy.cuda.ExternalStream)):
        return stream
    if isinstance(stream, int):
        return cupy.cuda.ExternalStream(stream)
    handle = getattr(stream, "cuda_stream", None) or getattr(stream, "ptr", None)
    if handle is None:
        raise TypeError(f"cannot use {type(stream).__name__} as a CUDA stream")
    return cupy.cuda.ExternalStream(int(handle))


class GpuBackend:
    name = "gpu"
    xp = cupy

    @property
    def device_name(self) -> str:
        device = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(device.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"{name} (sm_{props['major']}{props['minor']})"

    def allocate(self, nbytes: int):
        return cupy.empty(int(nbytes), dtype=cupy.uint8)

    def to_device(self, array):
        return cupy.asarray(array)

    def to_host(self, array):
        return cupy.asnumpy(array) if isinstance(array, cupy.ndarray) else np.asarray(array)

    def synchronize(self, stream: Any = None) -> None:
        if stream is None:
            cupy.cuda.Device().synchronize()
        else:
            as_stream(stream).synchronize()

    def stream_scope(self, stream: Any):
        """Context manager making `stream` current, so every kernel of an execution is enqueued on it."""
        return as_stream(stream)

    def timer(self):
        return _EventTimer()


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
