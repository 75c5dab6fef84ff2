"""`debug reduce`: shrink a model that fails a check to a small subgraph that still fails.

A candidate is a set of nodes plus the tensors it outputs; `surgeon.extract` turns it into a standalone ONNX
model whose inputs are the float tensors flowing in (they get generated data). Integer and constant-only tensors
(shape arithmetic, masks, indices) never become inputs: the nodes computing them stay in, so a candidate keeps
meaningful shapes and indices. Three phases, each keeping the failure:
1. outputs, bisect: the smallest prefix of the (topologically sorted) nodes whose boundary tensors fail; then
   only the cone of its last node, when that alone still fails;
2. inputs, bisect: the latest start in that subgraph whose suffix still fails;
3. linear refinement: drop a last node (its float inputs become outputs) or a first node (its outputs become
   inputs) one at a time, while the result still fails.
Every smaller failing candidate is written to the output path at once, so an interruption leaves the best so far.

Cut points get real values: the original model runs once in onnxruntime on the real inputs (loaded, or seeded as
`polyx run` generates them), every tensor kept; before each check the candidate's inputs are written from those
values (`{inputs}` of a check command; the built-in check loads them), so a reduced model fails for the reason
the original did, not on random data.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from surgeon.errors import SurgeonError
from surgeon.extract import extract
from surgeon.graph_order import toposort_indices
from surgeon.model_io import save_model
from surgeon.shapes import infer_shapes
from surgeon.tensor_specs import TensorSpec

from ..data.files import save_tensors
from ..errors import PolyxError
from .checks import Verdict
from .journal import VerdictJournal

FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
# judge(candidate model, its path) -> True when the candidate fails the check, False when it passes, None when it
# cannot be judged (it does not run)
ModelJudge = Callable[[onnx.ModelProto, Path], "bool | None"]


@dataclass(frozen=True)
class Subgraph:
    nodes: frozenset[int]
    outputs: tuple[str, ...]


@dataclass
class ReduceResult:
    original_nodes: int = 0
    nodes: list[str] = field(default_factory=list)   # names (or op types) of the reduced model's nodes
    checks: int = 0
    skipped: int = 0            # candidates that could not be judged (did not run)
    written: bool = False
    interrupted: bool = False
    min_good_nodes: int | None = None   # node count of the passing model written to `min_good`, when one was


class CutPointValues:
    """Every tensor of a model as computed by onnxruntime from one set of input values."""

    def __init__(self, model: onnx.ModelProto, feeds: dict[str, np.ndarray]):
        from ..marking import mark_onnx_outputs
        from ..runners import OnnxrtRunner

        with OnnxrtRunner(mark_onnx_outputs(model, [], mark_all=True)) as runner:
            self.values = {**feeds, **runner.infer(feeds)}

    def write_inputs(self, candidate: onnx.ModelProto, path: Path) -> None:
        """The candidate's graph inputs, from the original run (a .npz for --load-inputs)."""
        initializers = {init.name for init in candidate.graph.initializer}
        names = [value.name for value in candidate.graph.input if value.name not in initializers]
        missing = [name for name in names if name not in self.values]
        if missing:
            raise PolyxError(f"no value for cut point '{missing[0]}' in the original model's run")
        save_tensors(path, [{name: self.values[name] for name in names}])


