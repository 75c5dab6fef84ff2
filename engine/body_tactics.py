"""Tactics for the layers inside control-flow subgraphs (If branches, Loop/Scan bodies).

A subgraph layer records one chosen tactic in its LayerSpec's `tactic_id` / `tactic_name` (0 / "": the reference
kernel). The builder chooses it (engine/body_tactic_choice.py) while the trial run goes through the subgraph; here
is what both the builder and the runtime use to run it: the tactic is prepared once per (layer, backend) from the
subgraph's build-time shapes, as top-level tactics are, and runs a call only when it supports that call's actual
shapes (a loop body's shapes may change from one iteration to the next); otherwise `run_body_layer` returns None
and the caller runs the reference kernel, so an unsupported shape never fails or computes wrongly.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .dtypes import nptype
from .enums import LayerType
from .errors import PlanFormatError
from .evaluator import is_static, output_infos
from .graph import LayerSpec, LoweredGraph, tactic_context, widened_positions
from .ops.base import TensorInfo, layer_impl
from .tactics.base import Tactic, TacticContext

REFERENCE_ID = 0  # the reference tactic's id, on every backend


class _Prepared:
    """A body layer's tactic, its state and which input shapes it supports (asked once per shape)."""

    def __init__(self, tactic: Tactic, state: Any):
        self.tactic = tactic
        self.state = state
        self.supported: dict[tuple, bool] = {}


# id(LayerSpec) -> (weak reference to it, {backend: _Prepared}); LayerSpec is a dataclass, so not hashable.
_prepared: dict[int, tuple[Any, dict[str, _Prepared]]] = {}


def backend_of(xp: Any) -> str:
    return "cpu" if xp is np else "gpu"


def tactic_eligible(graph: LoweredGraph, spec: LayerSpec) -> bool:
    """Whether a body layer may run a tactic other than the reference: a device layer of static output shape
    (not control flow itself, not data dependent), without host operands or bfloat16 widening, whose tactic
    `run` sees exactly the arrays of the subgraph."""
    impl = layer_impl(spec.layer.type)
    return not spec.host and spec.layer.type not in (LayerType.CONSTANT, LayerType.CONDITIONAL, LayerType.LOOP) \
        and impl.static_output_shape and not impl.host_operands and widened_positions(graph, spec) is None \
        and spec.layer.epilogue.empty


def remember(spec: LayerSpec, backend: str, tactic: Tactic, state: Any) -> None:
    """Keep the prepared tactic of a body layer for `run_body_layer` (the builder after choosing it)."""
    key = id(spec)
    entry = _prepared.get(key)
    if entry is None or entry[0]() is not spec:
        entry = _prepared[key] = (weakref.ref(spec, lambda _: _prepared.pop(key, None)), {})
    entry[1][backend] = _Prepared(tactic, state)


def prepare_body_tactic(graph: LoweredGraph, spec: LayerSpec, backend: str, where: str) -> None:
    """Check a loaded body layer's recorded tactic and prepare it (the engine, once at load). A tactic that is not
    registered, of another layer type or backend, whose name differs from the recorded one, or that cannot run the
    layer is a PlanFormatError naming the layer."""
    from .tactics import tactic_by_id
    from .tensor_formats import layer_formats

    if spec.tactic_id == REFERENCE_ID:
        if spec.tactic_name:
            raise PlanFormatError(f"plan: {where}layer '{spec.layer.name}' tactic_name: {spec.tactic_name!r} is "
                                  "recorded with tactic_id 0 (the reference kernel, which has no name here)")
        return
    field = f"plan: {where}layer '{spec.layer.name}' tactic_id"
    try:
        tactic = tactic_by_id(spec.tactic_id)
    except Exception as exc:  # noqa: BLE001 - an unknown id: name the field
        raise PlanFormatError(f"{field}: {exc}") from None
    if tactic.layer_type != spec.layer.type or tactic.backend != backend:
        raise PlanFormatError(f"{field}: tactic {tactic.name} runs {tactic.layer_type.value} layers on the "
                              f"{tactic.backend}, the layer is {spec.layer.type.value} on the {backend}")
    if tactic.name != spec.tactic_name:
        raise PlanFormatError(f"plan: {where}layer '{spec.layer.name}' tactic_name: {spec.tactic_name!r} does not "
                              f"name tactic 0x{spec.tactic_id:08x} ({tactic.name})")
    if not tactic_eligible(graph, spec):
        raise PlanFormatError(f"{field}: a {spec.layer.type.value} layer of a subgraph runs only its reference "
                              "kernel")
    tctx = tactic_context(graph, spec, backend)
    if layer_formats(tctx) - tactic.formats:
        raise PlanFormatError(f"{field}: tactic {tactic.name} does not run this layer's tensor formats")
    try:
        state = tactic.prepare(tctx)
    except Exception as exc:  # noqa: BLE001 - the builder never records a tactic that cannot prepare
        raise PlanFormatError(f"{field}: tactic {tactic.name} cannot prepare for this layer: "
                              f"{type(exc).__name__}: {exc}") from None
    remember(spec, backend, tactic, state)


