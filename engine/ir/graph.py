"""The builder's own graph: Nodes and Values whose producer/consumer links stay in sync on every edit.

The builder lowers the user's NetworkDefinition into a Graph once; every pass edits only this graph, through the
methods below (a node's inputs are read-only from outside: `set_input` keeps the uses of both values right, as
onnx-graphsurgeon's synchronized lists do). `lint()` states the invariants once; the pass pipeline checks them
after each pass in tests and debug builds.
"""
from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..dtypes import DataType
from ..enums import LayerType, TensorFormat
from ..errors import BuildError
from .epilogue import NO_EPILOGUE, Epilogue


class IRError(BuildError):
    """A graph edit broke one of the graph's invariants (a builder bug, named with the pass that did it)."""


class Value:
    """A tensor of the graph: produced by at most one node (None for graph inputs), read by any number."""

    def __init__(self, name: str, dtype: DataType, shape: Sequence[int] | None):
        self.name = name
        self.dtype = DataType(dtype)
        self.shape: tuple[int, ...] | None = None if shape is None else tuple(int(d) for d in shape)
        self.producer: Node | None = None
        self.uses: list[tuple[Node, int]] = []  # (reader, input position), kept in sync by Graph edits
        # Memory layout; only the channels-last pass (passes/tensor_formats.py) sets anything but LINEAR
        self.format = TensorFormat.LINEAR

    @property
    def consumers(self) -> list[Node]:
        """Distinct readers, in the order they started reading."""
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    @property
    def constant(self) -> np.ndarray | None:
        """The value when a Constant node produces it and no pass may bake it in: a refittable weight's value can
        change after the build (engine/refittable.py), so passes see None and leave its readers as they are."""
        node = self.producer
        if node is None or node.type != LayerType.CONSTANT or node.refit_name is not None:
            return None
        return node.params["weights"]

    @property
    def is_constant(self) -> bool:
        """Produced by a Constant node, refittable or not (for rewrites that move the value without reading it)."""
        return self.producer is not None and self.producer.type == LayerType.CONSTANT

    @property
    def static(self) -> bool:
        return self.shape is not None and all(d >= 0 for d in self.shape)

    def __repr__(self) -> str:
        return f"Value({self.name!r}, {self.dtype.value}, {self.shape})"


class Node:
    """One layer of the graph: type, name, plain-JSON params, precision, typed epilogue and build metadata.

    Params read as attributes (`node.stride_nd`) as on the façade's Layer, so the op registry's kernels take
    either. A node made outside a graph (plan loading) has no inputs or outputs.
    """

    def __init__(self, layer_type: LayerType, name: str, params: dict[str, Any] | None = None,
                 precision: DataType = DataType.FLOAT, precision_is_set: bool = False,
                 epilogue: Epilogue = NO_EPILOGUE, metadata: dict[str, Any] | None = None,
                 output_types: dict[int, DataType] | None = None):
        self.type = LayerType(layer_type)
        self.name = name
        self.params: dict[str, Any] = dict(params or {})
        self.precision = DataType(precision)
        self.precision_is_set = precision_is_set
        self.epilogue = epilogue
        # Free-form build info shown by `inspect` (fused_from, folded_from); never used to compute.
        self.metadata: dict[str, Any] = dict(metadata or {})
        # Output dtypes the user forced (TensorRT's set_output_type): shape inference keeps them.
        self.output_types: dict[int, DataType] = dict(output_types or {})
        # The named weight a refittable build keeps replaceable (a Constant node only; engine/refittable.py).
        self.refit_name: str | None = None
        self._inputs: list[Value | None] = []
        self._outputs: list[Value] = []
        self.graph: Graph | None = None

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        params = self.__dict__.get("params", {})
        if key in params:
            return params[key]
        raise AttributeError(f"node '{self.__dict__.get('name')}' has no attribute {key!r}")

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return tuple(self._inputs)

    @property
    def outputs(self) -> tuple[Value, ...]:
        return tuple(self._outputs)

    def __repr__(self) -> str:
        ins = ", ".join("None" if v is None else v.name for v in self._inputs)
        return f"Node({self.name!r}, {self.type.value}, [{ins}] -> [{', '.join(v.name for v in self._outputs)}])"


