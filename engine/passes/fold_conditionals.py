"""Constant conditions: a conditional whose condition is known at build time becomes the layers of the branch
that runs.

The branch's nodes are copied into the graph just before the conditional, reading what the conditional read
(branch input k is the conditional's input k + 1); the conditional's readers then read the copied branch
outputs, and the conditional, now unread, goes. An output that was a graph output keeps its name (through an
identity node when the branch passes an input straight through), so the engine's IO names do not change. The
copied layers then take part in the later folding and fusion passes like any other.
"""
from __future__ import annotations

import numpy as np

from ..enums import LayerType
from ..ir import Graph, Node, Value
from ..subgraph import SUBGRAPHS, forget_lowered
from .base import Pass, PassContext
from .fold import ConstantFolding


class FoldConstantConditions(Pass):
    """Also inside subgraphs (a constant If in a Loop body), after folding the subgraph's constants."""

    name = "constant_conditions_folded"
    requires = ("constant_folding",)

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        folded = []
        for node in graph.nodes_of(LayerType.CONDITIONAL, LayerType.LOOP):
            for sub in node.params[SUBGRAPHS].values():
                if isinstance(sub, Graph):
                    folded += [f"{node.name}/{name}" for name in self._run_inside(sub, ctx)]
        for node in graph.nodes_of(LayerType.CONDITIONAL):
            condition = node.inputs[0].constant if node.inputs and node.inputs[0] is not None else None
            if condition is None or np.size(condition) != 1:
                continue
            branch = node.params[SUBGRAPHS]["then" if bool(np.asarray(condition).reshape(-1)[0]) else "else"]
            if not isinstance(branch, Graph):
                continue  # only the builder's own graphs are inlined
            _inline_branch(graph, node, branch)
            folded.append(node.name)
        return {self.name: folded}


    def _run_inside(self, sub: Graph, ctx: PassContext) -> list[str]:
        """Fold a subgraph's constants, then its constant conditions; the subgraph's lowered form is recomputed."""
        changed = any(ConstantFolding().run(sub, ctx).values())
        folded = self.run(sub, ctx)[self.name]
        if changed or folded:
            sub.cleanup()
            sub.toposort()
            forget_lowered(sub)
        return folded


def _inline_branch(graph: Graph, node: Node, branch: Graph) -> None:
    mapping: dict[int, Value | None] = {id(v): outer for v, outer in zip(branch.inputs, node.inputs[1:])}
    for inner in branch.nodes:
        copy = graph.add_node(inner.type, [None if v is None else mapping[id(v)] for v in inner.inputs],
                              [(v.name, v.dtype, v.shape) for v in inner.outputs], dict(inner.params),
                              name=f"{node.name}/{inner.name}", before=node, precision=inner.precision,
                              precision_is_set=inner.precision_is_set, epilogue=inner.epilogue,
                              metadata={**inner.metadata, "folded_from": [node.name]},
                              output_types=dict(inner.output_types))
        for value, copied in zip(inner.outputs, copy.outputs):
            mapping[id(value)] = copied
    renames = []
    for old, inner in zip(node.outputs, branch.outputs):
        new = mapping[id(inner)]
        if old in graph.outputs:  # keep the graph output's name: a value of its own, renamed once `old` is gone
            new = graph.add_node(LayerType.IDENTITY, [new], [(old.name, old.dtype, old.shape)],
                                 name=f"{node.name}/output", before=node,
                                 metadata={"folded_from": [node.name]}).outputs[0]
            renames.append((new, old.name))
        graph.replace_all_uses_with(old, new)
    graph.erase(node)
    for value, name in renames:
        graph.rename(value, name)
