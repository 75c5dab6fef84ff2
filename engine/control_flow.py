"""Control flow on the façade: TensorRT 8.6's IIfConditional and ILoop, each building one layer.

TensorRT adds a conditional's or loop's layers to the enclosing network and finds their scope from boundary
layers; here each scope is its own NetworkDefinition (`then_branch` / `else_branch`, `body`), so a subgraph is a
self-contained graph the builder can keep, fold, serialize and run as a unit. What crosses a boundary is explicit:
`add_input` makes an outer tensor visible inside (the outer-scope values a subgraph reads), `add_output` /
`add_loop_output` make an inner tensor visible outside.

The one outer layer: CONDITIONAL reads [condition, *inputs]; each branch's inputs follow inputs[1:] and its
outputs are the layer's. LOOP reads [trip count or None, *inputs]; the body's input 0 is the iteration number
(int64 scalar) and its input k the view of layer input k: a recurrence's current value, an iterator's slice or
an invariant. `params["inputs"]` gives each one's role, `params["outputs"]` each layer output's source and kind.
"""
from __future__ import annotations

from typing import Any, NamedTuple

from .dtypes import DataType
from .enums import LayerType, LoopOutput, TripLimit
from .errors import EngineError

# The façade's classes are reached through the network passed in (network.py imports this module when a
# conditional or loop is added, so importing it back here would make a cycle).
Tensor = Any
Layer = Any
NetworkDefinition = Any
SUBGRAPHS = "subgraphs"  # the params key engine/subgraph.py reads


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "producer") and hasattr(value, "dtype") and hasattr(value, "is_network_input")


class BranchInputs(NamedTuple):
    """An outer tensor as seen inside each branch of a conditional."""

    then_tensor: Tensor
    else_tensor: Tensor


class _ScopeBuilder:
    """What IfConditional and Loop share: the outer layer, declared in the outer network, that grows as inputs
    and outputs are declared."""

    def __init__(self, network: NetworkDefinition, layer: Layer):
        self.network = network
        self.layer = layer

    @property
    def name(self) -> str:
        return self.layer.name

    def _take_outer_input(self, tensor: Tensor, what: str) -> None:
        if not _is_tensor(tensor):
            raise EngineError(f"{self.layer.type.value.lower()} '{self.name}': {what} must be a Tensor, got "
                              f"{tensor!r:.60}")
        producer = tensor.producer
        if producer is not None and self.network.layers.index(producer) > self.network.layers.index(self.layer):
            self.network.move_layer_to_end(self.layer)

    def _reinfer(self) -> None:
        self.layer.set_params({})  # infers the outputs again from the current subgraphs

    def get_output(self, index: int) -> Tensor:
        return self.layer.get_output(index)

    @property
    def num_outputs(self) -> int:
        return self.layer.num_outputs


def _mark_subgraph_output(graph: NetworkDefinition, tensor: Tensor, where: str) -> int:
    """The position of `tensor` among `graph`'s outputs, marking it first when needed."""
    if not _is_tensor(tensor) or (tensor.producer is None and tensor not in graph.inputs) or \
            (tensor.producer is not None and tensor.producer not in graph.layers):
        raise EngineError(f"{where}: tensor {getattr(tensor, 'name', tensor)!r} does not belong to this subgraph")
    if tensor not in graph.outputs:
        graph.mark_output(tensor)
    return graph.outputs.index(tensor)


