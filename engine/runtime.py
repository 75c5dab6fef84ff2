"""Runtime (TensorRT's IRuntime): turns a plan into an Engine.

The engine and its execution contexts live in their own modules (docs/architecture.md, "The runtime"); their
public names are re-exported here, where TensorRT's users look for them (`from engine.runtime import Engine`).
"""
from __future__ import annotations

from .cuda_engine import Engine
from .error_recorder import reports_errors
from .execution_context import ExecutionContext
from .logger import Logger
from .plan import deserialize_plan
from .profiler import IProfiler
from .user_hooks import UserHooks

__all__ = ["Engine", "ExecutionContext", "IProfiler", "Runtime"]


class Runtime(UserHooks):
    """Loads plans; the engines it loads, and their contexts, take its logger, error recorder and GPU allocator."""

    def __init__(self, logger: Logger | None = None):
        self.logger = logger or Logger()

    @reports_errors
    def deserialize_cuda_engine(self, plan: bytes | bytearray | memoryview) -> Engine:
        """Load a plan; raises PlanFormatError for damaged, truncated or foreign files, and for plans built for
        another device or engine version (engine/compatibility.py)."""
        graph, meta = deserialize_plan(bytes(plan))
        return Engine(graph, meta, self.logger, bytes(plan), self._error_recorder, self._gpu_allocator)
