"""Execution backends. The CPU backend (NumPy) is always present; the GPU backend (CuPy) is imported lazily so the
engine imports and runs on machines without CUDA."""
from __future__ import annotations

import functools

from ..errors import EngineError
from .cpu import CpuBackend


@functools.lru_cache(maxsize=1)
def gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any import or driver failure means "no GPU"
        return False


def get_backend(name: str):
    if name == "cpu":
        return CpuBackend()
    if name == "gpu":
        if not gpu_available():
            raise EngineError("this plan targets the GPU but no CUDA GPU is usable here (CuPy missing or no device)")
        from .gpu import GpuBackend

        return GpuBackend()
    raise EngineError(f"unknown backend {name!r} (expected 'cpu' or 'gpu')")
