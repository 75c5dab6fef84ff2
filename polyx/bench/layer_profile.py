"""Per-layer times: a separate profiled pass after the timed run (profiling would distort the reported latency:
on a GPU each layer is replayed to time its kernels, on the CPU each is timed by the wall clock), averaged over its
runs, joined with each layer's type, precision, tactic and the tactic's source (cuBLAS, JIT convolutions, ...)
from the engine."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import engine as trt

from ..data.files import write_file
from ..report.text import format_table
from .tactic_sources import layer_tactic_source

SCHEMA = "polyx-layer-profile/1"


class LayerTimeCollector(trt.IProfiler):
    """Collects every reported layer time, keeping the order in which layers first ran."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        self.times.setdefault(layer_name, []).append(ms)


@dataclass
class LayerTime:
    name: str
    type: str
    precision: str
    tactic: str
    source: str | None     # the tactic's TacticSource name; None: a kernel of no source (as `inspect model` shows)
    average_ms: float
    median_ms: float
    total_ms: float
    percentage: float


@dataclass
class LayerProfile:
    runs: int
    layers: list[LayerTime]      # execution order

    @property
    def total_average_ms(self) -> float:
        return float(sum(layer.average_ms for layer in self.layers))

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "runs": self.runs, "total_average_ms": self.total_average_ms,
                "layers": [asdict(layer) for layer in self.layers]}

    def save(self, path: str | Path) -> None:
        write_file(path, json.dumps(self.to_json(), indent=1) + "\n")


def profile_layers(engine: trt.Engine, worker, runs: int) -> LayerProfile:
    """Run `worker` `runs` times with a profiler attached (CUDA graphs are not replayed while profiling)."""
    collector = LayerTimeCollector()
    worker.context.profiler = collector
    try:
        for _ in range(runs):
            worker.run_once()
    finally:
        worker.context.profiler = None
    info = {row["name"]: row for row in engine.layer_info()}
    averages = {name: float(np.mean(times)) for name, times in collector.times.items()}
    total = sum(averages.values()) or 1.0
    layers = []
    for name, times in collector.times.items():
        row = info.get(name, {})
        layers.append(LayerTime(name=name, type=row.get("type", ""), precision=row.get("precision", ""),
                                tactic=row.get("tactic", ""), source=layer_tactic_source(row),
                                average_ms=averages[name],
                                median_ms=float(np.median(times)), total_ms=float(np.sum(times)),
                                percentage=100.0 * averages[name] / total))
    return LayerProfile(runs=runs, layers=layers)


def format_layer_table(profile: LayerProfile) -> list[str]:
    """Layers sorted by average time, slowest first."""
    ordered = sorted(profile.layers, key=lambda layer: layer.average_ms, reverse=True)
    rows = [[layer.name, layer.type, layer.precision, layer.tactic, layer.source or "-", f"{layer.average_ms:.4f}",
             f"{layer.median_ms:.4f}", f"{layer.percentage:.1f}"] for layer in ordered]
    header = ["layer", "type", "precision", "tactic", "source", "avg ms", "median ms", "%"]
    return [f"Per-layer times ({profile.runs} profiled runs, {profile.total_average_ms:.3f} ms per run in layers):",
            *("  " + line for line in format_table(header, rows))]
