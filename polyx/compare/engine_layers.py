"""Per engine layer verdicts of a `--mark-all` comparison of the engine as built, and the first failing layer.

A layer's error is the worst of its compared outputs; a fused layer stands for every ONNX node it computes, and
the tensors it absorbed are reported as inside it. The first failing layer is the first in execution order whose
output exceeds tolerance, with its inputs' errors (an error created in the layer, or inherited?). Nothing here
depends on precision: FP32, FP16 and INT8 engines are read the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .engine_provenance import EngineLayerGroup, EngineProvenance
from .layerwise import KNOWN_GOOD, InputError, TensorVerdict


@dataclass
class LayerVerdict:
    index: int
    group: EngineLayerGroup
    tensors: list[TensorVerdict]   # the layer's compared outputs

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tensors)

    @property
    def worst(self) -> TensorVerdict:
        return max(self.tensors, key=lambda t: (t.tolerance_excess, t.max_absolute))

    @property
    def max_absolute(self) -> float:
        return max(t.max_absolute for t in self.tensors)

    @property
    def min_rtol(self) -> float:
        return max(t.min_rtol for t in self.tensors)


@dataclass
class EngineLayerReport:
    provenance: EngineProvenance
    layers: list[LayerVerdict] = field(default_factory=list)   # compared layers, execution order
    first_failing: LayerVerdict | None = None
    first_failing_inputs: list[InputError] = field(default_factory=list)
    uncompared: list[str] = field(default_factory=list)       # engine layers none of whose outputs were compared

    @property
    def failed_count(self) -> int:
        return sum(not layer.passed for layer in self.layers)

    @property
    def error_created_in_first_failing(self) -> bool:
        return self.first_failing is not None and all(
            i.verdict.passed if i.verdict is not None else i.note in KNOWN_GOOD for i in self.first_failing_inputs)


def analyze_engine_layers(provenance: EngineProvenance, verdicts: dict[str, TensorVerdict],
                          graph_inputs: set[str] = frozenset(), constants: set[str] = frozenset()
                          ) -> EngineLayerReport:
    """Per-layer verdicts over the engine's layers from the per-tensor verdicts (by engine tensor name)."""
    report = EngineLayerReport(provenance)
    for group in provenance.layers:
        tensors = [verdicts[provenance.onnx_name(t)] for t in group.outputs if provenance.onnx_name(t) in verdicts]
        if tensors:
            report.layers.append(LayerVerdict(len(report.layers), group, tensors))
        else:
            report.uncompared.append(group.name)
    report.first_failing = next((layer for layer in report.layers if not layer.passed), None)
    if report.first_failing is None:
        return report
    producers = {t: g for g in provenance.layers for t in g.outputs}
    for name in report.first_failing.group.inputs:
        report.first_failing_inputs.append(_input_error(name, name, verdicts, producers, graph_inputs, constants,
                                                        provenance))
    return report


def _input_error(shown: str, name: str, verdicts: dict[str, TensorVerdict], producers: dict[str, EngineLayerGroup],
                 graph_inputs: set[str], constants: set[str], provenance: EngineProvenance,
                 depth: int = 0) -> InputError:
    """How an input of the failing layer compares; an engine-made copy of one tensor (a precision reformat
    such as 'x:half', a dequantization) is traced to the tensor it was made from."""
    if provenance.onnx_name(name) in verdicts:
        held = provenance.onnx_name(name)
        return InputError(shown if held == name else f"{shown} (INT8 form of '{held}')", verdicts[held], "compared")
    if name in graph_inputs:
        return InputError(shown, None, KNOWN_GOOD[0])
    if name in constants or name not in producers:
        return InputError(shown, None, KNOWN_GOOD[1])
    producer = producers[name]
    sources = [i for i in producer.inputs if i in producers or i in graph_inputs]  # its data inputs
    if not producer.onnx_nodes and len(sources) == 1 and depth < 8:
        source = sources[0]
        traced = _input_error(source, source, verdicts, producers, graph_inputs, constants, provenance, depth + 1)
        return InputError(f"{shown} (made from '{traced.name}' by {producer.type} layer {producer.name})",
                          traced.verdict, traced.note)
    return InputError(shown, None, "not compared")


def layer_error(layer: LayerVerdict) -> float:
    """The layer's plotted error: how far its worst output is from passing (needed rtol; inf for a shape problem)."""
    worst = layer.worst
    return math.inf if worst.problem else worst.min_rtol
