"""BuilderConfig: precision flags, memory limits, profiles, timing cache, algorithm selector (TensorRT 8.6 names).

TacticSource and `allowed_by_sources` live in enums.py (tactics import them; this module only re-exports them)."""
from __future__ import annotations

import os
from enum import Enum, IntEnum

from .calibrator import IInt8Calibrator
from .compatibility import HardwareCompatibilityLevel
from .enums import ALL_TACTIC_SOURCES, TacticSource, allowed_by_sources  # noqa: F401 - allowed_by_sources re-exported
from .errors import BuildError
from .profile import OptimizationProfile
from .timing_cache import TimingCache


class BuilderFlag(IntEnum):
    """Build options (TensorRT 8.6 values). A flag either takes effect or `set_flag` refuses it (BuildError naming
    the flag and why), so no flag is silently ignored:

    - FP16, BF16, TF32, OBEY/PREFER_PRECISION_CONSTRAINTS, DISABLE_TIMING_CACHE: read by the builder (BF16:
      layers may run in bfloat16, computed in float32 and rounded per layer output; docs/precision.md).
    - VERSION_COMPATIBLE: recorded in the plan; a runtime of another engine version may load it
      (docs/compatibility-and-profiling.md).
    - INT8: Q/DQ networks (explicit quantization) get INT8 layers with or without it; with it, a network
      without Q/DQ layers is quantized implicitly from dynamic ranges (`int8_calibrator`, its cache, or
      `tensor.set_dynamic_range`), and without any range the builder warns that INT8 is not used.
    - REJECT_EMPTY_ALGORITHMS: accepted; it is always in effect, since an algorithm selector that returns no
      algorithm fails the build whether or not it is set.
    - DEBUG: the builder checks its graph's invariants after every pass (naming a pass that broke one), and
      execution contexts of the engine synchronize after every layer, so an asynchronous GPU fault is reported
      at the layer that caused it.
    - REFIT: the engine's named weights (floating-point constants, named after their ONNX initializers) stay
      replaceable by a `Refitter`; the builder keeps folds off for them (engine/refittable.py, docs/refit.md).
    - STRIP_PLAN (TensorRT 10's value): REFIT, and the plan leaves those weights out; the engine executes only
      after a refit gives them back (`OnnxParserRefitter.refit_from_file` from the ONNX file).
    - GPU_FALLBACK, SPARSE_WEIGHTS, SAFETY_SCOPE, DIRECT_IO: refused; see REFUSED_FLAGS.
    """

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
    VERSION_COMPATIBLE = 14
    BF16 = 18
    STRIP_PLAN = 20


# Flags that would need a feature the engine lacks: accepting them would build an engine that ignores them.
REFUSED_FLAGS = {
    BuilderFlag.GPU_FALLBACK: "it lets DLA layers fall back to the GPU, and the engine has no DLA",
    BuilderFlag.SPARSE_WEIGHTS: "no tactic implements structured-sparsity (2:4) kernels",
    BuilderFlag.SAFETY_SCOPE: "there is no safety runtime or safety-certified tactic set",
    BuilderFlag.DIRECT_IO: "the builder does not check that network inputs and outputs avoid reformats (FP16 "
                           "builds convert them with REFORMAT layers)",
}


class MemoryPoolType(IntEnum):
    WORKSPACE = 0


class ProfilingVerbosity(str, Enum):
    """What the plan lets tools see of its layers (`config.profiling_verbosity`, recorded in the plan): NONE hides
    layer names and tactics from `inspect model` (errors still name layers), LAYER_NAMES_ONLY (the default)
    shows names, types and precisions, DETAILED adds tactics, tensor formats and epilogues, and puts an NVTX
    range around every layer when a GPU engine runs (docs/compatibility-and-profiling.md)."""

    LAYER_NAMES_ONLY = "LAYER_NAMES_ONLY"
    NONE = "NONE"
    DETAILED = "DETAILED"


def _check_flag(flag: BuilderFlag) -> None:
    if flag in REFUSED_FLAGS:
        raise BuildError(f"BuilderFlag.{flag.name} is not supported: {REFUSED_FLAGS[flag]}")


def _member(enum: type, value, field: str):
    """`value` as a member of `enum` (a member, its value or its name); BuildError naming the field otherwise."""
    if isinstance(value, enum):
        return value
    for member in enum:
        if (isinstance(value, str) and value.upper() == member.name) or \
                (not isinstance(value, (str, bool)) and value == member.value):
            return member
    raise BuildError(f"{field} must be one of {', '.join(m.name for m in enum)}, got {value!r}")


# BuilderConfig.channels_last's values: off, every chain HWC, or a timed choice per chain (docs/formats.md "auto").
CHANNELS_LAST_AUTO = "auto"
_CHANNELS_LAST_WORDS = {"off": False, "on": True, CHANNELS_LAST_AUTO: CHANNELS_LAST_AUTO}


