"""ONNX If, Loop and Scan → CONDITIONAL and LOOP layers, built through the façade's add_if_conditional / add_loop.

Subgraphs are imported by a child parser (ImportContext.import_subgraph); a name a subgraph reads from an
enclosing graph becomes an input of the conditional (both branches) or an invariant of the loop, at every level
of nesting. Loop maps to TensorRT's loop as the TensorRT ONNX parser does: the condition is a recurrence checked by
a WHILE trip limit, loop-carried values are recurrences, scan outputs are CONCATENATE outputs along axis 0.
Scan-9+ iterates its scan inputs along scan_input_axes (reversed by scan_input_directions) and stacks its scan
outputs along scan_output_axes (REVERSE for scan_output_directions); Scan-8's batch axis becomes an outer loop.
Sequence- and optional-typed subgraph values are not tensors and are refused by the parser's dtype checks.
"""
from __future__ import annotations

import numpy as np

from ..dtypes import DataType
from ..enums import LoopOutput, TripLimit
from ..errors import ParseError, UnsupportedCategory
from .base import normalize_axis, onnx_op


def _expect_count(ctx, what: str, got: int, expected: int, meaning: str) -> None:
    if got != expected:
        raise ParseError(f"{what} has {got} inputs; it needs {expected} ({meaning})", node=ctx.name, op=ctx.op_type)


@onnx_op("If")
def import_if(ctx):
    then_graph, else_graph = ctx.subgraph("then_branch"), ctx.subgraph("else_branch")
    condition = ctx.input(0)
    if condition is None:
        raise ParseError("the condition input is missing", node=ctx.name, op=ctx.op_type)
    if condition.dtype != DataType.BOOL:
        ctx.unsupported(f"the condition must be BOOL, got {condition.dtype.value}", UnsupportedCategory.DTYPE)
    known = ctx.const(0)
    if known is not None and known.size == 1:
        # Known when parsed: only the branch that runs is imported (as TensorRT's parser does), into both slots
        # of the conditional, which the builder then folds away; the other branch may not even import.
        then_graph = else_graph = then_graph if bool(known.reshape(-1)[0]) else else_graph
    conditional = ctx.network.add_if_conditional(ctx.layer_name())
    conditional.set_condition(condition)
    views: dict[int, tuple] = {}

    def capture(branch: int):
        def view(outer):
            if id(outer) not in views:
                views[id(outer)] = conditional.add_input(outer)
            return views[id(outer)][branch]
        return view

    then_outputs = ctx.import_subgraph(then_graph, conditional.then_branch, {}, capture(0), "then_branch")
    else_outputs = ctx.import_subgraph(else_graph, conditional.else_branch, {}, capture(1), "else_branch")
    if len(then_outputs) != len(else_outputs) or len(then_outputs) != ctx.num_outputs:
        raise ParseError(f"then_branch gives {len(then_outputs)} outputs and else_branch {len(else_outputs)}; the "
                         f"node has {ctx.num_outputs}", node=ctx.name, op=ctx.op_type)
    return [conditional.add_output(t, e) for t, e in zip(then_outputs, else_outputs)]


@onnx_op("Loop", min_opset=1)
def import_loop(ctx):
    body = ctx.subgraph("body")
    trip_count, condition = ctx.input(0), ctx.input(1)
    initials = ctx.inputs()[2:]
    if any(v is None for v in initials):
        raise ParseError("a loop-carried initial value is missing", node=ctx.name, op=ctx.op_type)
    count = len(initials)
    _expect_count(ctx, "the body", len(body.input), 2 + count,
                  f"the iteration number, the condition and {count} loop-carried values")
    if len(body.output) < 1 + count:
        raise ParseError(f"the body has {len(body.output)} outputs; it needs at least {1 + count} (the condition and "
                         f"{count} loop-carried values)", node=ctx.name, op=ctx.op_type)
    if trip_count is None and condition is None:
        ctx.unsupported("neither a trip count nor a condition is given: the loop would never end",
                        UnsupportedCategory.OTHER)
    loop = ctx.network.add_loop(ctx.layer_name())
    if trip_count is not None:
        loop.add_trip_limit(trip_count, TripLimit.COUNT)
    cond_initial = condition if condition is not None else ctx.constant(np.array(True))
    cond_recurrence = loop.add_recurrence(cond_initial)
    recurrences = [loop.add_recurrence(v) for v in initials]
    bound = {body.input[0].name: loop.iteration, body.input[1].name: cond_recurrence.get_output(0)}
    bound.update({inp.name: rec.get_output(0) for inp, rec in zip(body.input[2:], recurrences)})
    outputs = ctx.import_subgraph(body, loop.body, bound, _invariant(loop), "body")
    cond_recurrence.set_input(1, outputs[0])
    if condition is not None:  # without a condition input, the body's condition output is ignored (ONNX)
        loop.add_trip_limit(cond_recurrence.get_output(0), TripLimit.WHILE)
    for rec, value in zip(recurrences, outputs[1:1 + count]):
        rec.set_input(1, value)
    results = [loop.add_loop_output(rec.get_output(0), LoopOutput.LAST_VALUE).get_output(0) for rec in recurrences]
    results += [loop.add_loop_output(scan, LoopOutput.CONCATENATE, 0).get_output(0)
                for scan in outputs[1 + count:]]
    return results


def _invariant(loop):
    views: dict[int, object] = {}

    def view(outer):
        if id(outer) not in views:
            views[id(outer)] = loop.add_input(outer)
        return views[id(outer)]
    return view


