"""The timing loop: warm-up first, then timed iterations on every stream at once, each iteration timed on its own.

Like trtexec: warm-up runs for `warmup_ms` (at least one run, which also binds shapes and captures a CUDA graph),
then each stream runs at least `min_iterations` iterations and keeps going until `duration_s` of wall-clock time
has passed since the streams started together. Throughput comes from the wall-clock span of the timed phase
(all streams), never from summed per-iteration times.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from ..errors import PolyxError


@dataclass(frozen=True)
class TimingSettings:
    warmup_ms: float = 200.0
    min_iterations: int = 10
    duration_s: float = 3.0

    def validate(self) -> None:
        if not self.warmup_ms >= 0:
            raise PolyxError(f"--warmup must be >= 0 ms, got {self.warmup_ms:g}")
        if self.min_iterations < 1:
            raise PolyxError(f"--iterations must be >= 1, got {self.min_iterations}")
        if not self.duration_s >= 0:
            raise PolyxError(f"--duration must be >= 0 s, got {self.duration_s:g}")


@dataclass(frozen=True)
class IterationTimes:
    """One iteration. latency: host wall-clock from issuing the work to its completion; the split is measured on
    the device (CUDA events) on a GPU, and is compute only on the CPU."""

    latency_ms: float
    enqueue_ms: float
    compute_ms: float
    h2d_ms: float = 0.0
    d2h_ms: float = 0.0


class Worker(Protocol):
    def run_once(self) -> IterationTimes: ...


@dataclass
class StreamTimes:
    warmup_runs: int
    warmup_ms: float
    iterations: list[IterationTimes]


@dataclass
class TimedRun:
    streams: list[StreamTimes]
    wall_seconds: float

    @property
    def iterations(self) -> list[IterationTimes]:
        return [times for stream in self.streams for times in stream.iterations]


def time_workers(workers: list[Worker], settings: TimingSettings) -> TimedRun:
    """Warm up every worker, release them together, time them until the settings are met; one thread each."""
    settings.validate()
    start = [0.0]

    def mark_start() -> None:  # runs once, before the barrier releases anyone
        start[0] = time.perf_counter()

    barrier = threading.Barrier(len(workers) + 1, action=mark_start)
    results: list[StreamTimes | None] = [None] * len(workers)
    errors: list[BaseException] = []

    def work(index: int, worker: Worker) -> None:
        try:
            warmup_runs, warmup_ms = _warm_up(worker, settings.warmup_ms)
            barrier.wait()
            iterations = []
            while True:
                iterations.append(worker.run_once())
                if len(iterations) >= settings.min_iterations and \
                        time.perf_counter() - start[0] >= settings.duration_s:
                    break
            results[index] = StreamTimes(warmup_runs, warmup_ms, iterations)
        except threading.BrokenBarrierError:
            pass  # another worker failed during warm-up; its error is the one reported
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(i, w), name=f"polyx-bench-stream-{i}", daemon=True)
               for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    for thread in threads:
        thread.join()
    wall_seconds = time.perf_counter() - start[0]
    if errors:
        raise errors[0]
    return TimedRun([r for r in results if r is not None], wall_seconds)


def _warm_up(worker: Worker, warmup_ms: float) -> tuple[int, float]:
    start = time.perf_counter()
    runs = 0
    while True:
        worker.run_once()
        runs += 1
        elapsed_ms = (time.perf_counter() - start) * 1e3
        if elapsed_ms >= warmup_ms:
            return runs, elapsed_ms
