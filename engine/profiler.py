"""IProfiler (TensorRT): the user's hook for per-layer times of every execution."""
from __future__ import annotations


class IProfiler:
    """Assign to `context.profiler`: `report_layer_time` is called for every layer of every execution."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        raise NotImplementedError
