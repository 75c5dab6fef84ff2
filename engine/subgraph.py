"""Subgraphs of control-flow layers (If branches, Loop bodies): one form to infer and run them, whatever stage
the layer is at.

A CONDITIONAL or LOOP layer keeps its subgraphs in `params["subgraphs"]` ({"then": .., "else": ..} or
{"body": ..}): a NetworkDefinition on the façade, an ir.Graph in the builder, a LoweredGraph once lowered or
loaded from a plan. `as_lowered` turns any of them into the LoweredGraph (tensors and layers by index) that
`infer_subgraph` and `run_subgraph` walk. A subgraph runs as a small sub-engine: layer by layer, each through its
op's registered kernel on the caller's array module (NumPy on the CPU, CuPy on the GPU), with shapes taken from
the arrays of this very call — a loop body's shapes may change from one iteration to the next. A layer with a
chosen tactic (engine/body_tactics.py) runs it where it supports this call's shapes, else its reference kernel.
"""
from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from .dtypes import nptype
from .enums import LayerType
from .errors import EngineError
from .evaluator import known_outputs, output_infos
from .ops.base import TensorInfo, layer_impl

SUBGRAPHS = "subgraphs"  # the params key holding a control-flow layer's subgraphs
CONTROL_FLOW_TYPES = frozenset({LayerType.CONDITIONAL, LayerType.LOOP})
MAX_KNOWN_ELEMENTS = 4096  # as shape_inference.MAX_PROPAGATED_ELEMENTS: values propagated while inferring

_lowered_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# id(LoweredGraph) -> (weak reference to it, {array module name: device constants}); a LoweredGraph is a
# dataclass, so it cannot key a WeakKeyDictionary.
_device_constants: dict[int, tuple[Any, dict[str, dict[int, Any]]]] = {}
# The builder's body-tactic chooser (engine/body_tactic_choice.py) while a trial run goes through subgraphs:
# called with (graph, layer spec, input arrays, xp) before each layer runs; per thread, so that builds in other
# threads are not observed.
_observing = threading.local()


def _observers() -> list[Callable[[Any, Any, list[Any], Any], None]]:
    if not hasattr(_observing, "observers"):
        _observing.observers = []
    return _observing.observers


@contextmanager
def observing_layers(observer: Callable[[Any, Any, list[Any], Any], None]) -> Iterator[None]:
    """Call `observer(graph, spec, inputs, xp)` before every subgraph layer runs, while the block runs."""
    _observers().append(observer)
    try:
        yield
    finally:
        _observers().remove(observer)


def as_lowered(subgraph: Any) -> Any:
    """The LoweredGraph of a subgraph held as a NetworkDefinition, an ir.Graph or a LoweredGraph."""
    from .graph import LoweredGraph, lower
    from .ir import Graph, graph_from_network
    from .network import NetworkDefinition
    from .shape_inference import infer_graph

    if isinstance(subgraph, LoweredGraph):
        return subgraph
    if isinstance(subgraph, Graph):
        cached = _lowered_cache.get(subgraph)
        if cached is None:
            infer_graph(subgraph)
            cached = _lowered_cache[subgraph] = lower(subgraph)
        return cached
    if isinstance(subgraph, NetworkDefinition):  # still being built: never cached
        graph = graph_from_network(subgraph)
        infer_graph(graph)
        return lower(graph)
    raise EngineError(f"a subgraph must be a NetworkDefinition, ir.Graph or LoweredGraph, got "
                      f"{type(subgraph).__name__}")


def forget_lowered(graph: Any) -> None:
    """Drop the cached lowered form of an ir.Graph a pass has just edited."""
    _lowered_cache.pop(graph, None)


def subgraphs_of(layer: Any) -> dict[str, Any]:
    return layer.params.get(SUBGRAPHS) or {}


