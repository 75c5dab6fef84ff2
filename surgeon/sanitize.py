"""`sanitize`: constant folding to a fixed point, simplification, cleanup, topological sort, shape inference.

Folding evaluates constant subgraphs with onnx-graphsurgeon (which runs them in onnxruntime). Shape arithmetic
(`Shape → Gather → Unsqueeze → Concat → Reshape`, `ConstantOfShape`/`Expand`/`Where` chains) only becomes
constant once the dims it reads are known, so every pass re-runs shape inference first; passes repeat until
the graph stops changing.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx
import onnx_graphsurgeon as gs

from .errors import SurgeonError
from .graph_tools import export_model, import_graph, toposort
from .shapes import infer_shapes, override_input_shapes
from .simplify import rewrite_names, simplify


@dataclass
class SanitizeOptions:
    fold_constants: bool = False
    num_passes: int | None = None  # None: until nothing changes
    fold_shapes: bool = True
    size_threshold: int | None = None  # bytes; larger folded tensors are left computed
    simplify: bool = True  # applies with fold_constants
    skip: frozenset[str] = frozenset()  # names of simplify rewrites not to run (simplify.REWRITES)
    cleanup: bool = False
    toposort: bool = False
    infer_shapes: bool = False
    input_shapes: Mapping[str, Sequence[int | str | None]] = field(default_factory=dict)


@dataclass
class PassResult:
    nodes_before: int
    nodes_after: int
    simplified: Counter


@dataclass
class SanitizeReport:
    nodes_before: int
    initializers_before: int
    nodes_after: int = 0
    initializers_after: int = 0
    passes: list[PassResult] = field(default_factory=list)
    removed_ops: Counter = field(default_factory=Counter)  # op type → how many nodes of it are gone

    @property
    def rewrites(self) -> Counter:
        """How many times each simplify rewrite ran, over all passes (rewrite name → count)."""
        return sum((result.simplified for result in self.passes), Counter())

    def lines(self) -> list[str]:
        out = [f"nodes: {self.nodes_before} -> {self.nodes_after}",
               f"initializers: {self.initializers_before} -> {self.initializers_after}"]
        for index, result in enumerate(self.passes, 1):
            extra = ", ".join(f"{n} {kind}" for kind, n in sorted(result.simplified.items()))
            out.append(f"pass {index}: {result.nodes_before} -> {result.nodes_after} nodes"
                       + (f" ({extra})" if extra else ""))
        if self.rewrites:
            out.append("rewrites: " + ", ".join(f"{name} x{n}" for name, n in sorted(self.rewrites.items())))
        if self.removed_ops:
            out.append("removed: " + ", ".join(f"{op} x{n}" for op, n in self.removed_ops.most_common()))
        return out


def sanitize(model: onnx.ModelProto, options: SanitizeOptions) -> tuple[onnx.ModelProto, SanitizeReport]:
    """Return the sanitized model (the input proto may be modified) and what changed."""
    unknown = sorted(set(options.skip) - set(rewrite_names()))
    if unknown:
        raise SurgeonError(f"--skip: no rewrite named {', '.join(map(repr, unknown))} "
                           f"(rewrites: {', '.join(rewrite_names())})")
    report = SanitizeReport(len(model.graph.node), _initializer_count(model))
    ops_before = Counter(n.op_type for n in model.graph.node)
    if options.input_shapes:
        override_input_shapes(model, options.input_shapes)
    needs_shapes = options.fold_constants or options.infer_shapes or bool(options.input_shapes)
    graph = import_graph(infer_shapes(model) if needs_shapes else model)
    if options.fold_constants:
        graph = _fold_until_stable(graph, model, options, report)
    if options.cleanup:
        graph.cleanup(remove_unused_graph_inputs=False)
    if options.toposort or options.fold_constants:
        toposort(graph)
    result = export_model(graph, model)
    if options.infer_shapes:
        infer_shapes(result)
    report.nodes_after = len(result.graph.node)
    report.initializers_after = _initializer_count(result)
    report.removed_ops = ops_before - Counter(n.op_type for n in result.graph.node)
    return result, report


def _fold_until_stable(graph: gs.Graph, original: onnx.ModelProto, options: SanitizeOptions,
                       report: SanitizeReport) -> gs.Graph:
    with _quiet_onnxruntime():
        while options.num_passes is None or len(report.passes) < options.num_passes:
            before = _signature(graph)
            graph.fold_constants(fold_shapes=options.fold_shapes, size_threshold=options.size_threshold,
                                 error_ok=True)
            graph.cleanup(remove_unused_graph_inputs=False)
            done = Counter()
            if options.simplify:
                # Without fold_shapes, shape computations stay computed: symbolic shape folding is off too.
                skip = options.skip if options.fold_shapes else options.skip | {"shape-arithmetic"}
                done = simplify(graph, skip)
            report.passes.append(PassResult(before[0], len(graph.nodes), done))
            graph = import_graph(infer_shapes(export_model(graph, original)))
            if _signature(graph) == before:
                break
    return graph


def _signature(graph: gs.Graph) -> tuple:
    return len(graph.nodes), tuple(sorted(Counter(n.op for n in graph.nodes).items())), len(graph.tensors())


def _initializer_count(model: onnx.ModelProto) -> int:
    return len(model.graph.initializer)


@contextlib.contextmanager
def _quiet_onnxruntime():
    """onnxruntime prints optimizer warnings for every folded subgraph; they are noise here."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    try:
        yield
    finally:
        onnxruntime.set_default_logger_severity(2)
