"""What one benchmark measured, as text (trtexec-like summary) and as JSON (schema `polyx-bench/1`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import engine as trt

from ..build import BuildReport
from ..report.text import format_table
from .layer_profile import LayerProfile
from .stats import STAT_NAMES, summarize
from .timing import TimedRun, TimingSettings

SCHEMA = "polyx-bench/1"
# (JSON key prefix, label in the text table, IterationTimes attribute)
METRICS = (("latency", "Latency", "latency_ms"), ("enqueue", "Enqueue", "enqueue_ms"), ("h2d", "H2D", "h2d_ms"),
           ("compute", "Compute", "compute_ms"), ("d2h", "D2H", "d2h_ms"))


@dataclass
class BenchResult:
    model: str
    engine: trt.Engine
    build_report: BuildReport | None
    feeds: dict[str, np.ndarray]
    timing: TimingSettings
    streams: int
    use_cuda_graph: bool
    cuda_graph_active: bool
    data_transfers: bool
    timed: TimedRun
    profile: LayerProfile | None
    outputs: list[dict[str, np.ndarray]]   # the last iteration's outputs, one dict per stream

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def precision(self) -> str:
        flags = self.engine.meta.get("flags", {})
        return "fp16" if flags.get("FP16") else "tf32" if flags.get("TF32") else "fp32"

    @property
    def batch(self) -> int:
        """The leading dimension of the first input that has one (1 for scalar inputs)."""
        for array in self.feeds.values():
            if array.ndim >= 1:
                return int(array.shape[0])
        return 1

    @property
    def runs(self) -> int:
        return len(self.timed.iterations)

    @property
    def qps(self) -> float:
        return self.runs / self.timed.wall_seconds if self.timed.wall_seconds > 0 else 0.0

    def stats(self) -> dict[str, dict[str, float]]:
        iterations = self.timed.iterations
        return {key: summarize([getattr(times, attribute) for times in iterations]) for key, _, attribute in METRICS}

    def notes(self) -> list[str]:
        notes = []
        if self.device == "cpu":
            notes.append("CPU engine: inputs and outputs stay in host memory, so H2D and D2H are 0; execution is "
                         "synchronous, so enqueue time is compute time")
        elif not self.data_transfers:
            notes.append("--no-data-transfers: inputs and outputs stay in device memory; H2D and D2H are not timed")
        if self.use_cuda_graph and not self.cuda_graph_active:
            notes.append("CUDA graph capture failed (see the engine's warning): timed with plain enqueue")
        if self.streams > 1:
            notes.append(f"{self.streams} streams ran at once, each with its own execution context: latency is "
                         "per iteration on one stream, throughput counts every stream's runs over the shared "
                         "wall-clock time")
        return notes

    def to_json(self) -> dict:
        report = self.build_report
        build = None if report is None else {
            "seconds": report.build_seconds, "plan_bytes": report.plan_bytes, "device_layers": report.layers_after,
            "host_layers": report.host_layers,
            "tactics": {kind: dict(counts) for kind, counts in sorted(report.tactics_by_layer_type.items())}}
        stats = self.stats()
        return {
            "schema": SCHEMA, "model": self.model, "device": self.device,
            "device_name": self.engine.backend.device_name, "precision": self.precision, "build": build,
            "inputs": {name: {"shape": list(array.shape), "dtype": str(array.dtype)}
                       for name, array in self.feeds.items()},
            "batch": self.batch,
            "settings": {"warmup_ms": self.timing.warmup_ms, "min_iterations": self.timing.min_iterations,
                         "duration_s": self.timing.duration_s, "streams": self.streams,
                         "use_cuda_graph": self.use_cuda_graph, "data_transfers": self.data_transfers},
            "cuda_graph_active": self.cuda_graph_active,
            "warmup": {"runs": sum(s.warmup_runs for s in self.timed.streams),
                       "ms": max(s.warmup_ms for s in self.timed.streams)},
            "runs": self.runs, "runs_per_stream": [len(s.iterations) for s in self.timed.streams],
            "total_seconds": self.timed.wall_seconds,
            "throughput": {"qps": self.qps, "inferences_per_second": self.qps * self.batch},
            **{f"{key}_ms": stats[key] for key, _, _ in METRICS},
            "layer_profile": None if self.profile is None else self.profile.to_json(),
            "notes": self.notes(),
        }


def format_bench_result(result: BenchResult) -> list[str]:
    inputs = ", ".join(f"{name} {array.dtype} {list(array.shape)}" for name, array in result.feeds.items())
    enqueue = "CUDA graph" if result.cuda_graph_active else "plain enqueue"
    streams = f"{result.streams} stream{'s' if result.streams > 1 else ''}"
    transfers = ("host memory, no transfers" if result.device == "cpu" else
                 "with H2D/D2H copies" if result.data_transfers else "no data transfers")
    timing = result.timing
    warmup_runs = sum(s.warmup_runs for s in result.timed.streams)
    stats = result.stats()
    rows = [[f"{label} (ms)", *(f"{stats[key][name]:.4f}" for name in STAT_NAMES)] for key, label, _ in METRICS]
    lines = [
        f"Benchmark: {result.model} on {result.device} ({result.engine.backend.device_name}), {result.precision}",
        f"Inputs: {inputs} (batch {result.batch})",
        f"Settings: {streams}, {enqueue}, {transfers}; warm-up {timing.warmup_ms:g} ms ({warmup_runs} runs), "
        f"at least {timing.min_iterations} iterations and {timing.duration_s:g} s",
        f"Timed runs: {result.runs} in {result.timed.wall_seconds:.3f} s",
        f"Throughput: {result.qps:.2f} qps, {result.qps * result.batch:.2f} inferences/s (batch {result.batch})",
        *format_table(["", *STAT_NAMES], rows),
    ]
    lines += [f"Note: {note}" for note in result.notes()]
    return lines
