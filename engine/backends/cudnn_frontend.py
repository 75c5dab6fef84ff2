"""The cuDNN frontend (`import cudnn`, package nvidia-cudnn-frontend) as the cuDNN graphs use it: loading it,
per-thread handles, the process-wide graph cache and what every graph's operands must be (addresses, alignment,
strides). Shared by the convolution graphs (backends/cudnn_conv.py) and the attention graph (backends/cudnn_sdpa.py),
so each holds only its own graph.

Loading: the frontend finds libcudnn through LD_LIBRARY_PATH, then `nvidia/cudnn/lib` under the interpreter's own
site-packages, then the dynamic linker by soname. Installed with `pip install --target` elsewhere (the GPU machine),
it would miss PyTorch's `nvidia-cudnn-cu13` wheel, so `frontend()` first loads that wheel's libcudnn (searched along
sys.path) with RTLD_GLOBAL: the frontend's soname fallback then finds the library already loaded.

Nothing here imports cudnn or CuPy at module import: every machine imports this module.
"""
from __future__ import annotations

import ctypes
import functools
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Tactics exist for cuDNN engine ids below this (cuDNN 9 numbers its engines from 0, under 100 today); an engine
# the heuristics propose beyond it is not offered.
MAX_ENGINE_ID = 128
_LIBCUDNN = "libcudnn.so.9"


class CudnnPlanError(RuntimeError):
    """cuDNN cannot build or run an engine for a graph; the message says which and why."""


def _preload_libcudnn() -> None:
    """Load the first `nvidia/cudnn/lib/libcudnn.so.9` found along sys.path, globally (see the module docstring)."""
    for base in sys.path:
        candidate = Path(base or ".") / "nvidia" / "cudnn" / "lib" / _LIBCUDNN
        if candidate.is_file():
            ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)
            return


@functools.lru_cache(maxsize=1)
def _probe() -> tuple[Any, str | None]:
    """(the cudnn module, None) or (None, why it is unusable); probed once per process."""
    try:
        _preload_libcudnn()
    except OSError as exc:
        return None, f"libcudnn from the nvidia-cudnn wheel failed to load: {exc}"
    try:
        import cudnn
    except Exception as exc:  # noqa: BLE001 - ImportError, or the frontend's own loader failing
        return None, f"the cuDNN frontend (nvidia-cudnn-frontend) cannot be imported: {type(exc).__name__}: {exc}"
    try:
        version = int(cudnn.backend_version())
    except Exception as exc:  # noqa: BLE001 - no libcudnn was found by the frontend
        return None, f"the cuDNN frontend found no libcudnn ({_LIBCUDNN}): {type(exc).__name__}: {exc}"
    if version < 90000:
        return None, f"libcudnn {version} is older than cuDNN 9"
    return cudnn, None


def unavailable_reason() -> str | None:
    """None when the frontend and libcudnn are usable here; otherwise why not (shown by verbose builds)."""
    return _probe()[1]


def frontend() -> Any:
    """The cudnn module; raises CudnnPlanError saying why when it is unusable."""
    module, reason = _probe()
    if module is None:
        raise CudnnPlanError(reason)
    return module


def version_string() -> str:
    """The libcudnn version, for messages ("unavailable" when it is not usable)."""
    module, _ = _probe()
    return "unavailable" if module is None else str(module.backend_version_string())


_HANDLES = threading.local()


def thread_handle() -> Any:
    """A cuDNN handle for the calling thread and current device (a handle must not be used by two threads at
    once; contexts of one engine run on several threads)."""
    import cupy

    device = cupy.cuda.Device().id
    handles = getattr(_HANDLES, "by_device", None)
    if handles is None:
        handles = _HANDLES.by_device = {}
    if device not in handles:
        handles[device] = frontend().create_handle()
    return handles[device]


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    """Element strides of a C-contiguous (NCHW) tensor."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(int(size), 1)
    return strides[::-1]


class GraphCache:
    """Built graphs by spec, kept for the process (plans are reused by every context); a spec cuDNN refused is kept
    as the reason, so it is asked once, not once per engine tactic."""

    def __init__(self, what: str):
        self.what = what  # "convolution", "attention": named in the refusal
        self._graphs: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def get(self, spec: Any, make: Callable[[Any], Any]) -> Any:
        """The graph for `spec`, made by `make(spec)` on first use. Raises CudnnPlanError when cuDNN does not
        support it."""
        with self._lock:
            graph = self._graphs.get(spec)
        if graph is None:
            try:
                graph = make(spec)
            except CudnnPlanError as exc:
                graph = str(exc)
            except Exception as exc:  # noqa: BLE001 - the frontend's errors: unsupported graph, bad descriptor
                graph = f"cuDNN {version_string()} does not support this {self.what} graph: {type(exc).__name__}: " \
                        f"{exc}"
            with self._lock:
                graph = self._graphs.setdefault(spec, graph)
        if isinstance(graph, str):
            raise CudnnPlanError(graph)
        return graph

    def clear(self) -> None:
        """Forget every graph (tests that swap the frontend)."""
        with self._lock:
            self._graphs.clear()


# cuDNN's vectorized engines assume 16-byte aligned tensors (the frontend's default tensor alignment): the tactics
# copy an operand at another address first.
CUDNN_ALIGNMENT = 16


def device_address(array: Any) -> int:
    """The device address of a CuPy array (what a graph's variant pack takes)."""
    return array.data.ptr


def is_aligned(array: Any, alignment: int = CUDNN_ALIGNMENT) -> bool:
    return device_address(array) % alignment == 0


def aligned_contiguous(array: Any, xp: Any, alignment: int = CUDNN_ALIGNMENT) -> Any:
    """`array` C-contiguous and aligned (to CUDNN_ALIGNMENT unless told otherwise: cuBLASLt's int8 operands use it
    too), as a graph's contiguous tensor reads it: itself when it already is, else a copy."""
    array = xp.ascontiguousarray(array)
    return array if is_aligned(array, alignment) else array.copy()