class IfConditional(_ScopeBuilder):
    """`network.add_if_conditional()`: the branch whose condition (a bool scalar) holds runs; outputs are the
    then- and else-branch tensors paired by add_output, which must agree in dtype and rank unless the condition
    is known at build time (then only the branch that runs counts, and the builder folds the conditional)."""

    def __init__(self, network: NetworkDefinition, name: str | None = None):
        base = name or f"(CONDITIONAL)_{network.num_layers}"
        self.then_branch = type(network)(f"{base}/then")
        self.else_branch = type(network)(f"{base}/else")
        layer = network.add_layer(LayerType.CONDITIONAL, [None], {SUBGRAPHS: {"then": self.then_branch,
                                                                             "else": self.else_branch}},
                                  num_outputs=0, name=name)
        super().__init__(network, layer)

    def set_condition(self, condition: Tensor) -> None:
        self._take_outer_input(condition, "the condition")
        if condition.dtype != DataType.BOOL:
            raise EngineError(f"conditional '{self.name}': the condition '{condition.name}' must be BOOL, got "
                              f"{condition.dtype.value}")
        self.layer.set_input(0, condition)

    def add_input(self, tensor: Tensor) -> BranchInputs:
        """Make an outer tensor readable inside both branches; returns its tensor in each."""
        self._take_outer_input(tensor, "an input")
        position = self.layer.num_inputs
        views = [branch.add_input(branch.unique_tensor_name(tensor.name), tensor.dtype, tensor.shape or ())
                 for branch in (self.then_branch, self.else_branch)]
        self.layer.set_input(position, tensor)
        return BranchInputs(*views)

    def _known_condition(self) -> bool | None:
        from .shape_inference import known_value

        value = known_value(self.layer.get_input(0))
        return None if value is None or value.size != 1 else bool(value.reshape(-1)[0])

    def add_output(self, then_tensor: Tensor, else_tensor: Tensor, name: str | None = None) -> Tensor:
        """A conditional output: `then_tensor` when the condition holds, else `else_tensor`. Their dtypes and
        ranks must match (TensorRT's rule); differing dims become dynamic."""
        index = self.layer.num_outputs
        if self._known_condition() is None:  # with a known condition only its branch counts (and is folded)
            _check_branch_pair(self.name, index, then_tensor, else_tensor)
        then_pos = _mark_subgraph_output(self.then_branch, then_tensor, f"conditional '{self.name}' then-branch")
        else_pos = _mark_subgraph_output(self.else_branch, else_tensor, f"conditional '{self.name}' else-branch")
        if then_pos != index or else_pos != index:
            raise EngineError(f"conditional '{self.name}' output {index}: each branch tensor may be the output of "
                              "only one add_output")
        taken = else_tensor if self._known_condition() is False else then_tensor
        out = self.network.append_layer_output(self.layer, name or f"{self.name}_output_{index}", taken.dtype)
        self._reinfer()
        return out


def _check_branch_pair(name: str, index: int, then_tensor: Tensor, else_tensor: Tensor) -> None:
    for tensor in (then_tensor, else_tensor):
        if not _is_tensor(tensor):
            raise EngineError(f"conditional '{name}' output {index}: expected Tensors, got {tensor!r:.60}")
    if then_tensor.dtype != else_tensor.dtype:
        raise EngineError(f"conditional '{name}' output {index}: the then-branch gives '{then_tensor.name}' of dtype "
                          f"{then_tensor.dtype.value}, the else-branch '{else_tensor.name}' of dtype "
                          f"{else_tensor.dtype.value}; both branches must give the same dtype")
    if then_tensor.shape is not None and else_tensor.shape is not None and \
            len(then_tensor.shape) != len(else_tensor.shape):
        raise EngineError(f"conditional '{name}' output {index}: the then-branch gives '{then_tensor.name}' of rank "
                          f"{len(then_tensor.shape)} {then_tensor.shape}, the else-branch '{else_tensor.name}' of "
                          f"rank {len(else_tensor.shape)} {else_tensor.shape}; both branches must give the same rank")


class _BodyTensorLayer:
    """What add_recurrence / add_iterator return (TensorRT's IRecurrenceLayer / IIteratorLayer): output 0 is
    the body's view of the input."""

    def __init__(self, loop: Loop, position: int, tensor: Tensor):
        self.loop = loop
        self.position = position  # the layer input (and body input) position
        self._tensor = tensor

    def get_output(self, index: int) -> Tensor:
        if index != 0:
            raise EngineError(f"loop '{self.loop.name}': a recurrence or iterator has one output, asked for {index}")
        return self._tensor


class RecurrenceLayer(_BodyTensorLayer):
    def set_input(self, index: int, tensor: Tensor) -> None:
        """Input 1: the body tensor that becomes the recurrence's value in the next iteration."""
        if index != 1:
            raise EngineError(f"loop '{self.loop.name}': a recurrence's input 0 is its initial value; set input 1 "
                              "to the next iteration's value")
        self.loop._set_next(self, tensor)


class LoopOutputLayer:
    def __init__(self, tensor: Tensor):
        self._tensor = tensor

    def get_output(self, index: int) -> Tensor:
        return self._tensor


