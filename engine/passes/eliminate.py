"""No-op elimination: nodes that do nothing are bypassed (dead nodes go in the pipeline's `Graph.cleanup`)."""
from __future__ import annotations

from ..enums import LayerType
from ..ir import Graph, Node
from .base import Pass, PassContext


def is_noop(node: Node) -> bool:
    """Identity, a same-type (and same-format) Cast or Reformat, a Shuffle that keeps a static shape and permutes
    nothing."""
    source, result = node.inputs[0], node.outputs[0]
    if node.type in (LayerType.IDENTITY, LayerType.CAST, LayerType.REFORMAT):
        return source.dtype == result.dtype and source.format == result.format
    if node.type == LayerType.SHUFFLE:
        identity = list(range(len(source.shape or ())))
        no_permutation = all(node.params.get(k) in (None, identity) for k in ("first_transpose", "second_transpose"))
        return source.static and source.shape == result.shape and no_permutation
    return False


class NoopElimination(Pass):
    """A node whose output the user marked is kept: marked tensors stay observable by name."""

    name = "noop_elimination"
    requires = ("constant_folding",)

    def run(self, graph: Graph, ctx: PassContext) -> dict[str, list[str]]:
        removed = []
        for node in graph.nodes_of(LayerType.IDENTITY, LayerType.CAST, LayerType.REFORMAT, LayerType.SHUFFLE):
            if not node.inputs or node.inputs[0] is None or node.outputs[0] in graph.outputs or not is_noop(node):
                continue
            graph.replace_all_uses_with(node.outputs[0], node.inputs[0])
            removed.append(node.name)
            graph.erase(node)
        return {self.name: removed}