@onnx_op("Scan", min_opset=8)
def import_scan(ctx):
    if ctx.opset < 9:
        return _import_scan8(ctx)
    body = ctx.subgraph("body")
    num_scan = int(ctx.attr("num_scan_inputs"))
    inputs = ctx.inputs()
    num_states = len(inputs) - num_scan
    if num_scan < 1 or num_states < 0 or any(t is None for t in inputs):
        raise ParseError(f"num_scan_inputs={num_scan} does not fit the node's {len(inputs)} inputs", node=ctx.name,
                         op=ctx.op_type)
    _expect_count(ctx, "the body", len(body.input), len(inputs), f"{num_states} states and {num_scan} scan slices")
    num_scan_outputs = len(body.output) - num_states
    if num_scan_outputs < 0 or num_states + num_scan_outputs != ctx.num_outputs:
        raise ParseError(f"the body has {len(body.output)} outputs, the node {ctx.num_outputs}; they must match "
                         f"({num_states} states and the scan outputs)", node=ctx.name, op=ctx.op_type)
    in_axes = list(ctx.attr("scan_input_axes", [0] * num_scan))
    in_dirs = list(ctx.attr("scan_input_directions", [0] * num_scan))
    out_axes = list(ctx.attr("scan_output_axes", [0] * num_scan_outputs))
    out_dirs = list(ctx.attr("scan_output_directions", [0] * num_scan_outputs))
    for attr, values, n in (("scan_input_axes", in_axes, num_scan), ("scan_input_directions", in_dirs, num_scan),
                            ("scan_output_axes", out_axes, num_scan_outputs),
                            ("scan_output_directions", out_dirs, num_scan_outputs)):
        if len(values) != n:
            raise ParseError(f"attribute '{attr}' has {len(values)} entries, expected {n}", node=ctx.name,
                             op=ctx.op_type)
    states, scans = inputs[:num_states], inputs[num_states:]
    loop = ctx.network.add_loop(ctx.layer_name())
    recurrences = [loop.add_recurrence(s) for s in states]
    iterators = [loop.add_iterator(x, normalize_axis(int(axis), len(x.shape), "scan_input_axes entry"),
                                   reverse=bool(direction)) for x, axis, direction in zip(scans, in_axes, in_dirs)]
    bound = {inp.name: view.get_output(0) for inp, view in zip(body.input, recurrences + iterators)}
    outputs = ctx.import_subgraph(body, loop.body, bound, _invariant(loop), "body")
    for rec, value in zip(recurrences, outputs[:num_states]):
        rec.set_input(1, value)
    results = [loop.add_loop_output(rec.get_output(0), LoopOutput.LAST_VALUE).get_output(0) for rec in recurrences]
    for scan, axis, direction in zip(outputs[num_states:], out_axes, out_dirs):
        axis = int(axis)
        if axis < 0:
            if scan.shape is None:
                ctx.unsupported("a negative scan_output_axes entry needs the scan output's rank",
                                UnsupportedCategory.DYNAMIC_SHAPE)
            axis = normalize_axis(axis, len(scan.shape) + 1, "scan_output_axes entry")
        kind = LoopOutput.REVERSE if direction else LoopOutput.CONCATENATE
        results.append(loop.add_loop_output(scan, kind, axis).get_output(0))
    return results


def _import_scan8(ctx):
    """Scan-8: axis 0 of every state and scan input is a batch axis, scanned along axis 1, each batch item on its
    own. An outer loop iterates the batch; its body holds the scan loop (over the item's axis 0)."""
    body = ctx.subgraph("body")
    if ctx.input(0) is not None:
        ctx.unsupported("Scan-8 sequence_lens (per-batch-item lengths) is not supported", UnsupportedCategory.OTHER)
    if ctx.has_attr("directions") and any(int(d) for d in ctx.attr("directions")):
        ctx.unsupported("Scan-8 reverse directions are not supported", UnsupportedCategory.ATTRIBUTE)
    num_scan = int(ctx.attr("num_scan_inputs"))
    inputs = ctx.inputs()[1:]
    num_states = len(inputs) - num_scan
    if num_scan < 1 or num_states < 0 or any(t is None for t in inputs):
        raise ParseError(f"num_scan_inputs={num_scan} does not fit the node's inputs", node=ctx.name, op=ctx.op_type)
    _expect_count(ctx, "the body", len(body.input), len(inputs), f"{num_states} states and {num_scan} scan slices")
    batch = ctx.network.add_loop(ctx.layer_name("batch"))
    items = [batch.add_iterator(t, 0).get_output(0) for t in inputs]
    scan = batch.body.add_loop(ctx.layer_name())
    recurrences = [scan.add_recurrence(item) for item in items[:num_states]]
    iterators = [scan.add_iterator(item, 0) for item in items[num_states:]]
    bound = {inp.name: view.get_output(0) for inp, view in zip(body.input, recurrences + iterators)}
    batch_invariant = _invariant(batch)
    scan_views: dict[int, object] = {}

    def capture(outer):  # an outer-scope value crosses both loops
        if id(outer) not in scan_views:
            scan_views[id(outer)] = scan.add_input(batch_invariant(outer))
        return scan_views[id(outer)]

    outputs = ctx.import_subgraph(body, scan.body, bound, capture, "body")
    if len(outputs) != ctx.num_outputs:
        raise ParseError(f"the body has {len(outputs)} outputs, the node {ctx.num_outputs}", node=ctx.name,
                         op=ctx.op_type)
    for rec, value in zip(recurrences, outputs[:num_states]):
        rec.set_input(1, value)
    per_item = [scan.add_loop_output(rec.get_output(0), LoopOutput.LAST_VALUE).get_output(0) for rec in recurrences]
    per_item += [scan.add_loop_output(value, LoopOutput.CONCATENATE, 0).get_output(0)
                 for value in outputs[num_states:]]
    return [batch.add_loop_output(value, LoopOutput.CONCATENATE, 0).get_output(0) for value in per_item]