class Loop(_ScopeBuilder):
    """`network.add_loop()`: the body runs while the trip limits allow (a COUNT read before the loop, a WHILE
    condition of the body read before each iteration, the length of the iterated axes)."""

    def __init__(self, network: NetworkDefinition, name: str | None = None):
        base = name or f"(LOOP)_{network.num_layers}"
        self.body = type(network)(f"{base}/body")
        self.iteration = self.body.add_input(f"{base}/iteration", DataType.INT64, ())
        params = {SUBGRAPHS: {"body": self.body}, "inputs": [], "outputs": [], "while_output": None}
        layer = network.add_layer(LayerType.LOOP, [None], params, num_outputs=0, name=name)
        super().__init__(network, layer)

    def _add_body_input(self, tensor: Tensor, role: dict[str, Any], shape) -> Tensor:
        self._take_outer_input(tensor, "an input")
        view = self.body.add_input(self.body.unique_tensor_name(f"{tensor.name}/{role['role']}"), tensor.dtype, shape)
        self.layer.params["inputs"].append(role)
        self.layer.set_input(self.layer.num_inputs, tensor)
        return view

    def add_trip_limit(self, tensor: Tensor, kind: TripLimit) -> None:
        """COUNT: an outer INT32/INT64 scalar, the most iterations. WHILE: a BOOL scalar of the body, computed from
        the recurrences' current values and read before each iteration (the iteration runs only if it holds)."""
        kind = TripLimit(kind)
        if kind == TripLimit.COUNT:
            self._take_outer_input(tensor, "the trip count")
            if tensor.dtype not in (DataType.INT32, DataType.INT64):
                raise EngineError(f"loop '{self.name}': the trip count '{tensor.name}' must be INT32 or INT64, got "
                                  f"{tensor.dtype.value}")
            self.layer.set_input(0, tensor)
            return
        if tensor.dtype != DataType.BOOL:
            raise EngineError(f"loop '{self.name}': the WHILE condition '{tensor.name}' must be BOOL, got "
                              f"{tensor.dtype.value}")
        position = _mark_subgraph_output(self.body, tensor, f"loop '{self.name}' WHILE condition")
        self.layer.set_params({"while_output": position})

    def add_recurrence(self, initial: Tensor) -> RecurrenceLayer:
        """A loop-carried value: `initial` in the first iteration, then what set_input(1, ...) gave."""
        view = self._add_body_input(initial, {"role": "recurrence", "next": None}, initial.shape or ())
        return RecurrenceLayer(self, self.layer.num_inputs - 1, view)

    def add_iterator(self, tensor: Tensor, axis: int = 0, reverse: bool = False) -> _BodyTensorLayer:
        """Iteration i sees slice i of `tensor` along `axis` (from the end when `reverse`); the loop runs at most
        that axis' length."""
        shape = tensor.shape or ()
        if not -len(shape) <= axis < len(shape):
            raise EngineError(f"loop '{self.name}': iterator axis {axis} is out of range for '{tensor.name}' of "
                              f"shape {tensor.shape}")
        axis %= len(shape)
        view = self._add_body_input(tensor, {"role": "iterator", "axis": axis, "reverse": bool(reverse)},
                                    shape[:axis] + shape[axis + 1:])
        return _BodyTensorLayer(self, self.layer.num_inputs - 1, view)

    def add_input(self, tensor: Tensor) -> Tensor:
        """An outer tensor the body reads unchanged (an outer-scope value); returns the body's view of it."""
        return self._add_body_input(tensor, {"role": "invariant"}, tensor.shape or ())

    def _set_next(self, recurrence: RecurrenceLayer, tensor: Tensor) -> None:
        position = _mark_subgraph_output(self.body, tensor, f"loop '{self.name}' recurrence")
        self.layer.params["inputs"][recurrence.position - 1]["next"] = position
        self._reinfer()

    def add_loop_output(self, tensor: Tensor, kind: LoopOutput = LoopOutput.LAST_VALUE, axis: int = 0,
                        name: str | None = None) -> LoopOutputLayer:
        """LAST_VALUE: a recurrence's value when the loop stops (its initial value if it never ran), or another
        body tensor's value in the last iteration. CONCATENATE / REVERSE: the tensor's value of every iteration,
        stacked along a new `axis` (REVERSE: last iteration first)."""
        kind = LoopOutput(kind)
        recurrence = next((k for k, t in enumerate(self.body.inputs)
                           if t is tensor and k > 0 and self.layer.params["inputs"][k - 1]["role"] == "recurrence"),
                          None)
        if kind == LoopOutput.LAST_VALUE and recurrence is not None:
            entry = {"kind": kind.value, "recurrence": recurrence, "axis": 0}
        else:
            position = _mark_subgraph_output(self.body, tensor, f"loop '{self.name}' output")
            rank = len(tensor.shape) if tensor.shape is not None else None
            if kind != LoopOutput.LAST_VALUE and rank is not None and not -(rank + 1) <= axis <= rank:
                raise EngineError(f"loop '{self.name}': output axis {axis} is out of range for stacking "
                                  f"'{tensor.name}' of rank {rank}")
            if kind != LoopOutput.LAST_VALUE and rank is not None:
                axis %= rank + 1
            entry = {"kind": kind.value, "body_output": position, "axis": int(axis)}
        self.layer.params["outputs"].append(entry)
        out = self.network.append_layer_output(self.layer, name or f"{self.name}_output_{self.layer.num_outputs}",
                                               tensor.dtype)
        self._reinfer()
        return LoopOutputLayer(out)
