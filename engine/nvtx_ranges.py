"""NVTX ranges around every layer of a GPU execution, for engines built with ProfilingVerbosity.DETAILED, so
Nsight Systems shows each layer by name.

The range functions come from CuPy (`cupy.cuda.nvtx`) or the `nvtx` package, whichever is importable; with
neither, executions run without ranges and the logger says so once per process (INFO).
"""
from __future__ import annotations

import functools
from collections.abc import Callable

from .logger import Logger, Severity

_missing_reported = False


@functools.cache
def _range_functions() -> tuple[Callable[[str], None], Callable[[], None]] | None:
    try:
        from cupy.cuda import nvtx

        if getattr(nvtx, "available", True):
            return nvtx.RangePush, nvtx.RangePop
    except ImportError:
        pass
    try:
        import nvtx as nvtx_package

        return nvtx_package.push_range, nvtx_package.pop_range
    except ImportError:
        return None


def layer_ranges(logger: Logger) -> tuple[Callable[[str], None], Callable[[], None]] | None:
    """(push(name), pop()) for per-layer ranges, or None when no NVTX module is importable (logged once)."""
    global _missing_reported
    functions = _range_functions()
    if functions is None and not _missing_reported:
        _missing_reported = True
        logger.log(Severity.INFO, "ProfilingVerbosity.DETAILED: no NVTX module (cupy.cuda.nvtx or the nvtx "
                                  "package) is importable, so layers run without NVTX ranges")
    return functions