def subgraph_layers(graph: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(subgraph path, layer spec) of every non-constant layer inside `graph`'s control-flow subgraphs, nested
    ones after their layer; the path is "<layer>/<then|else|body>", nested paths joined by "/"."""
    for spec in graph.layers:
        for name, sub in subgraphs_of(spec.layer).items():
            body = as_lowered(sub)
            path = f"{prefix}{spec.layer.name}/{name}"
            for inner in body.layers:
                if inner.layer.type != LayerType.CONSTANT:
                    yield path, inner
            yield from subgraph_layers(body, path + "/")


def prepare_subgraph_tactics(graph: Any, backend: str, where: str = "") -> None:
    """Check and prepare the recorded tactic of every layer inside `graph`'s control-flow subgraphs, nested too
    (the engine, once at load: engine/body_tactics.py)."""
    from .body_tactics import prepare_body_tactic

    for spec in graph.layers:
        for name, sub in subgraphs_of(spec.layer).items():
            body = as_lowered(sub)
            inner = f"{where}layer '{spec.layer.name}' {name} subgraph: "
            for body_spec in body.layers:
                prepare_body_tactic(body, body_spec, backend, inner)
            prepare_subgraph_tactics(body, backend, inner)


def infer_subgraph(subgraph: Any, inputs: Sequence[TensorInfo], what: str) -> list[TensorInfo]:
    """Output infos (shape with -1 where unknown, dtype, value when known at build time) of a subgraph given its
    input infos. `what` names the subgraph in errors ("loop 'L' body")."""
    graph = as_lowered(subgraph)
    if len(inputs) != len(graph.inputs):
        raise EngineError(f"{what} takes {len(graph.inputs)} inputs, {len(inputs)} given")
    infos: list[TensorInfo | None] = [None] * len(graph.tensors)
    for index, info in zip(graph.inputs, inputs):
        declared = graph.tensors[index]
        if info.dtype != declared.dtype:
            raise EngineError(f"{what} input '{declared.name}' is {declared.dtype.value}, given "
                              f"{info.dtype.value}")
        infos[index] = info
    for index, array in graph.constants.items():
        infos[index] = TensorInfo(tuple(array.shape), graph.tensors[index].dtype, array)
    for spec in graph.layers:
        if spec.layer.type == LayerType.CONSTANT:
            continue
        ins = [None if i is None else infos[i] for i in spec.inputs]
        try:
            results = output_infos(spec.layer, ins)
        except EngineError as exc:
            raise EngineError(f"{what}: layer '{spec.layer.name}': {exc}") from None
        shapes = [None if shape is None else tuple(int(d) for d in shape) for shape, _ in results]
        values = known_outputs(spec.layer, ins, shapes, MAX_KNOWN_ELEMENTS)
        for position, (out, shape, (_, dtype)) in enumerate(zip(spec.outputs, shapes, results)):
            dtype = spec.layer.output_types.get(position, dtype)
            infos[out] = TensorInfo(shape, dtype, None if values is None else values[position])
    return [infos[o] for o in graph.outputs]


def _constants_on(graph: Any, xp: Any) -> dict[int, Any]:
    """The subgraph's constants as arrays of `xp` (copied to the device once per graph)."""
    if xp is np:
        return graph.constants
    key = id(graph)
    entry = _device_constants.get(key)
    if entry is None or entry[0]() is not graph:
        entry = _device_constants[key] = (weakref.ref(graph, lambda _: _device_constants.pop(key, None)), {})
    per_module = entry[1]
    if xp.__name__ not in per_module:
        per_module[xp.__name__] = {i: xp.asarray(a) for i, a in graph.constants.items()}
    return per_module[xp.__name__]


def run_subgraph(subgraph: Any, inputs: Sequence[Any], xp: Any, what: str,
                 wanted: Sequence[int] | None = None) -> list[Any]:
    """Run a subgraph on `inputs` (arrays of `xp`); returns its outputs, or only the outputs at positions
    `wanted` (then only the layers they depend on run: a loop's WHILE condition before the iteration)."""
    from .body_tactics import run_body_layer

    graph = as_lowered(subgraph)
    slots: list[Any] = [None] * len(graph.tensors)
    for index, array in _constants_on(graph, xp).items():
        slots[index] = array
    for index, array in zip(graph.inputs, inputs):
        slots[index] = array
    outputs = list(graph.outputs) if wanted is None else [graph.outputs[k] for k in wanted]
    layers = graph.layers if wanted is None else _needed_layers(graph, outputs)
    for spec in layers:
        layer = spec.layer
        if layer.type == LayerType.CONSTANT:
            continue
        arrays = [None if i is None else slots[i] for i in spec.inputs]
        for observer in _observers():
            observer(graph, spec, arrays, xp)
        try:
            results = None if not spec.tactic_id else run_body_layer(graph, spec, arrays, xp)
            if results is None:
                results = layer_impl(layer.type).compute(layer, arrays, xp)
        except EngineError as exc:
            raise EngineError(f"{what}: layer '{layer.name}': {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a kernel failing on this iteration's values: name the layer
            raise EngineError(f"{what}: layer '{layer.name}' ({layer.type.value}) failed: "
                              f"{type(exc).__name__}: {exc}") from None
        for out, result in zip(spec.outputs, results):
            dtype = np.dtype(nptype(graph.tensors[out].dtype))
            result = xp.asarray(result)
            slots[out] = result if result.dtype == dtype else result.astype(dtype)
    return [slots[o] for o in outputs]


def _needed_layers(graph: Any, outputs: Sequence[int]) -> list[Any]:
    """The layers the tensors `outputs` depend on, in graph order."""
    producer = {o: spec for spec in graph.layers for o in spec.outputs}
    needed: set[int] = set()
    stack = list(outputs)
    while stack:
        spec = producer.get(stack.pop())
        if spec is not None and id(spec) not in needed:
            needed.add(id(spec))
            stack.extend(i for i in spec.inputs if i is not None)
    return [spec for spec in graph.layers if id(spec) in needed]
