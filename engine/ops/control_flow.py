"""CONDITIONAL and LOOP layers (TensorRT's if-conditional and loop): shape inference and the reference kernels.

The layers and their params are described in engine/control_flow.py; their subgraphs are inferred and run by
engine/subgraph.py. The kernels read the condition and the trip count on the host (a device-to-host copy on the
GPU), which is why these layers cannot be captured into a CUDA graph (docs/control-flow.md). The ONNX importers
for If, Loop and Scan are in ops/control_flow_import.py.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import DataType, from_numpy, nptype
from ..enums import LayerType, LoopOutput
from ..errors import EngineError
from .base import TensorInfo, register_layer
from .shape_values import host_scalar

# Loops whose shape inference must go round more than this many times to settle are given dynamic dims.
SHAPE_FIXPOINT_ROUNDS = 4


def _subgraphs(layer) -> dict[str, Any]:
    from ..subgraph import subgraphs_of

    return subgraphs_of(layer)


def _merge_shapes(a: tuple[int, ...] | None, b: tuple[int, ...] | None) -> tuple[int, ...] | None:
    """The dims two shapes of one rank share; -1 where they differ or either is unknown."""
    if a is None or b is None:
        return None
    return tuple(x if x == y else -1 for x, y in zip(a, b))


# ---------------------------------------------------------------------------------------------- CONDITIONAL
def _scalar_bool(info: TensorInfo | None, what: str) -> bool | None:
    if info is None:
        raise EngineError(f"{what} is not set")
    if info.dtype != DataType.BOOL:
        raise EngineError(f"{what} must be BOOL, got {info.dtype.value}")
    if info.shape is not None and int(np.prod([d for d in info.shape if d >= 0], dtype=np.int64)) > 1:
        raise EngineError(f"{what} must hold one value, got shape {info.shape}")
    return None if info.value is None else bool(np.asarray(info.value).reshape(-1)[0])


def _infer_conditional(layer, inputs):
    from ..subgraph import infer_subgraph

    branches = _subgraphs(layer)
    name = f"conditional '{layer.name}'"
    condition = _scalar_bool(inputs[0], f"{name}: the condition")
    branch_inputs = [info for info in inputs[1:]]
    if any(info is None for info in branch_inputs):
        raise EngineError(f"{name}: an input is missing")
    if condition is not None:  # only the branch that runs decides the outputs
        key = "then" if condition else "else"
        return [(i.shape, i.dtype) for i in infer_subgraph(branches[key], branch_inputs, f"{name} {key}-branch")]
    then_outs = infer_subgraph(branches["then"], branch_inputs, f"{name} then-branch")
    else_outs = infer_subgraph(branches["else"], branch_inputs, f"{name} else-branch")
    if len(then_outs) != len(else_outs):
        raise EngineError(f"{name}: the then-branch has {len(then_outs)} outputs, the else-branch {len(else_outs)}")
    results = []
    for index, (a, b) in enumerate(zip(then_outs, else_outs)):
        if a.dtype != b.dtype:
            raise EngineError(f"{name} output {index}: the then-branch gives {a.dtype.value}, the else-branch "
                              f"{b.dtype.value}")
        if a.shape is not None and b.shape is not None and len(a.shape) != len(b.shape):
            raise EngineError(f"{name} output {index}: the then-branch gives rank {len(a.shape)} {a.shape}, the "
                              f"else-branch rank {len(b.shape)} {b.shape}")
        results.append((_merge_shapes(a.shape, b.shape), a.dtype))
    return results


def _compute_conditional(layer, inputs, xp):
    from ..subgraph import run_subgraph

    key = "then" if bool(host_scalar(inputs[0])) else "else"
    return run_subgraph(_subgraphs(layer)[key], inputs[1:], xp, f"conditional '{layer.name}' {key}-branch")


register_layer(LayerType.CONDITIONAL, _infer_conditional, _compute_conditional)


# ---------------------------------------------------------------------------------------------- LOOP
def _roles(layer) -> list[dict[str, Any]]:
    return layer.params["inputs"]


def _check_loop_params(layer, num_inputs: int, num_body_outputs: int) -> None:
    """The params must describe the inputs the layer has and name body outputs that exist."""
    name = f"loop '{layer.name}'"
    roles = _roles(layer)
    if len(roles) != num_inputs - 1:
        raise EngineError(f"{name}: params describe {len(roles)} inputs, the layer has {num_inputs - 1}")

    def body_output(position, what):
        if not isinstance(position, int) or not 0 <= position < num_body_outputs:
            raise EngineError(f"{name}: {what} names body output {position!r}, the body has {num_body_outputs}")

    for k, role in enumerate(roles):
        if role.get("role") == "recurrence":
            if role.get("next") is None:
                raise EngineError(f"{name}: recurrence {k} has no next value (set_input(1, ...))")
            body_output(role["next"], f"recurrence {k}")
        elif role.get("role") == "iterator":
            if not isinstance(role.get("axis"), int) or not isinstance(role.get("reverse"), bool):
                raise EngineError(f"{name}: iterator {k} needs an int axis and a bool reverse, got {role}")
        elif role.get("role") != "invariant":
            raise EngineError(f"{name}: input {k + 1} has an unknown role {role!r:.80}")
    if layer.params.get("while_output") is not None:
        body_output(layer.params["while_output"], "the WHILE condition")
    for k, out in enumerate(layer.params["outputs"]):
        if out.get("kind") not in {kind.value for kind in LoopOutput}:
            raise EngineError(f"{name}: output {k} has an unknown kind {out.get('kind')!r}")
        if "recurrence" in out:
            r = out["recurrence"]
            if not isinstance(r, int) or not 1 <= r < num_inputs or roles[r - 1].get("role") != "recurrence":
                raise EngineError(f"{name}: output {k} names input {r!r}, which is not a recurrence")
        else:
            body_output(out.get("body_output"), f"output {k}")
        if not isinstance(out.get("axis"), int) or out["axis"] < 0:
            raise EngineError(f"{name}: output {k} needs an axis >= 0, got {out.get('axis')!r}")


def _trip_bound(layer, inputs) -> int | None:
    """The most iterations, known before the loop runs: min of the trip count and the iterated lengths; -1 when
    some of them are known only at run time; None when nothing bounds the loop."""
    bounds = []
    if inputs[0] is not None:
        info = inputs[0]
        if info.dtype not in (DataType.INT32, DataType.INT64):
            raise EngineError(f"loop '{layer.name}': the trip count must be INT32 or INT64, got {info.dtype.value}")
        bounds.append(-1 if info.value is None else max(int(np.asarray(info.value).reshape(-1)[0]), 0))
    for role, info in zip(_roles(layer), inputs[1:]):
        if role["role"] == "iterator":
            if info.shape is None or not role["axis"] < len(info.shape):
                raise EngineError(f"loop '{layer.name}': iterator axis {role['axis']} is out of range for shape "
                                  f"{info.shape}")
            bounds.append(info.shape[role["axis"]])
    if not bounds:
        return None
    known = [b for b in bounds if b >= 0]
    if len(known) < len(bounds):
        return min(known) if known and min(known) == 0 else -1
    return min(known)


def _body_infos(layer, inputs, recurrences: dict[int, TensorInfo]) -> list[TensorInfo]:
    infos = [TensorInfo((), DataType.INT64, None)]
    for k, (role, info) in enumerate(zip(_roles(layer), inputs[1:]), start=1):
        if role["role"] == "recurrence":
            infos.append(recurrences[k])
        elif role["role"] == "iterator":
            axis = role["axis"]
            infos.append(TensorInfo(info.shape[:axis] + info.shape[axis + 1:], info.dtype, None))
        else:
            infos.append(info)
    return infos


def _infer_loop(layer, inputs):
    from ..subgraph import as_lowered, infer_subgraph

    name = f"loop '{layer.name}'"
    body = _subgraphs(layer)["body"]
    _check_loop_params(layer, len(inputs), len(as_lowered(body).outputs))
    if any(info is None for info in inputs[1:]):
        raise EngineError(f"{name}: an input is missing")
    roles = _roles(layer)
    bound = _trip_bound(layer, inputs)
    if bound is None and layer.params.get("while_output") is None:
        raise EngineError(f"{name}: nothing limits the trip count (add a COUNT or WHILE trip limit or an iterator)")
    # Recurrence shapes: start from the initial values, widen to -1 every dim the body changes, until stable.
    recurrences = {k: TensorInfo(inputs[k].shape, inputs[k].dtype, None)
                   for k, role in enumerate(roles, start=1) if role["role"] == "recurrence"}
    for _ in range(SHAPE_FIXPOINT_ROUNDS):
        outs = infer_subgraph(body, _body_infos(layer, inputs, recurrences), f"{name} body")
        changed = False
        for k, info in recurrences.items():
            nxt = outs[roles[k - 1]["next"]]
            if nxt.dtype != info.dtype:
                raise EngineError(f"{name}: recurrence {k} starts as {info.dtype.value} but the body makes its next "
                                  f"value {nxt.dtype.value}")
            if nxt.shape is not None and info.shape is not None and len(nxt.shape) != len(info.shape):
                raise EngineError(f"{name}: recurrence {k} starts with rank {len(info.shape)} {info.shape} but the "
                                  f"body makes its next value rank {len(nxt.shape)} {nxt.shape}")
            merged = _merge_shapes(info.shape, nxt.shape)
            if merged != info.shape:
                recurrences[k] = TensorInfo(merged, info.dtype, None)
                changed = True
        if not changed:
            break
    else:
        recurrences = {k: TensorInfo(tuple(-1 for _ in info.shape), info.dtype, None)
                       for k, info in recurrences.items()}
        outs = infer_subgraph(body, _body_infos(layer, inputs, recurrences), f"{name} body")
    while_output = layer.params.get("while_output")
    if while_output is not None:
        _scalar_bool(outs[while_output], f"{name}: the WHILE condition")
    trips = -1 if while_output is not None and bound != 0 else bound
    results = []
    for out in layer.params["outputs"]:
        if "recurrence" in out:
            info = recurrences[out["recurrence"]]
            # With no iteration at all the value is the initial one, of the initial shape.
            results.append((inputs[out["recurrence"]].shape if trips == 0 else info.shape, info.dtype))
            continue
        info = outs[out["body_output"]]
        if out["kind"] == LoopOutput.LAST_VALUE.value:
            results.append((info.shape, info.dtype))
            continue
        if info.shape is None:
            results.append((None, info.dtype))
            continue
        if out["axis"] > len(info.shape):
            raise EngineError(f"{name}: output axis {out['axis']} is out of range for stacking rank {len(info.shape)}")
        axis = out["axis"]
        results.append((info.shape[:axis] + (trips,) + info.shape[axis:], info.dtype))
    return results


def _compute_loop(layer, inputs, xp):
    from ..subgraph import run_subgraph

    name = f"loop '{layer.name}'"
    body = _subgraphs(layer)["body"]
    roles = _roles(layer)
    limits = []
    if inputs[0] is not None:
        limits.append(max(int(host_scalar(inputs[0])), 0))
    for role, array in zip(roles, inputs[1:]):
        if role["role"] == "iterator":
            limits.append(array.shape[role["axis"]])
    limit = min(limits) if limits else None
    while_output = layer.params.get("while_output")
    if limit is None and while_output is None:
        raise EngineError(f"{name}: nothing limits the trip count")
    state = {k: inputs[k] for k, role in enumerate(roles, start=1) if role["role"] == "recurrence"}
    stacked: dict[int, list[Any]] = {k: [] for k, out in enumerate(layer.params["outputs"]) if "recurrence" not in out}
    iteration = 0
    while limit is None or iteration < limit:
        body_inputs = [xp.asarray(iteration, dtype=np.int64)]
        for k, (role, array) in enumerate(zip(roles, inputs[1:]), start=1):
            if role["role"] == "recurrence":
                body_inputs.append(state[k])
            elif role["role"] == "iterator":
                index = array.shape[role["axis"]] - 1 - iteration if role["reverse"] else iteration
                body_inputs.append(xp.take(array, index, axis=role["axis"]))
            else:
                body_inputs.append(array)
        if while_output is not None:
            (keep_going,) = run_subgraph(body, body_inputs, xp, f"{name} body", wanted=[while_output])
            if not bool(host_scalar(keep_going)):
                break
        outs = run_subgraph(body, body_inputs, xp, f"{name} body (iteration {iteration})")
        for k in state:
            state[k] = outs[roles[k - 1]["next"]]
        for k in stacked:
            stacked[k].append(outs[layer.params["outputs"][k]["body_output"]])
        iteration += 1
    results = []
    for k, out in enumerate(layer.params["outputs"]):
        if "recurrence" in out:
            results.append(state[out["recurrence"]])
            continue
        values = stacked[k]
        if out["kind"] == LoopOutput.LAST_VALUE.value:
            if not values:
                raise EngineError(f"{name}: output {k} is the last value of a body tensor, but the loop ran no "
                                  "iteration")
            results.append(values[-1])
        elif values:
            results.append(xp.stack(values[::-1] if out["kind"] == LoopOutput.REVERSE.value else values,
                                    axis=out["axis"]))
        else:  # no iteration: an empty stack of the body tensor's shape
            results.append(_empty_stack(layer, inputs, state, k, xp))
    return results


def _empty_stack(layer, inputs, state, index: int, xp):
    """Output `index` of a loop that ran no iteration: zero copies of the body tensor, whose shape is inferred
    from what the body would have seen in a first iteration."""
    from ..subgraph import infer_subgraph

    name = f"loop '{layer.name}'"
    out = layer.params["outputs"][index]
    infos = [TensorInfo((), DataType.INT64, None)]
    for k, (role, array) in enumerate(zip(_roles(layer), inputs[1:]), start=1):
        shape = tuple(array.shape)
        if role["role"] == "iterator":
            shape = shape[:role["axis"]] + shape[role["axis"] + 1:]
        source = state[k] if role["role"] == "recurrence" else array
        infos.append(TensorInfo(tuple(source.shape) if role["role"] == "recurrence" else shape,
                                from_numpy(source.dtype), None))
    info = infer_subgraph(_subgraphs(layer)["body"], infos, f"{name} body")[out["body_output"]]
    if info.shape is None or any(d < 0 for d in info.shape):
        raise EngineError(f"{name}: output {index} is empty (no iteration) and its element shape {info.shape} is "
                          "not known without running the body")
    shape = info.shape[:out["axis"]] + (0,) + info.shape[out["axis"]:]
    return xp.empty(shape, dtype=nptype(info.dtype))


register_layer(LayerType.LOOP, _infer_loop, _compute_loop)
