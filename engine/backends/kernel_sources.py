"""The CUDA sources of the NVRTC kernels (kernels/*.cu), with their local `#include "x.cuh"` lines inlined.

Inlined here rather than left to NVRTC so that the text CuPy compiles and caches by is the whole source: an
edited header recompiles. No CuPy import, so the sources can be checked on machines without a GPU
(tests/engine/test_kernel_sources.py compiles them with NVRTC alone)."""
from __future__ import annotations

import re

import numpy as np

from .native import KERNEL_DIR

_LOCAL_INCLUDE = re.compile(r'^#include "([\w.]+)"$', re.MULTILINE)


def kernel_source(name: str) -> str:
    """The source of kernels/NAME.cu with its local includes inlined."""
    text = (KERNEL_DIR / f"{name}.cu").read_text()
    return _LOCAL_INCLUDE.sub(lambda match: (KERNEL_DIR / match.group(1)).read_text(), text)


def cuda_kernel_names() -> list[str]:
    """Every kernels/*.cu module, by name."""
    return sorted(path.stem for path in KERNEL_DIR.glob("*.cu"))


_SUFFIXES = {np.dtype(np.float16): "f16", np.dtype(np.int8): "i8"}


def storage_kernel(base: str, dtype) -> str:
    """The entry point of a kernel instantiated per storage type (storage.cuh): BASE_f32, BASE_f16, or BASE_i8 for
    the few kernels that move int8 values."""
    return f"{base}_{_SUFFIXES.get(np.dtype(dtype), 'f32')}"