class ModelReducer:
    def __init__(self, model: onnx.ModelProto, output: Path, judge: ModelJudge, workdir: Path,
                 refine: bool = True, progress: Callable[..., None] | None = None, mode: str = "bisect",
                 reduce_inputs: bool = True, reduce_outputs: bool = True, min_good: Path | None = None,
                 cut_values: CutPointValues | None = None, inputs_path: Path | None = None,
                 journal: VerdictJournal | None = None):
        if mode not in ("bisect", "linear"):
            raise PolyxError(f"--mode must be bisect or linear, got '{mode}'")
        if not (reduce_inputs or reduce_outputs):
            raise PolyxError("--no-reduce-inputs and --no-reduce-outputs together leave nothing to reduce")
        self.model = infer_shapes(_sorted(model))
        self.output = Path(output)
        self.judge = judge
        self.candidate_path = Path(workdir) / "candidate.onnx"
        self.refine = refine or mode == "linear"
        self.mode = mode
        self.reduce_inputs = reduce_inputs
        self.reduce_outputs = reduce_outputs
        self.min_good = Path(min_good) if min_good is not None else None
        self.passing: list[tuple[Subgraph, int]] = []   # candidates that passed and their sizes, for --min-good
        self.cut_values = cut_values
        self.journal = journal
        self.inputs_path = Path(inputs_path) if inputs_path is not None else Path(workdir) / "candidate_inputs.npz"
        self.progress = progress or (lambda line, done=None, total=None: None)
        self.result = ReduceResult(original_nodes=len(self.model.graph.node))
        self.verdicts: dict[Subgraph, Subgraph | None] = {}
        self._index_graph()

    def run(self) -> ReduceResult:
        """The reduction; Ctrl-C stops it, leaving the smallest failing model so far at the output path."""
        try:
            self._run()
        except KeyboardInterrupt:
            self.result.interrupted = True
        self._save_min_good()
        return self.result

    def _save_min_good(self) -> None:
        """The passing candidate closest in size to the reduced model (Polygraphy's --min-good)."""
        if self.min_good is None or not self.passing or not self.result.written:
            return
        size = len(self.result.nodes)
        closest, _ = min(self.passing, key=lambda item: (abs(item[1] - size), -item[1]))
        model = self._extract(closest)
        save_model(model, self.min_good)
        self.result.min_good_nodes = len(model.graph.node)

    # ------------------------------------------------------------------ graph facts
    def _index_graph(self) -> None:
        graph = self.model.graph
        self.nodes = list(graph.node)
        self.initializers = {init.name for init in graph.initializer}
        self.producer = {out: i for i, node in enumerate(self.nodes) for out in node.output if out}
        self.elem_type = {info.name: info.type.tensor_type.elem_type
                          for info in [*graph.value_info, *graph.input, *graph.output]}
        graph_inputs = {i.name for i in graph.input if i.name not in self.initializers}
        self.data_dependent: set[str] = set(graph_inputs)  # tensors computed from a graph input
        for node in self.nodes:
            if any(name in self.data_dependent for name in node.input):
                self.data_dependent.update(out for out in node.output if out)

    def _is_input_candidate(self, tensor: str) -> bool:
        """A tensor may become a subgraph input when it carries float data that depends on the model's inputs."""
        return tensor in self.data_dependent and self.elem_type.get(tensor) in FLOAT_TYPES

    def _closure(self, nodes: set[int]) -> set[int]:
        """`nodes` plus whatever computes their non-float or constant-only inputs."""
        closed, work = set(nodes), list(nodes)
        while work:
            for name in self.nodes[work.pop()].input:
                producer = self.producer.get(name)
                if producer is not None and producer not in closed and not self._is_input_candidate(name):
                    closed.add(producer)
                    work.append(producer)
        return closed

    def _boundary_inputs(self, nodes: set[int]) -> list[str]:
        inputs = []
        for i in sorted(nodes):
            for name in self.nodes[i].input:
                if name and name not in self.initializers and self.producer.get(name) not in nodes \
                        and name not in inputs:
                    inputs.append(name)
        return inputs

    def _prefix(self, last: int) -> Subgraph:
        """Nodes 0..last; outputs: their float tensors that later nodes or the graph outputs read."""
        inside = set(range(last + 1))
        read_later = {name for node in self.nodes[last + 1:] for name in node.input}
        graph_outputs = {o.name for o in self.model.graph.output}
        outputs = [out for i in sorted(inside) for out in self.nodes[i].output
                   if out and (out in read_later or out in graph_outputs) and self.elem_type.get(out) in FLOAT_TYPES]
        return Subgraph(frozenset(inside), tuple(outputs))

    def _cone(self, outputs: tuple[str, ...]) -> Subgraph:
        """Every node the outputs depend on."""
        nodes, work = set(), [self.producer[o] for o in outputs if o in self.producer]
        while work:
            i = work.pop()
            if i not in nodes:
                nodes.add(i)
                work.extend(self.producer[name] for name in self.nodes[i].input if name in self.producer)
        return Subgraph(frozenset(nodes), outputs)

    # ------------------------------------------------------------------ search
    def _run(self) -> None:
        everything = Subgraph(frozenset(range(len(self.nodes))), tuple(o.name for o in self.model.graph.output))
        current = self._fails(everything, "the whole model", 0)
        if current is None and self.result.skipped:
            raise PolyxError("the check cannot judge the whole model (it does not run or the check exited 2), so "
                             "there is nothing to reduce")
        if current is None:
            raise PolyxError("the model passes the check, so there is nothing to reduce")
        if self.mode == "bisect" and self.reduce_outputs:
            current = self._reduce_outputs(current)
        if self.mode == "bisect" and self.reduce_inputs:
            current = self._reduce_inputs(current)
        if self.refine:
            self._refine(current)

    def _reduce_outputs(self, current: Subgraph) -> Subgraph:
        low, high = 0, len(self.nodes) - 1
        while low < high:
            middle = (low + high) // 2
            failing = self._fails(self._prefix(middle), f"outputs after node {middle + 1} of {len(self.nodes)}",
                                  _bisect_steps(high - low) + 1)
            if failing is not None:
                current, high = failing, middle
            else:
                low = middle + 1
        cone = self._fails(self._cone(tuple(out for out in self.nodes[high].output if out)),
                           f"only what node '{self._name(high)}' depends on", 0)
        return cone or current

    def _reduce_inputs(self, current: Subgraph) -> Subgraph:
        order = sorted(current.nodes)
        low, high = 0, len(order) - 1
        while low < high:
            middle = (low + high + 1) // 2
            failing = self._fails(Subgraph(frozenset(order[middle:]), current.outputs),
                                  f"inputs from node {middle + 1} of {len(order)} on", _bisect_steps(high - low))
            if failing is not None:
                current, low = failing, middle
            else:
                high = middle - 1
        return current

    def _refine(self, current: Subgraph) -> None:
        changed = True
        while changed and len(current.nodes) > 1:
            changed = False
            candidates = list(self._one_node_less(current))
            for position, (smaller, description) in enumerate(candidates):
                failing = self._fails(smaller, description, len(candidates) - position)
                if failing is not None and len(failing.nodes) < len(current.nodes):
                    current, changed = failing, True
                    break

    def _one_node_less(self, current: Subgraph) -> Iterator[tuple[Subgraph, str]]:
        nodes = set(current.nodes)
        read_inside = {name for i in nodes for name in self.nodes[i].input}
        for i in sorted(nodes, reverse=True):
            outputs = [o for o in self.nodes[i].output if o]
            if self.reduce_outputs and not any(o in read_inside for o in outputs):
                # a last node: its float inputs become outputs
                new_outputs = [o for o in current.outputs if o not in outputs]
                new_outputs += [name for name in self.nodes[i].input if self.producer.get(name) in nodes
                                and self._is_input_candidate(name) and name not in new_outputs]
                if new_outputs:
                    yield Subgraph(frozenset(nodes - {i}), tuple(new_outputs)), f"without last node '{self._name(i)}'"
        for i in sorted(nodes) if self.reduce_inputs else ():
            if all(self.producer.get(name) not in nodes for name in self.nodes[i].input) and \
                    not set(self.nodes[i].output) & set(current.outputs):
                yield Subgraph(frozenset(nodes - {i}), current.outputs), f"without first node '{self._name(i)}'"

    def _fails(self, candidate: Subgraph, description: str, phase_left: int) -> Subgraph | None:
        """The candidate as extracted (unused nodes pruned) when it fails the check, else None. `phase_left`:
        the most checks this phase may still take, counting this one (for the progress line)."""
        nodes = self._closure(set(candidate.nodes))
        outputs = tuple(o for o in candidate.outputs if self.producer.get(o) in nodes)
        if not outputs:
            return None
        key = Subgraph(frozenset(nodes), outputs)
        if key not in self.verdicts:
            self.verdicts[key] = self._judge(key, description, phase_left)
        return self.verdicts[key]

    def _judge(self, candidate: Subgraph, description: str, phase_left: int) -> Subgraph | None:
        try:
            model = self._extract(candidate)
        except SurgeonError:
            self.result.skipped += 1
            return None
        key = [sorted(candidate.nodes), list(candidate.outputs)]
        recorded = self.journal.get(key) if self.journal is not None else None
        if recorded is not None:
            verdict = None if recorded.unusable else not recorded.passed
            description += " (verdict from the --resume journal)"
        else:
            save_model(model, self.candidate_path)
            if self.cut_values is not None:
                self.cut_values.write_inputs(model, self.inputs_path)
            verdict = self.judge(model, self.candidate_path)
            if self.journal is not None:
                self.journal.record(key, Verdict(verdict is False, {True: "fails", False: "passes",
                                                                    None: "cannot run"}[verdict],
                                                 unusable=verdict is None))
        self.result.checks += 1
        size = len(model.graph.node)
        outcome = {True: "fails", False: "passes", None: "cannot run (skipped)"}[verdict]
        bound = f" of <= {self.result.checks + phase_left - 1} in this phase" if phase_left > 1 else ""
        self.progress(f"check {self.result.checks}{bound}: {description} ({size} nodes) -> {outcome}",
                      done=self.result.checks, total=None)  # the phases' bounds do not add up to a whole-run bound
        if verdict is None:
            self.result.skipped += 1
        if verdict is False and self.min_good is not None:
            self.passing.append((candidate, size))
        if not verdict:
            return None
        if not self.result.written or size <= len(self.result.nodes):
            save_model(model, self.output)
            self.result.written = True
            self.result.nodes = [node.name or node.op_type for node in model.graph.node]
        kept = {self.producer[out] for node in model.graph.node for out in node.output if out in self.producer}
        return Subgraph(frozenset(kept), candidate.outputs)

    def _extract(self, candidate: Subgraph) -> onnx.ModelProto:
        return extract(self.model, [TensorSpec(name) for name in self._boundary_inputs(set(candidate.nodes))],
                       [TensorSpec(name) for name in candidate.outputs])

    def _name(self, index: int) -> str:
        node = self.nodes[index]
        return node.name or f"{node.op_type}#{index}"


def identity_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A trivially good candidate: the model's inputs copied to outputs by Identity nodes (a check that fails on
    it the same way as on the original does not look at the model)."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in initializers]
    outputs = []
    for value in inputs:
        output = onnx.ValueInfoProto()
        output.CopyFrom(value)
        output.name = f"{value.name}_copy"
        outputs.append(output)
    nodes = [onnx.helper.make_node("Identity", [value.name], [f"{value.name}_copy"], name=f"copy_{value.name}")
             for value in inputs]
    graph = onnx.helper.make_graph(nodes, "identity", inputs, outputs)
    return onnx.helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def _bisect_steps(span: int) -> int:
    """Checks a bisection over span + 1 positions may take."""
    return max(1, math.ceil(math.log2(span + 1)))


def _sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    order, cyclic = toposort_indices(model.graph)
    if cyclic:
        raise PolyxError("the model graph has a cycle; it cannot be reduced")
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(model.graph.node[i] for i in order)
    return result
