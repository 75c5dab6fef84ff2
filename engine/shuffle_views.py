"""Reshape-only SHUFFLE layers as zero-copy views of their input (TensorRT makes such shuffles free).

A SHUFFLE that only reshapes a C-contiguous (LINEAR) activation computes nothing: its output is the input's bytes
under another shape. The builder marks such layers (`LayerSpec.view`, stored in the plan, checked again when a plan
is loaded); the memory plan gives the output no storage of its own and keeps the input's storage alive as long as
either is read (chains of views share one root); the binding makes the output slot a reshape of the root's arena
slot at the run's actual shapes; its step runs nothing. The rule leaves out what a view cannot stand for: network
inputs and outputs (user buffers), host and constant values, transposes, other formats, epilogues, and networks
that run in stages (their stages have arenas of their own, engine/binding.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .enums import LayerType, TensorFormat
from .graph import LayerSpec, LoweredGraph, is_data_dependent

AXES_OPS = ("SQUEEZE", "UNSQUEEZE", "FLATTEN")  # ops/shuffle.py's shape-function forms: all pure reshapes


def _is_identity(perm: Any) -> bool:
    return perm is None or list(perm) == list(range(len(perm)))


@dataclass(frozen=True)
class ViewFacts:
    """What the rule needs to know of the whole graph, gathered once per graph (not once per layer)."""

    host_known: frozenset[int]  # tensors whose values live on the host: shape inputs, host and constant outputs
    device_made: frozenset[int]  # tensors written by device layers (arena activations unless they are outputs)
    staged_by: str | None  # a data-dependent layer's name: the network runs in stages with arenas of their own

    @staticmethod
    def of(graph: LoweredGraph) -> ViewFacts:
        host_known = set(graph.shape_inputs)
        device_made = set()
        for spec in graph.layers:
            if spec.host or spec.layer.type == LayerType.CONSTANT:
                host_known.update(spec.outputs)
            else:
                device_made.update(spec.outputs)
        staged = next((s.layer.name for s in graph.layers if is_data_dependent(s.layer.type)), None)
        return ViewFacts(frozenset(host_known), frozenset(device_made), staged)


def view_refusal(graph: LoweredGraph, spec: LayerSpec, facts: ViewFacts | None = None) -> str | None:
    """Why `spec` cannot run as a view of its input, or None when it can (`facts`: ViewFacts.of(graph), passed
    when several layers are asked)."""
    layer = spec.layer
    if layer.type != LayerType.SHUFFLE:
        return f"it is a {layer.type.value} layer, not SHUFFLE"
    if spec.host:
        return "it runs on the host"
    params = layer.params
    if params.get("axes_op") is None and not (_is_identity(params.get("first_transpose"))
                                              and _is_identity(params.get("second_transpose"))):
        return "it transposes"
    if params.get("axes_op") not in (None, *AXES_OPS):
        return f"its axes_op {params.get('axes_op')!r} is unknown"
    if not layer.epilogue.empty:
        return "it has an epilogue"
    if len(spec.outputs) != 1 or not spec.inputs or spec.inputs[0] is None:
        return "it does not read one tensor into one output"
    source, out = spec.inputs[0], spec.outputs[0]
    facts = ViewFacts.of(graph) if facts is None else facts
    if any(i is not None and i not in facts.host_known for i in spec.inputs[1:]):
        return "its reshape dims are a device tensor"
    if source in graph.inputs or source in graph.outputs:
        return f"its input '{graph.tensors[source].name}' is a network input or output (a user buffer)"
    if source not in facts.device_made:
        return f"its input '{graph.tensors[source].name}' is a host or constant value"
    if out in graph.outputs:
        return f"its output '{graph.tensors[out].name}' is a network output (a user buffer)"
    tin, tout = graph.tensors[source], graph.tensors[out]
    if tin.dtype != tout.dtype:
        return f"its input is {tin.dtype.value} and its output {tout.dtype.value}"
    if tin.format != TensorFormat.LINEAR or tout.format != TensorFormat.LINEAR:
        return "its tensors are not LINEAR (a reshape of another layout is not a view)"
    if facts.staged_by is not None:
        return f"the network runs in stages (layer '{facts.staged_by}' has data-dependent output sizes)"
    return None


def mark_views(graph: LoweredGraph) -> int:
    """Mark every SHUFFLE layer that can run as a view (build time); returns how many were marked."""
    facts = ViewFacts.of(graph)
    count = 0
    for spec in graph.layers:
        spec.view = spec.layer.type == LayerType.SHUFFLE and view_refusal(graph, spec, facts) is None
        count += spec.view
    return count


def view_roots(graph: LoweredGraph) -> dict[int, int]:
    """{view output tensor: the tensor whose storage it shares} for every view layer, chains followed to their
    first non-view tensor. Layers are in topological order, so a view's input is resolved before it."""
    roots: dict[int, int] = {}
    for spec in graph.layers:
        if spec.view:
            source = spec.inputs[0]
            roots[spec.outputs[0]] = roots.get(source, source)
    return roots


def view_run(state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
    """A view layer's step: its output already is its input's memory (the binding made it), so nothing runs."""
