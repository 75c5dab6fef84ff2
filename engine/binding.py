"""A binding: what an ExecutionContext prepares once per profile and set of input shapes (and shape-input values).

Binding resolves every shape (evaluating the host shape arithmetic), places the activations in one arena by the
lifetime plan and compiles the flat step list, so an execution only swaps the user's arrays in and runs the steps.
A network with data-dependent layers (NonZero, NMS) is bound in stages: a stage ends with the first such layer
whose sizes are unknown; the sizes a run produced key the next stage, made by `next_stage` and cached on the stage
before it, continuing its shape resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .bfloat16 import storage_dtype
from .graph import ResolvedShapes, resolve_shapes
from .logger import Severity
from .memory_plan import plan_graph_memory
from .steps import Step, compile_steps
from .subgraph import CONTROL_FLOW_TYPES
from .tensor_formats import view_in_format

if TYPE_CHECKING:
    from .cuda_engine import Engine

# Bindings (resolved shapes + arena) kept per context, and later stages kept per stage; shape inputs whose values
# change every call would otherwise grow the caches without bound.
MAX_BINDINGS = 16


@dataclass(frozen=True)
class BoundInputs:
    """What a binding is made for: the active profile, the input shapes and the shape inputs' host values."""

    profile: int
    shapes: dict[int, tuple[int, ...]]
    values: dict[int, np.ndarray]


@dataclass
class Binding:
    inputs: BoundInputs
    shapes: list
    slots: list[Any]            # tensor index -> array (host values, constants, arena views); IO set per call
    steps: list[Step]
    workspace: Any
    arena_bytes: int
    staging: dict = field(default_factory=dict)  # execute()'s device/pinned IO buffers, by tensor index
    graphs: dict = field(default_factory=dict)   # IO device addresses -> captured CUDA graph
    graph_failure: str | None = None              # why capture failed for this binding (then it is not retried)
    # Staged execution (data-dependent layers): this stage runs layers [start, pending]; pending is the
    # data-dependent layer it ends with (None: it runs to the end). `later` caches the next stages by the sizes
    # that layer produced.
    start: int = 0
    pending: int | None = None
    later: dict = field(default_factory=dict)
    late: frozenset = frozenset()  # outputs sized only after a data-dependent layer ran
    resolved: ResolvedShapes | None = None  # this stage's shape resolution, which the next stage continues


def bind(engine: Engine, inputs: BoundInputs, data_shapes: dict[int, tuple[int, ...]] | None = None, start: int = 0,
         late: frozenset[int] | None = None, resume: ResolvedShapes | None = None) -> Binding:
    """Resolve shapes, place activations and compile steps, for the layers from `start` up to the next
    data-dependent layer whose sizes are not in `data_shapes` (all layers when there is none). `late`: the
    outputs whose shapes the first stage could not know (they get memory in the stage that makes them);
    `resume`: the previous stage's resolution, continued rather than redone."""
    graph, backend = engine.graph, engine.backend
    resolved = resolve_shapes(graph, inputs.shapes, inputs.values, data_shapes, resume=resume)
    shapes = resolved.shapes
    end = len(graph.layers) if resolved.pending is None else resolved.pending + 1
    if late is None:
        late = frozenset(i for i in graph.outputs if shapes[i] is None)
    slots: list[Any] = [None] * len(graph.tensors)
    earlier = resume.host_values if resume is not None else {}  # already on the device in an earlier stage
    for i, value in resolved.host_values.items():
        if i not in earlier:
            slots[i] = engine.device_constants.get(i) if i in engine.device_constants else backend.to_device(value)
    lifetimes = engine.tensor_lifetimes
    if engine.has_data_dependent_shapes:  # this stage's tensors, not those its data-dependent layer makes
        made_here = {o: step for step in range(start, end) for o in graph.layers[step].outputs}
        sized_later = set(graph.layers[resolved.pending].outputs) if resolved.pending is not None else set()
        lifetimes = {i: life for i, life in lifetimes.items() if i in made_here and i not in sized_later}
        for i in late:  # outputs sized by a data-dependent layer: written here, delivered after the run
            if i in made_here and i not in sized_later and slots[i] is None:
                lifetimes[i] = (made_here[i], len(graph.layers))
    planned, plan = plan_graph_memory(graph, shapes, lifetimes)
    arena = backend.allocate(max(plan.peak_bytes, 1))
    for i, offset in zip(planned, plan.offsets):
        dtype = storage_dtype(graph.tensors[i].dtype, engine.device)
        count = int(np.prod(shapes[i], dtype=np.int64))
        slots[i] = view_in_format(arena[offset:offset + count * dtype.itemsize].view(dtype), shapes[i],
                                  graph.tensors[i].format)
    for out, root in engine.view_roots.items():  # view layers' outputs: the root's memory at their own shapes
        if slots[out] is None and slots[root] is not None and shapes[out] is not None:
            slots[out] = slots[root].reshape(shapes[out])
    steps, workspace_bytes = compile_steps(graph, engine.tactic_states[inputs.profile], shapes, resolved.host_values,
                                           engine.device, range(start, end) if start or end < len(graph.layers)
                                           else None)
    workspace = backend.allocate(workspace_bytes) if workspace_bytes else None
    stage = f" (layers {start}..{end - 1})" if engine.has_data_dependent_shapes else ""
    engine.logger.log(Severity.VERBOSE, f"context bound shapes {[shapes[i] for i in graph.inputs]}{stage}"
                                        f": arena {plan.peak_bytes} bytes (naive {plan.naive_bytes}), "
                                        f"workspace {workspace_bytes} bytes")
    binding = Binding(inputs, shapes, slots, steps, workspace, plan.peak_bytes, start=start, pending=resolved.pending,
                      late=late, resolved=resolved if resolved.pending is not None else None)
    host_reads = [spec.layer for spec in graph.layers if spec.layer.type in CONTROL_FLOW_TYPES]
    if host_reads:  # a condition or trip count read on the host cannot be recorded in a CUDA graph
        binding.graph_failure = (f"layer '{host_reads[0].name}' ({host_reads[0].type.value}) reads its "
                                 "condition or trip count on the host, which a CUDA graph cannot record")
    return binding


def next_stage(engine: Engine, stage: Binding, data_shapes: dict[int, tuple[int, ...]]) -> Binding:
    """The stage after `stage`, for the sizes its data-dependent layer (and the earlier ones) produced."""
    key = tuple(sorted(data_shapes.items()))
    following = stage.later.pop(key, None)
    if following is None:
        following = bind(engine, stage.inputs, data_shapes, stage.pending + 1, stage.late, stage.resolved)
        while len(stage.later) >= MAX_BINDINGS:
            stage.later.pop(next(iter(stage.later)))
    stage.later[key] = following
    return following
