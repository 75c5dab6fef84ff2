"""The step list: what running a device layer means, written once for the builder's timing sweep and the runtime.

A Step is one device layer with its chosen tactic and prepared state, the tensor slots it reads and writes, the
host values it takes instead of device tensors (shape operands known on the host: the layer reads nothing back from
the GPU, so the execution can be captured into a CUDA graph) and the part of its epilogue the tactic leaves undone.
`run_step` runs the tactic, then that rest; `compile_steps` makes the runtime's list for one set of input shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bfloat16 import CONVERTING_LAYERS, converting_run, widened_run
from .dtypes import DataType
from .graph import LayerSpec, LoweredGraph, tactic_context, widened_positions
from .ir.epilogue import Epilogue, apply_epilogue
from .ops.base import layer_impl
from .shuffle_views import view_run


@dataclass
class Step:
    name: str
    run: Any                    # the tactic's bound run(state, inputs, outputs, workspace, xp)
    state: Any                  # the tactic's prepared state
    inputs: list[int | None]    # tensor slots read
    outputs: list[int]          # tensor slots written
    epilogue: Epilogue | None   # what the tactic leaves to apply after it (None: nothing)
    host_operands: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (input position, host value)
    # A data-dependent layer (NonZero, NMS): `run` replaces its output list's entries with arrays of the sizes
    # the data asks for, which the step then puts in the slots (nothing was allocated for them ahead).
    data_dependent: bool = False


def make_step(spec: LayerSpec, tactic: Any, state: Any, host_values: dict[int, np.ndarray],
              graph: LoweredGraph | None = None) -> Step:
    """The step running `spec` with `tactic`; `host_values` are the host-known tensors of this binding. With
    `graph`, a layer with bfloat16 tensors runs its tactic in float32 (bfloat16.py)."""
    rest = spec.layer.epilogue.without(tactic.absorbs)
    epilogue = None if rest.empty else rest
    operands = layer_impl(spec.layer.type).host_operands
    host = [(position, host_values[i]) for position, i in enumerate(spec.inputs)
            if position in operands and i in host_values]
    data_dependent = not layer_impl(spec.layer.type).static_output_shape
    positions = None if graph is None or tactic.reads_bfloat16 else widened_positions(graph, spec)
    if positions is not None:
        return Step(spec.layer.name, widened_run(tactic.run, epilogue, positions), state, spec.inputs,
                    spec.outputs, None, host, data_dependent)
    run = tactic.run
    if graph is not None and tactic.backend == "gpu" and spec.layer.type in CONVERTING_LAYERS:
        source, target = graph.tensors[spec.inputs[0]].dtype, graph.tensors[spec.outputs[0]].dtype
        if source != target and DataType.BF16 in (source, target):  # CuPy cannot astype bfloat16
            run = converting_run(source == DataType.BF16, target == DataType.BF16)
    return Step(spec.layer.name, run, state, spec.inputs, spec.outputs, epilogue, host, data_dependent)


def run_step(step: Step, slots: list[Any], workspace: Any, xp: Any) -> None:
    """Run one step on the tensors in `slots` (by tensor index). The runtime's hot loop inlines this."""
    ins = [None if i is None else slots[i] for i in step.inputs]
    for position, value in step.host_operands:
        ins[position] = value
    outs = [slots[o] for o in step.outputs]
    step.run(step.state, ins, outs, workspace, xp)
    if step.data_dependent:
        for o, array in zip(step.outputs, outs):
            slots[o] = array
    if step.epilogue is not None:
        apply_epilogue(step.epilogue, outs[0], ins, xp)


def compile_steps(graph: LoweredGraph, tactic_states: list[Any], shapes: list, host_values: dict[int, np.ndarray],
                  device: str, layers: range | None = None) -> tuple[list[Step], int]:
    """The step list for one binding (input shapes): one Step per device layer (only the layer indices `layers`
    when given: a stage of a network with data-dependent shapes), with the workspace size the largest tactic needs
    at these shapes; a view layer's step runs nothing (engine/shuffle_views.py). `tactic_states`: per layer
    (tactic, prepared state), None for host layers."""
    steps, workspace_bytes = [], 0
    for index, (spec, chosen) in enumerate(zip(graph.layers, tactic_states)):
        if chosen is None or (layers is not None and index not in layers):
            continue
        if spec.view:  # its output is a view of its input, made by the binding: nothing to run
            steps.append(Step(spec.layer.name, view_run, None, spec.inputs, spec.outputs, None))
            continue
        tactic, state = chosen
        workspace_bytes = max(workspace_bytes, int(tactic.workspace_bytes(
            tactic_context(graph, spec, device, shapes, widen=not tactic.reads_bfloat16))))
        steps.append(make_step(spec, tactic, state, host_values, graph))
    return steps, workspace_bytes
