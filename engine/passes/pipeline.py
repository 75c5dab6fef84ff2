"""The builder's pass pipeline: the passes in order, dead nodes removed and order restored after each change.

Dead-node elimination is graph maintenance (`Graph.cleanup`), run after every pass and reported under one key.
With `lint=True` (tests, BuilderFlag.DEBUG, env POLYX_LINT_IR=1) the graph's invariants are checked after each
pass, and a broken one names the pass that broke it.
"""
from __future__ import annotations

from ..ir import Graph, IRError
from ..logger import Severity
from .base import Pass, PassContext
from .common_subexpressions import CommonSubexpressionElimination
from .eliminate import NoopElimination
from .fold import ConstantFolding
from .fold_conditionals import FoldConstantConditions
from .fusion_rules import FusionPass
from .implicit_quantization import ImplicitQuantization
from .int8_constraints import Int8PrecisionConstraints
from .pointwise_fusion import PointwiseFusion
from .precision import PrecisionAssignment
from .tensor_formats import ChannelsLastFormats

DEAD_NODES = "dead_layer_elimination"


def default_passes() -> list[Pass]:
    return [ConstantFolding(keep_quantized_weights=True), FoldConstantConditions(), NoopElimination(), FusionPass(),
            ImplicitQuantization(), FusionPass(), ConstantFolding(), CommonSubexpressionElimination(),
            Int8PrecisionConstraints(), PrecisionAssignment(), PointwiseFusion(), ChannelsLastFormats()]


class PassPipeline:
    def __init__(self, passes: list[Pass] | None = None):
        self.passes = default_passes() if passes is None else passes
        done: set[str] = set()
        for p in self.passes:
            missing = [name for name in p.requires if name not in done]
            if missing:
                raise ValueError(f"pass '{p.name}' requires {missing} to run before it")
            done.add(p.name)

    def run(self, graph: Graph, ctx: PassContext, lint: bool = False) -> dict[str, int]:
        """Run every pass once, in order; returns {summary key: count} for the build summary."""
        report: dict[str, list[str]] = {DEAD_NODES: []}
        if lint:
            _lint(graph, "lowering")
        for p in self.passes:
            changes = p.run(graph, ctx)
            for key, names in changes.items():
                report.setdefault(key, []).extend(names)
            if lint:  # before the maintenance below, which trusts the links a broken pass may have left
                _lint(graph, p.name, check_order=False)
            report[DEAD_NODES] += graph.cleanup()
            if any(changes.values()):
                graph.toposort()
            if lint:
                _lint(graph, p.name)
        counts = {}
        for key, names in report.items():
            counts[key] = len(names)
            ctx.log(Severity.INFO if names else Severity.VERBOSE, f"pass {key}: {len(names)}")
            if names:
                ctx.log(Severity.VERBOSE, f"pass {key}: " + ", ".join(names[:50]) + (" ..." if len(names) > 50 else ""))
        return counts


def _lint(graph: Graph, after: str, check_order: bool = True) -> None:
    try:
        graph.lint(check_order)
    except IRError as exc:
        raise IRError(f"after pass '{after}': {exc}") from None