class Graph:
    """Nodes in execution order, the values they exchange, graph inputs and outputs, unique names."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.nodes: list[Node] = []
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self._values: dict[str, Value] = {}
        self._node_names: set[str] = set()

    # ------------------------------------------------------------------ names
    def fresh_name(self, base: str, kind: str = "value") -> str:
        """`base`, or `base_1`, `base_2`, ... : the first name not yet used by a value (or node)."""
        taken = self._values if kind == "value" else self._node_names
        name, i = base, 1
        while name in taken:
            name = f"{base}_{i}"
            i += 1
        return name

    def value(self, name: str) -> Value:
        try:
            return self._values[name]
        except KeyError:
            raise IRError(f"graph '{self.name}' has no value named '{name}'") from None

    def values(self) -> list[Value]:
        return list(self._values.values())

    def rename(self, value: Value, name: str) -> None:
        if name == value.name:
            return
        if name in self._values:
            raise IRError(f"cannot rename '{value.name}' to '{name}': a value of that name exists")
        del self._values[value.name]
        value.name = name
        self._values[name] = value

    def rename_node(self, node: Node, name: str) -> None:
        if name == node.name:
            return
        if name in self._node_names:
            raise IRError(f"cannot rename node '{node.name}' to '{name}': a node of that name exists")
        self._node_names.discard(node.name)
        node.name = name
        self._node_names.add(name)

    # ------------------------------------------------------------------ building
    def _new_value(self, name: str, dtype: DataType, shape) -> Value:
        value = Value(self.fresh_name(name), dtype, shape)
        self._values[value.name] = value
        return value

    def add_input(self, name: str, dtype: DataType, shape) -> Value:
        if name in self._values:
            raise IRError(f"graph input '{name}': a value of that name exists")
        value = self._new_value(name, dtype, shape)
        self.inputs.append(value)
        return value

    def mark_output(self, value: Value) -> None:
        if value not in self.outputs:
            self.outputs.append(value)

    def add_node(self, layer_type: LayerType, inputs: Sequence[Value | None],
                 outputs: Sequence[tuple[str, DataType, Any]], params: dict[str, Any] | None = None,
                 name: str | None = None, before: Node | None = None, after: Node | None = None,
                 **attributes: Any) -> Node:
        """A new node reading `inputs` and producing fresh values (name, dtype, shape), placed at the end, or
        just before/after an existing node. `attributes`: precision, precision_is_set, epilogue, metadata."""
        node = Node(layer_type, self.fresh_name(name or LayerType(layer_type).value.lower(), "node"), params,
                    **attributes)
        for value in inputs:
            if value is not None:
                self._check_member(value, f"input of new node '{node.name}'")
        node.graph = self
        self._node_names.add(node.name)
        for position, value in enumerate(inputs):
            node._inputs.append(value)
            if value is not None:
                value.uses.append((node, position))
        for out_name, dtype, shape in outputs:
            value = self._new_value(out_name, dtype, shape)
            value.producer = node
            node._outputs.append(value)
        self._place(node, before, after)
        return node

    def _place(self, node: Node, before: Node | None, after: Node | None) -> None:
        if before is not None:
            self.nodes.insert(self._index(before), node)
        elif after is not None:
            self.nodes.insert(self._index(after) + 1, node)
        else:
            self.nodes.append(node)

    def _index(self, node: Node) -> int:
        try:
            return self.nodes.index(node)  # nodes compare by identity
        except ValueError:
            raise IRError(f"node '{node.name}' is not in graph '{self.name}'") from None

    def _check_member(self, value: Value, what: str) -> None:
        if self._values.get(value.name) is not value:
            raise IRError(f"{what}: value '{value.name}' does not belong to graph '{self.name}'")

    # ------------------------------------------------------------------ editing
    def set_input(self, node: Node, position: int, value: Value | None) -> None:
        """Make `node` read `value` at `position` (appending None placeholders for optional inputs)."""
        if value is not None:
            self._check_member(value, f"input {position} of '{node.name}'")
        while len(node._inputs) <= position:
            node._inputs.append(None)
        old = node._inputs[position]
        if old is not None:
            old.uses.remove((node, position))
        node._inputs[position] = value
        if value is not None:
            value.uses.append((node, position))

    def append_input(self, node: Node, value: Value) -> int:
        """Add `value` as the node's new last input; returns its position."""
        self.set_input(node, len(node._inputs), value)
        return len(node._inputs) - 1

    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        """Every reader of `old` (and the graph outputs) reads `new` instead, except the node producing `new`: a
        node inserted after `old` (a reformat, a scale) keeps reading it instead of reading itself."""
        self._check_member(new, f"replacing '{old.name}'")
        for node, position in list(old.uses):
            if node is not new.producer:
                self.set_input(node, position, new)
        self.outputs = [new if v is old else v for v in self.outputs]

    def replace_output(self, old: Value, new: Value) -> None:
        """`new` takes `old`'s place among the graph outputs; readers inside the graph keep `old`."""
        self._check_member(new, f"replacing graph output '{old.name}'")
        self.outputs = [new if v is old else v for v in self.outputs]

    def move_before(self, node: Node, anchor: Node) -> None:
        """Place an existing node just before `anchor` (e.g. a constant a rewrite made its reader depend on)."""
        self.nodes.pop(self._index(node))
        self.nodes.insert(self._index(anchor), node)

    def erase(self, node: Node) -> None:
        """Remove a node whose outputs nothing reads any more (graph outputs included)."""
        for value in node._outputs:
            if value.uses or value in self.outputs:
                readers = [n.name for n in value.consumers] + (["<graph output>"] if value in self.outputs else [])
                raise IRError(f"cannot erase '{node.name}': its output '{value.name}' is still read by {readers}")
        for position, value in enumerate(node._inputs):
            if value is not None:
                value.uses.remove((node, position))
        for value in node._outputs:
            del self._values[value.name]
            value.producer = None
        self.nodes.pop(self._index(node))
        self._node_names.discard(node.name)
        node.graph = None

    def take_over_output(self, host: Node, consumer: Node) -> None:
        """Fusion's common edit: `host` now also does `consumer`'s work, so its output takes over the consumer's
        output (its readers, graph-output role and name: the fused layer's output keeps the tensor name users and
        comparisons know) and the consumer goes."""
        old, new = host.outputs[0], consumer.outputs[0]
        self.replace_all_uses_with(new, old)
        name = new.name
        self.erase(consumer)
        self.rename(old, name)

    # ------------------------------------------------------------------ whole-graph maintenance
    def toposort(self) -> None:
        """Order nodes so each comes after the producers of its inputs, keeping the current order where it is
        already valid (stable Kahn). Raises IRError on a cycle."""
        position = {id(n): i for i, n in enumerate(self.nodes)}
        waiting = {id(n): len({id(v.producer) for v in n._inputs if v is not None and v.producer is not None})
                   for n in self.nodes}
        ready = [(position[id(n)], n) for n in self.nodes if waiting[id(n)] == 0]
        heapq.heapify(ready)
        ordered: list[Node] = []
        while ready:
            _, node = heapq.heappop(ready)
            ordered.append(node)
            for reader in {id(r): r for v in node._outputs for r, _ in v.uses}.values():
                waiting[id(reader)] -= 1
                if waiting[id(reader)] == 0:
                    heapq.heappush(ready, (position[id(reader)], reader))
        if len(ordered) != len(self.nodes):
            stuck = [n.name for n in self.nodes if waiting[id(n)] > 0]
            raise IRError(f"graph '{self.name}' has a cycle through {stuck[:10]}")
        self.nodes = ordered

    def cleanup(self) -> list[str]:
        """Remove nodes no graph output depends on; returns their names."""
        keep: set[int] = set()
        stack = [v.producer for v in self.outputs if v.producer is not None]
        while stack:  # by producer links, so it holds before toposort too
            node = stack.pop()
            if id(node) not in keep:
                keep.add(id(node))
                stack.extend(v.producer for v in node._inputs if v is not None and v.producer is not None)
        dead = [node for node in self.nodes if id(node) not in keep]
        for node in dead:
            for value in node._outputs:
                for reader, position in list(value.uses):
                    self.set_input(reader, position, None)
            self.erase(node)
        return [node.name for node in dead]

    def lint(self, check_order: bool = True) -> None:
        """Check the invariants every edit must keep; raises IRError listing what is broken. `check_order=False`
        skips execution order, which a rewrite may leave for `toposort` to restore."""
        problems: list[str] = []
        seen_nodes: set[str] = set()
        available: set[int] = {id(v) for v in self.inputs}
        for node in self.nodes:
            if node.graph is not self:
                problems.append(f"node '{node.name}' does not point back to this graph")
            if node.name in seen_nodes:
                problems.append(f"two nodes are named '{node.name}'")
            seen_nodes.add(node.name)
            for position, value in enumerate(node._inputs):
                if value is None:
                    continue
                if self._values.get(value.name) is not value:
                    problems.append(f"'{node.name}' input {position} '{value.name}' is not a value of this graph")
                if check_order and id(value) not in available:
                    problems.append(f"'{node.name}' reads '{value.name}' before it is produced")
                if (node, position) not in value.uses:
                    problems.append(f"'{value.name}' does not record its use by '{node.name}' input {position}")
            for value in node._outputs:
                if value.producer is not node:
                    problems.append(f"'{value.name}' does not name '{node.name}' as its producer")
                if self._values.get(value.name) is not value:
                    problems.append(f"'{node.name}' output '{value.name}' is not a value of this graph")
                available.add(id(value))
        if seen_nodes != self._node_names:
            problems.append(f"node name table is stale: {sorted(seen_nodes ^ self._node_names)[:10]}")
        for value in self._values.values():
            for reader, position in value.uses:
                if reader.graph is not self or position >= len(reader._inputs) or \
                        reader._inputs[position] is not value:
                    problems.append(f"'{value.name}' records a use by '{reader.name}' input {position} that is gone")
            if value.producer is None and value not in self.inputs:
                problems.append(f"'{value.name}' has no producer and is not a graph input")
        for value in self.outputs:
            if self._values.get(value.name) is not value:
                problems.append(f"graph output '{value.name}' is not a value of this graph")
        if problems:
            raise IRError(f"graph '{self.name}' is inconsistent: " + "; ".join(problems[:20]))

    def nodes_of(self, *types: LayerType) -> Iterable[Node]:
        """Nodes of these types, safe to iterate while the graph is edited (a snapshot)."""
        wanted = {LayerType(t) for t in types}
        return [node for node in self.nodes if node.type in wanted]
