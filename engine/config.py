"""BuilderConfig: precision flags, memory limits, profiles, timing cache, algorithm selector (TensorRT 8.6 names)."""
from __future__ import annotations

import os
from enum import Enum, IntEnum

from .errors import BuildError
from .profile import OptimizationProfile
from .timing_cache import TimingCache


class BuilderFlag(IntEnum):
    FP16 = 0
    INT8 = 1
    DEBUG = 2
    GPU_FALLBACK = 3
    REFIT = 5
    DISABLE_TIMING_CACHE = 6
    TF32 = 7
    SPARSE_WEIGHTS = 8
    SAFETY_SCOPE = 9
    OBEY_PRECISION_CONSTRAINTS = 10
    PREFER_PRECISION_CONSTRAINTS = 11
    DIRECT_IO = 12
    REJECT_EMPTY_ALGORITHMS = 13


class MemoryPoolType(IntEnum):
    WORKSPACE = 0


class TacticSource(IntEnum):
    """Families of kernels the builder may time. CPU: BLAS-backed GEMM tactics and the NumPy kernels;
    GPU: cuBLAS, NVRTC-compiled kernels, CuPy elementwise/reduction kernels."""

    CUBLAS = 0
    CUBLAS_LT = 1
    CUDNN = 2
    EDGE_MASK_CONVOLUTIONS = 3
    JIT_CONVOLUTIONS = 4


class ProfilingVerbosity(str, Enum):
    LAYER_NAMES_ONLY = "LAYER_NAMES_ONLY"
    NONE = "NONE"
    DETAILED = "DETAILED"


def resolve_device(requested: str | None) -> str:
    """'cpu' or 'gpu'. None/'auto' picks the GPU when CuPy finds one; env POLYX_DEVICE overrides auto."""
    choice = (requested or os.environ.get("POLYX_DEVICE") or "auto").lower()
    if choice not in ("cpu", "gpu", "auto"):
        raise BuildError(f"device must be 'cpu', 'gpu' or 'auto', got {requested!r}")
    if choice == "auto":
        from .backends import gpu_available

        return "gpu" if gpu_available() else "cpu"
    if choice == "gpu":
        from .backends import gpu_available

        if not gpu_available():
            raise BuildError("device 'gpu' was requested but no CUDA GPU is usable (CuPy missing or no device)")
    return choice


class BuilderConfig:
    def __init__(self):
        self.flags = 0
        self._pool_limits: dict[MemoryPoolType, int] = {}
        self.profiles: list[OptimizationProfile] = []
        self.builder_optimization_level = 3
        self.avg_timing_iterations = 4
        self.algorithm_selector = None
        self.int8_calibrator = None
        self.profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self.device: str | None = None
        self._timing_cache: TimingCache | None = None
        self._tactic_sources = sum(1 << int(s) for s in TacticSource)
        self.plugins_to_serialize: list[str] = []

    # flags
    def set_flag(self, flag: BuilderFlag) -> None:
        self.flags |= 1 << int(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self.flags &= ~(1 << int(flag))

    def get_flag(self, flag: BuilderFlag) -> bool:
        return bool(self.flags >> int(flag) & 1)

    # memory
    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        if int(pool_size) < 0:
            raise BuildError(f"memory pool limit must be >= 0 bytes, got {pool_size}")
        self._pool_limits[MemoryPoolType(pool)] = int(pool_size)

    def get_memory_pool_limit(self, pool: MemoryPoolType) -> int:
        return self._pool_limits.get(MemoryPoolType(pool), 1 << 62)

    # profiles
    def add_optimization_profile(self, profile: OptimizationProfile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    # tactic sources
    def set_tactic_sources(self, sources: int) -> bool:
        self._tactic_sources = int(sources)
        return True

    def get_tactic_sources(self) -> int:
        return self._tactic_sources

    # timing cache
    def create_timing_cache(self, serialized: bytes = b"") -> TimingCache:
        return TimingCache.deserialize(serialized) if serialized else TimingCache()

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool = False) -> bool:
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> TimingCache | None:
        return self._timing_cache

    def set_builder_optimization_level(self, level: int) -> None:
        self.builder_optimization_level = level
