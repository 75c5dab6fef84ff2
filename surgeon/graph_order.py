"""Topological order and cycle detection on an ONNX GraphProto (name-based, before any surgery)."""
from __future__ import annotations

import heapq
from collections import defaultdict

import onnx


def _producers(graph: onnx.GraphProto) -> dict[str, int]:
    return {out: index for index, node in enumerate(graph.node) for out in node.output if out}


def _dependencies(graph: onnx.GraphProto) -> list[set[int]]:
    producer = _producers(graph)
    deps: list[set[int]] = []
    for index, node in enumerate(graph.node):
        deps.append({producer[name] for name in node_reads(node) if name in producer and producer[name] != index})
    return deps


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Inputs, plus outer-scope names read inside If/Loop/Scan bodies (they are data dependencies too)."""
    names = [name for name in node.input if name]
    for attr in node.attribute:
        for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
            local = {i.name for i in sub.input} | {i.name for i in sub.initializer}
            local |= {o for n in sub.node for o in n.output}
            names.extend(name for n in sub.node for name in node_reads(n) if name not in local)
    return names


def toposort_indices(graph: onnx.GraphProto) -> tuple[list[int], list[int]]:
    """(sorted node indices, indices left over because they sit on or behind a cycle).

    The smallest ready index goes first, so an already sorted graph keeps its order.
    """
    deps = _dependencies(graph)
    users: dict[int, list[int]] = defaultdict(list)
    pending = [len(d) for d in deps]
    for index, dep in enumerate(deps):
        for d in dep:
            users[d].append(index)
    ready = [i for i, count in enumerate(pending) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users[index]:
            pending[user] -= 1
            if pending[user] == 0:
                heapq.heappush(ready, user)
    placed = set(order)
    return order, [i for i in range(len(deps)) if i not in placed]


def toposorted_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    order, _ = toposort_indices(graph)
    return [graph.node[i] for i in order]


def is_topologically_sorted(graph: onnx.GraphProto) -> bool:
    return all(d < index for index, dep in enumerate(_dependencies(graph)) for d in dep)


def find_cycle(graph: onnx.GraphProto) -> list[str]:
    """Names of the nodes on one cycle (empty when the graph is acyclic)."""
    _, left = toposort_indices(graph)
    if not left:
        return []
    deps = _dependencies(graph)
    remaining = set(left)
    # Walk dependencies inside the unsortable set until a node repeats: that walk closes a cycle.
    path: list[int] = []
    seen: dict[int, int] = {}
    node = left[0]
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in sorted(deps[node]) if d in remaining)
    cycle = path[seen[node]:]
    return [graph.node[i].name or f"{graph.node[i].op_type}_{i}" for i in reversed(cycle)]
