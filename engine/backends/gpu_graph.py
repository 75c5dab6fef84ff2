"""CUDA-graph capture of an execution context's enqueue.

Capture happens on a stream the context owns (the legacy default stream cannot capture), ordered after the
caller's stream by events. Every allocation made while capturing comes from a memory pool private to that graph:
the graph keeps replaying the addresses it captured, so no other allocation may ever receive them. The enqueue
is first run once, uncaptured, with that pool: it produces this call's results, compiles every kernel and fills
the pool, so the captured pass allocates nothing new. A failure while capturing (a synchronous host transfer, an
API call that capture forbids) ends the capture and is returned to the caller, which falls back to plain enqueue.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cupy


class CapturedGraph:
    """A replayable enqueue: the CUDA graph and the private memory pool its captured addresses come from."""

    def __init__(self, graph: Any, pool: Any):
        self.graph = graph
        self.pool = pool

    def launch(self, stream: Any) -> None:
        self.graph.launch(stream)


def run_and_capture(enqueue: Callable[[], None], stream: Any, capture_stream: Any) -> tuple[CapturedGraph | None,
                                                                                          str | None]:
    """Runs `enqueue` once on `capture_stream` (its results are this call's results), then captures a second
    pass into a graph. `stream` (the caller's) waits for the run. Returns (graph, None) or (None, why not)."""
    pool = cupy.cuda.MemoryPool()
    ready = cupy.cuda.Event(disable_timing=True)
    ready.record(stream)
    capture_stream.wait_event(ready)
    graph, failure = None, None
    with cupy.cuda.using_allocator(pool.malloc), capture_stream:
        enqueue()
        done = cupy.cuda.Event(disable_timing=True)
        done.record(capture_stream)
        capture_stream.begin_capture()
        try:
            enqueue()
        except Exception as exc:  # noqa: BLE001 - any failure while capturing means "replay is not possible"
            failure = f"{type(exc).__name__}: {exc}"
        try:
            graph = capture_stream.end_capture()
        except Exception as exc:  # noqa: BLE001 - an invalidated capture reports here
            failure = failure or f"{type(exc).__name__}: {exc}"
    stream.wait_event(done)
    if failure is not None:
        return None, failure
    return CapturedGraph(graph, pool), None
