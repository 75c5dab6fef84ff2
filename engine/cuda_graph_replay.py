"""CUDA-graph replay of a binding's steps (GPU engines with `context.use_cuda_graph`).

The first enqueue for a binding and a set of IO device addresses runs the steps and captures them into a graph;
later enqueues with those addresses replay it. Graphs live on the binding, a few per binding (one per set of IO
addresses). A capture that fails is logged as a WARNING once and the binding runs its steps plainly from then on.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .binding import Binding
from .logger import Severity

if TYPE_CHECKING:
    from .cuda_engine import Engine

MAX_GRAPHS_PER_BINDING = 8  # captured graphs kept per input shapes (one per set of IO addresses)


class CudaGraphReplay:
    """One per execution context: it owns the side stream that captures run on."""

    def __init__(self) -> None:
        self._capture_stream = None

    def enqueue(self, engine: Engine, binding: Binding, enqueue: Callable[[], None], io_arrays: list[Any],
                stream: Any) -> bool:
        """Replay the binding's CUDA graph for these IO addresses, capturing it on first use (then it returns
        True). `enqueue` runs the steps; it is called directly where capture failed before."""
        from .backends.gpu import as_stream
        from .backends.gpu_graph import run_and_capture

        stream = as_stream(stream)
        if binding.graph_failure is not None:
            with stream:
                enqueue()
            return False
        key = tuple(a.data.ptr for a in io_arrays)
        captured = binding.graphs.get(key)
        if captured is not None:
            captured.launch(stream)
            return False
        if self._capture_stream is None:
            import cupy

            self._capture_stream = cupy.cuda.Stream(non_blocking=True)
        captured, failure = run_and_capture(enqueue, stream, self._capture_stream)
        input_shapes = [binding.shapes[i] for i in engine.graph.inputs]
        if failure is not None:
            binding.graph_failure = failure
            engine.logger.log(Severity.WARNING, f"CUDA graph capture failed for input shapes {input_shapes}; this "
                                                f"context uses plain enqueue for them: {failure}")
            return False
        if len(binding.graphs) >= MAX_GRAPHS_PER_BINDING:
            binding.graphs.pop(next(iter(binding.graphs)))
        binding.graphs[key] = captured
        engine.logger.log(Severity.VERBOSE, f"captured a CUDA graph of {len(binding.steps)} layers for input "
                                            f"shapes {input_shapes}")
        return True
