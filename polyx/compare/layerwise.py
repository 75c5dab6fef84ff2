"""Per-layer analysis of a `--mark-all` comparison: walk the graph in topological order, find the first tensor
whose error exceeds tolerance, show its inputs' errors (inherited or created there?) and rank the worst tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import onnx

from .comparator import TensorComparison

# Inputs that need no comparison: the same data reaches both sides.
KNOWN_GOOD = ("model input (same data on both sides)", "weights/constant")


@dataclass
class GraphNode:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]


@dataclass
class TensorVerdict:
    """One tensor, aggregated over iterations (worst values, passed only if every iteration passed)."""

    name: str
    index: int
    node: str
    op: str
    passed: bool
    max_absolute: float
    max_relative: float
    min_atol: float
    min_rtol: float
    atol: float
    rtol: float
    problem: str = ""
    min_cosine: float = math.nan   # the worst (lowest) cosine similarity over the iterations
    min_psnr: float = math.nan     # the worst (lowest) PSNR in dB over the iterations

    @property
    def tolerance_excess(self) -> float:
        """How many times larger a tolerance would have to be to pass (<= 1 passes); ranks the worst tensors."""
        if self.problem:
            return math.inf
        return min(_ratio(self.min_atol, self.atol), _ratio(self.min_rtol, self.rtol))


@dataclass
class InputError:
    name: str
    verdict: TensorVerdict | None
    note: str


@dataclass
class LayerwiseReport:
    tensors: list[TensorVerdict]
    first_divergence: TensorVerdict | None = None
    divergence_inputs: list[InputError] = field(default_factory=list)
    engine_layers: list[str] = field(default_factory=list)
    worst: list[TensorVerdict] = field(default_factory=list)

    @property
    def compared_count(self) -> int:
        return len(self.tensors)

    @property
    def failed_count(self) -> int:
        return sum(not t.passed for t in self.tensors)

    @property
    def error_created_at_divergence(self) -> bool:
        """True when every input of the first diverging node was compared (or is a model input/constant) and passed."""
        return self.first_divergence is not None and all(
            i.verdict.passed if i.verdict is not None else i.note in KNOWN_GOOD for i in self.divergence_inputs)


def nodes_from_onnx(model: onnx.ModelProto) -> list[GraphNode]:
    """ONNX nodes in file order, which the ONNX spec requires to be topological; unnamed nodes are named as the
    engine's parser names them (OP_index)."""
    return [GraphNode(node.name or f"{node.op_type}_{index}", node.op_type, [i for i in node.input if i],
                      [o for o in node.output if o]) for index, node in enumerate(model.graph.node)]


def nodes_from_engine(engine: Any) -> list[GraphNode]:
    """Engine layers in execution order (for plans run without their ONNX model)."""
    return [GraphNode(row["name"], row["type"], [i for i in row["inputs"] if i], row["outputs"])
            for row in engine.layer_info()]


def analyze_layers(nodes: list[GraphNode], comparisons: list[TensorComparison], worst_count: int = 10,
                   graph_inputs: set[str] | None = None, constants: set[str] | None = None,
                   engine_layers: list[dict[str, Any]] | None = None,
                   inside: dict[str, str] | None = None) -> LayerwiseReport:
    """`inside`: why an uncompared tensor has no value of its own (inside a fused engine layer, removed)."""
    by_name: dict[str, list[TensorComparison]] = {}
    for comparison in comparisons:
        by_name.setdefault(comparison.name, []).append(comparison)
    producers = {output: node for node in nodes for output in node.outputs}
    order = [output for node in nodes for output in node.outputs if output in by_name]
    order += [name for name in by_name if name not in producers]
    verdicts = {}
    for index, name in enumerate(order):
        node = producers.get(name)
        verdicts[name] = _aggregate(name, index, node, by_name[name])
    report = LayerwiseReport(tensors=[verdicts[name] for name in order])
    report.worst = sorted(report.tensors, key=lambda t: (-t.tolerance_excess, -t.max_absolute))[:worst_count]
    first = next((t for t in report.tensors if not t.passed), None)
    if first is None:
        return report
    report.first_divergence = first
    node = producers.get(first.name)
    for name in node.inputs if node is not None else []:
        if name in verdicts:
            report.divergence_inputs.append(InputError(name, verdicts[name], "compared"))
        elif name in (graph_inputs or set()):
            report.divergence_inputs.append(InputError(name, None, "model input (same data on both sides)"))
        elif name in (constants or set()):
            report.divergence_inputs.append(InputError(name, None, "weights/constant"))
        elif name in (inside or {}):
            report.divergence_inputs.append(InputError(name, None, inside[name]))
        else:
            report.divergence_inputs.append(InputError(name, None, "not compared"))
    if node is not None and engine_layers:
        report.engine_layers = [f"{row['name']} ({row['type']}, tactic {row['tactic']})" for row in engine_layers
                                if row["name"] == node.name or row["name"].startswith(node.name + "/")
                                or node.name in row.get("fused_from", [])]
    return report


def _aggregate(name: str, index: int, node: GraphNode | None, comparisons: list[TensorComparison]) -> TensorVerdict:
    problems = [c.problem for c in comparisons if c.problem]
    return TensorVerdict(name=name, index=index, node=node.name if node else "", op=node.op if node else "",
                         passed=all(c.passed for c in comparisons),
                         max_absolute=max(c.max_absolute for c in comparisons),
                         max_relative=max(c.max_relative for c in comparisons),
                         min_atol=max(c.min_atol for c in comparisons), min_rtol=max(c.min_rtol for c in comparisons),
                         atol=comparisons[0].atol, rtol=comparisons[0].rtol, problem=problems[0] if problems else "",
                         min_cosine=_lowest(c.cosine_similarity for c in comparisons),
                         min_psnr=_lowest(c.psnr for c in comparisons))


def _lowest(values) -> float:
    """The smallest of the values that are not NaN (NaN when all are)."""
    known = [v for v in values if not math.isnan(v)]
    return min(known) if known else math.nan


def _ratio(needed: float, given: float) -> float:
    if needed == 0:
        return 0.0
    return math.inf if given == 0 else needed / given