def channels_last_mode(value, field: str = "BuilderConfig.channels_last") -> bool | str:
    """False, True or "auto" from what the option accepts (a bool, or "off" / "on" / "auto" in any case); anything
    else is a BuildError naming `field` and the accepted values, so 2 or "sideways" never builds silently."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _CHANNELS_LAST_WORDS:
        return _CHANNELS_LAST_WORDS[value.lower()]
    raise BuildError(f"{field} must be False, True or 'auto' (or the words 'off', 'on', 'auto'), got {value!r}")


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
        self._flags = 0
        self._pool_limits: dict[MemoryPoolType, int] = {}
        self.profiles: list[OptimizationProfile] = []
        self.builder_optimization_level = 3
        self.avg_timing_iterations = 4
        self.algorithm_selector = None
        self._int8_calibrator: IInt8Calibrator | None = None
        self._profiling_verbosity = ProfilingVerbosity.LAYER_NAMES_ONLY
        self._hardware_compatibility_level = HardwareCompatibilityLevel.NONE
        self.device: str | None = None
        self._timing_cache: TimingCache | None = None
        self._tactic_sources = ALL_TACTIC_SOURCES
        self.plugins_to_serialize: list[str] = []
        # Fuse elementwise/activation/unary chains into one POINTWISE layer (passes/pointwise_fusion.py). Off by
        # default until its GPU kernel has been measured on the GPU machine (docs/architecture.md).
        self.pointwise_fusion = False
        # Run 4-D convolution chains channels-last (HWC tensors, REFORMAT layers at the chains' ends;
        # passes/tensor_formats.py, docs/formats.md): False (the default: plans stay LINEAR), True (every chain),
        # "auto" (each chain HWC only where its timed layers say it pays; engine/channels_last_choice.py).
        self.channels_last = False

    @property
    def channels_last(self) -> bool | str:
        return self._channels_last

    @channels_last.setter
    def channels_last(self, value) -> None:
        self._channels_last = channels_last_mode(value)

    # flags
    @property
    def flags(self) -> int:
        return self._flags

    @flags.setter
    def flags(self, mask: int) -> None:
        """Bit mask of BuilderFlag; refused flags are refused here too, so the mask cannot sneak them past."""
        mask = int(mask)
        known = sum(1 << int(flag) for flag in BuilderFlag)
        if mask < 0 or mask & ~known:
            raise BuildError(f"builder flags 0x{mask:x}: bits 0x{mask & ~known:x} are not BuilderFlag values")
        for flag in BuilderFlag:
            if mask >> int(flag) & 1:
                _check_flag(flag)
        self._flags = mask

    def set_flag(self, flag: BuilderFlag) -> None:
        _check_flag(BuilderFlag(flag))
        self._flags |= 1 << int(flag)

    def clear_flag(self, flag: BuilderFlag) -> None:
        self._flags &= ~(1 << int(flag))

    def get_flag(self, flag: BuilderFlag) -> bool:
        return bool(self._flags >> int(flag) & 1)

    # recorded in the plan (engine/compatibility.py, ProfilingVerbosity)
    @property
    def profiling_verbosity(self) -> ProfilingVerbosity:
        return self._profiling_verbosity

    @profiling_verbosity.setter
    def profiling_verbosity(self, value) -> None:
        self._profiling_verbosity = _member(ProfilingVerbosity, value, "profiling_verbosity")

    @property
    def hardware_compatibility_level(self) -> HardwareCompatibilityLevel:
        """NONE: the plan loads only on the compute capability it was built on; AMPERE_PLUS: on any sm_80+ GPU."""
        return self._hardware_compatibility_level

    @hardware_compatibility_level.setter
    def hardware_compatibility_level(self, value) -> None:
        self._hardware_compatibility_level = _member(HardwareCompatibilityLevel, value,
                                                     "hardware_compatibility_level")

    # INT8 calibration
    @property
    def int8_calibrator(self):
        """The IInt8Calibrator whose batches (or cache) give INT8 dynamic ranges for BuilderFlag.INT8 builds."""
        return self._int8_calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, calibrator) -> None:
        if calibrator is not None and not isinstance(calibrator, IInt8Calibrator):
            raise BuildError(f"int8_calibrator must subclass one of engine's IInt8...Calibrator classes, got "
                             f"{type(calibrator).__name__}")
        self._int8_calibrator = calibrator

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
        """Bit mask of TacticSource (`1 << TacticSource.CUBLAS | ...`); the builder skips tactics of cleared
        sources. Unknown bits are refused rather than ignored."""
        sources = int(sources)
        if sources < 0 or sources & ~ALL_TACTIC_SOURCES:
            raise BuildError(f"tactic sources 0x{sources:x}: bits 0x{sources & ~ALL_TACTIC_SOURCES:x} name no "
                             f"TacticSource (valid: {', '.join(f'{s.name}={int(s)}' for s in TacticSource)})")
        self._tactic_sources = sources
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