def runtime_context(graph: LoweredGraph, spec: LayerSpec, arrays: list[Any], backend: str,
                    extra: dict | None = None) -> TacticContext | None:
    """The tactic context of a body layer at the shapes of `arrays` (its inputs this call), constants' values
    included; None when its output shapes do not follow from the input shapes alone."""
    inputs = [None if a is None else TensorInfo(tuple(a.shape), graph.tensors[i].dtype, graph.constants.get(i))
              for a, i in zip(arrays, spec.inputs)]
    try:
        results = output_infos(spec.layer, inputs)
    except Exception:  # noqa: BLE001 - the reference kernel then reports the problem with the layer's name
        return None
    if any(not is_static(shape) for shape, _ in results):
        return None
    outputs = [TensorInfo(tuple(shape), graph.tensors[o].dtype) for (shape, _), o in zip(results, spec.outputs)]
    formats = tuple(None if i is None else graph.tensors[i].format for i in spec.inputs), \
        tuple(graph.tensors[o].format for o in spec.outputs)
    return TacticContext(spec.layer, inputs, outputs, backend, dict(extra or {}), *formats)


def run_tactic(tactic: Tactic, state: Any, tctx: TacticContext, graph: LoweredGraph, spec: LayerSpec,
               arrays: list[Any], xp: Any) -> list[Any]:
    """Run `tactic` on `arrays` into fresh outputs of the context's shapes (with the workspace it asks for)."""
    outputs = [xp.empty(info.shape, dtype=nptype(graph.tensors[o].dtype)) for info, o in zip(tctx.outputs,
                                                                                          spec.outputs)]
    nbytes = int(tactic.workspace_bytes(tctx))
    workspace = xp.empty(nbytes, dtype=np.uint8) if nbytes else None
    tactic.run(state, list(arrays), outputs, workspace, xp)
    return outputs


def run_body_layer(graph: LoweredGraph, spec: LayerSpec, arrays: list[Any], xp: Any) -> list[Any] | None:
    """The outputs of a body layer through its chosen tactic, or None when the reference kernel must run it:
    no tactic chosen or prepared for this backend, or the tactic does not support these shapes."""
    entry = _prepared.get(id(spec))
    if entry is None or entry[0]() is not spec:
        return None
    prepared = entry[1].get(backend_of(xp))
    if prepared is None:
        return None
    key = tuple(None if a is None else tuple(a.shape) for a in arrays)
    ok = prepared.supported.get(key)
    tctx = None
    if ok is None or ok:
        tctx = runtime_context(graph, spec, arrays, backend_of(xp))
    if ok is None:
        try:
            ok = tctx is not None and prepared.tactic.supports(tctx) is True
        except Exception:  # noqa: BLE001 - a crashing supports() means not supported
            ok = False
        prepared.supported[key] = ok
    if not ok or tctx is None:
        return None
    return run_tactic(prepared.tactic, prepared.state, tctx, graph, spec, arrays, xp)
