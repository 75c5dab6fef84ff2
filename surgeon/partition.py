"""Engine capability: which nodes the engine can take (and why not), and the graph cut into maximal supported and
unsupported subgraphs that respect data dependencies, each a standalone, checker-valid ONNX model.

Per-node support comes from the engine's own ONNX parser. The parser skips nodes downstream of a failed node
silently, so support is found by repetition: parse, drop the failed nodes (their outputs become typed graph
inputs, exactly as they will be at a partition boundary), parse again, until no new node fails. A node whose
import needs a value (a Reshape's shape, say) computed by an unsupported node therefore fails as it would in its
partition. Finally every supported subgraph is parsed on its own and, when its input shapes are static, built;
nodes that fail there are marked unsupported and the graph is partitioned again.

A node is judged for what it is, not for what is unknown about its input: when an unsupported node's output has
no inferred type (a custom op without shape inference), the boundary is given an assumed type (element type and
rank that its readers' ONNX schemas accept, every dim dynamic), types are inferred again past it, and the report
says what was missing and what was assumed. Only when no reader constrains the rank are the readers marked
unsupported ("type unknown").
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import defs, helper
from onnx import shape_inference as onnx_shape_inference

from engine.errors import OutputFileError
from engine.onnx_file import model_files
from engine.output_files import check_output, write_output

from .errors import SurgeonError
from .graph_order import node_reads, toposorted_nodes
from .model_io import save_model
from .shapes import infer_shapes, value_types


@dataclass(frozen=True)
class NodeVerdict:
    """The engine's answer for one node; `category` and `reason` are None for supported nodes."""

    index: int
    name: str
    op: str
    supported: bool
    category: str | None = None
    reason: str | None = None


@dataclass
class Subgraph:
    """A maximal group of nodes of one kind; `node_indices` index the topologically sorted model."""

    supported: bool
    node_indices: list[int]
    inputs: list[str]
    outputs: list[str]
    model: onnx.ModelProto = field(repr=False)

    @property
    def file_name(self) -> str:
        kind = "supported" if self.supported else "unsupported"
        return f"{kind}_subgraph-nodes-{min(self.node_indices)}-{max(self.node_indices)}.onnx"


@dataclass
class CapabilityReport:
    source: str
    verdicts: list[NodeVerdict]
    subgraphs: list[Subgraph]  # in an order that can execute: every input is a model input or an earlier output
    # boundary tensor → what shape information was missing and the type written for it instead
    assumed_types: dict[str, str] = field(default_factory=dict)

    @property
    def fully_supported(self) -> bool:
        return all(v.supported for v in self.verdicts)

    @property
    def unsupported(self) -> list[NodeVerdict]:
        return [v for v in self.verdicts if not v.supported]

    def to_json(self) -> dict:
        return {
            "model": self.source,
            "num_nodes": len(self.verdicts),
            "num_supported": len(self.verdicts) - len(self.unsupported),
            "fully_supported": self.fully_supported,
            "unsupported_nodes": [{"index": v.index, "name": v.name, "op": v.op, "category": v.category,
                                   "reason": v.reason} for v in self.unsupported],
            "subgraphs": [{"file": s.file_name, "supported": s.supported, "num_nodes": len(s.node_indices),
                           "nodes": [self.verdicts[i].name for i in s.node_indices], "inputs": s.inputs,
                           "outputs": s.outputs} for s in self.subgraphs],
            "assumed_types": [{"tensor": name, "note": note} for name, note in self.assumed_types.items()],
        }

    def to_text(self) -> str:
        lines = [f"model: {self.source}",
                 f"nodes: {len(self.verdicts)} total, {len(self.verdicts) - len(self.unsupported)} supported, "
                 f"{len(self.unsupported)} unsupported"]
        if self.unsupported:
            lines.append("unsupported nodes:")
            lines += [f"  [{v.index}] {v.name} ({v.op}): {v.category}: {v.reason}" for v in self.unsupported]
        if self.assumed_types:
            lines.append("missing shape information (the boundary is written as a dynamic input):")
            lines += [f"  {name}: {note}" for name, note in self.assumed_types.items()]
        if self.subgraphs:
            lines.append("subgraphs, in execution order:")
            for sub in self.subgraphs:
                lines.append(f"  {sub.file_name}: {len(sub.node_indices)} nodes; inputs: {', '.join(sub.inputs)}; "
                             f"outputs: {', '.join(sub.outputs)}")
        return "\n".join(lines)


def analyze_capability(model: onnx.ModelProto, source: str = "<model>", verify_build: bool = True
                       ) -> CapabilityReport:
    """Per-node engine support and the supported/unsupported partition of `model`."""
    model = prepare_model(model)
    assumed: dict[str, str] = {}
    verdicts = node_support(model, assumed)
    if all(v.supported for v in verdicts):
        return CapabilityReport(source, verdicts, [], assumed)
    while True:
        subgraphs = partition(model, verdicts)
        failed = _verify_supported(model, subgraphs, verify_build)
        if not failed:
            return CapabilityReport(source, verdicts, subgraphs, assumed)
        for index, (category, reason) in failed.items():
            old = verdicts[index]
            verdicts[index] = NodeVerdict(old.index, old.name, old.op, False, category, reason)


def prepare_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A sorted copy with inferred types in which every node has a unique name (errors are matched by name)."""
    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    nodes = toposorted_nodes(prepared.graph)
    if len(nodes) != len(prepared.graph.node):
        raise SurgeonError("the graph has a cycle; capability needs an acyclic graph")
    taken: set[str] = set()
    for index, node in enumerate(nodes):
        name = node.name or f"{node.op_type}_{index}"
        while name in taken:
            name = f"{name}_{index}"
        node.name = name
        taken.add(name)
    sorted_nodes = [onnx.NodeProto() for _ in nodes]
    for target, node in zip(sorted_nodes, nodes):
        target.CopyFrom(node)
    del prepared.graph.node[:]
    prepared.graph.node.extend(sorted_nodes)
    return infer_shapes(prepared)


def node_support(model: onnx.ModelProto, assumed: dict[str, str] | None = None) -> list[NodeVerdict]:
    """Verdict per node of a prepared model (see `prepare_model`), by repeated parsing (module docstring).

    Untyped boundaries get an assumed type stored in `model`'s value_info; `assumed` receives a note for each."""
    graph = model.graph
    assumed = {} if assumed is None else assumed
    types = value_types(model)
    index_of = {node.name: i for i, node in enumerate(graph.node)}
    readers = _readers(model)
    failures: dict[int, tuple[str, str]] = {}
    while True:
        kept = [i for i in range(len(graph.node)) if i not in failures]
        if not kept:  # every node failed: nothing is left to parse
            break
        if _assume_boundary_types(model, kept, failures, types, assumed):
            types = value_types(model)
        new = _untyped_boundaries(graph, kept, failures, types)
        if not new:
            new = _parse_failures(model, kept, failures, types, index_of, readers)
        if not new:
            break
        failures.update(new)
    return [NodeVerdict(i, node.name, node.op_type, i not in failures, *failures.get(i, (None, None)))
            for i, node in enumerate(graph.node)]


def _readers(model: onnx.ModelProto) -> dict[str, list[int]]:
    readers: dict[str, list[int]] = {}
    for i, node in enumerate(model.graph.node):
        for name in node_reads(node):
            readers.setdefault(name, []).append(i)
    return readers


def _untyped_boundaries(graph, kept, failures, types) -> dict[int, tuple[str, str]]:
    """Nodes reading an output of a failed node whose type inference could not find: no partition can feed them."""
    failed_outputs = {out: graph.node[i].name for i in failures for out in graph.node[i].output if out}
    found = {}
    for i in kept:
        for name in node_reads(graph.node[i]):
            if name in failed_outputs and not _has_rank(types.get(name)):
                found[i] = ("type unknown", f"reads '{name}' from unsupported node '{failed_outputs[name]}', whose "
                                            "type/shape inference cannot determine")
    return found


def _assume_boundary_types(model, kept, failures, types, assumed: dict[str, str]) -> bool:
    """Give each untyped output of a failed node that kept nodes read a dynamic type its readers accept; re-infer.

    Returns whether any type was assumed (then `model`'s value_info holds it and what follows from it)."""
    graph = model.graph
    kept_set = set(kept)
    added = False
    for i in failures:
        producer = graph.node[i]
        for name in producer.output:
            if not name or _has_rank(types.get(name)) or name in assumed:
                continue
            readers = [graph.node[k] for k in kept_set if name in node_reads(graph.node[k])]
            if not readers:
                continue
            guess = _boundary_type(model, producer, name, readers, types)
            if guess is None:
                continue
            elem_type, rank, why = guess
            info = helper.make_tensor_value_info(name, elem_type, [f"{name}_dim{d}" for d in range(rank)])
            graph.value_info.append(info)
            op = f"{producer.domain}.{producer.op_type}" if producer.domain else producer.op_type
            assumed[name] = (f"output of unsupported node '{producer.name}' ({op}), whose type/shape inference "
                             f"gives nothing; assumed {onnx.helper.tensor_dtype_to_np_dtype(elem_type)} of rank "
                             f"{rank} with dynamic dims ({why})")
            added = True
    if added:
        kept_infos = list(graph.value_info)
        infer_shapes(model)
        inferred = {info.name for info in graph.value_info}
        graph.value_info.extend(info for info in kept_infos if info.name in assumed and info.name not in inferred)
    return added


_CANDIDATE_ELEM_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.INT64,
                         onnx.TensorProto.INT32, onnx.TensorProto.BOOL)
_MAX_RANK = 8


def _boundary_type(model, producer, name: str, readers, types) -> tuple[int, int, str] | None:
    """(element type, rank, why) for an untyped tensor: ranks every reader's ONNX schema accepts, preferring the
    producer's first typed input's element type and rank; None when the readers leave the rank open."""
    source = next((types[t] for t in producer.input if t and _has_rank(types.get(t))), None)
    source_elem = source.tensor_type.elem_type if source is not None else None
    source_rank = len(source.tensor_type.shape.dim) if source is not None else None
    declared = types.get(name)
    if declared is not None and declared.tensor_type.elem_type:  # the element type is known, only the shape not
        elem_order = [declared.tensor_type.elem_type]
    else:
        elem_order = [source_elem] if source_elem else []
        elem_order += [e for e in _CANDIDATE_ELEM_TYPES if e != source_elem]
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    for elem_type in elem_order:
        ranks = set(range(_MAX_RANK + 1))
        for reader in readers:
            ranks &= _accepted_ranks(reader, name, elem_type, types, opsets)
        if not ranks:
            continue
        if len(ranks) == 1:
            names = ", ".join(f"'{r.name}'" for r in readers)
            return elem_type, ranks.pop(), f"the only rank its readers accept: {names}"
        if source_rank in ranks and elem_type == source_elem:
            return elem_type, source_rank, "element type and rank of its producer's input, which its readers accept"
        return None
    return None


def _accepted_ranks(reader, name: str, elem_type: int, types, opsets: dict[str, int]) -> set[int]:
    """Ranks of `name` for which `reader`'s schema inference succeeds (all ranks when it has no schema)."""
    everything = set(range(_MAX_RANK + 1))
    domain = reader.domain if reader.domain != "ai.onnx" else ""
    try:
        schema = defs.get_schema(reader.op_type, opsets.get(domain, 1), domain)
    except defs.SchemaError:
        return everything
    accepted = set()
    for rank in everything:
        given = dict(types)
        given[name] = helper.make_tensor_type_proto(elem_type, [None] * rank)
        known = {t: given[t] for t in reader.input if t in given}
        try:
            onnx_shape_inference.infer_node_outputs(schema, reader, known)
        except Exception:  # noqa: BLE001 - inference rejects the rank or type with several exception types
            continue
        accepted.add(rank)
    return accepted


def _has_rank(type_proto: onnx.TypeProto | None) -> bool:
    return type_proto is not None and type_proto.tensor_type.HasField("shape")


def _parse_failures(model, kept, failures, types, index_of, readers) -> dict[int, tuple[str, str]]:
    import engine

    trial = _submodel(model, kept, types, keep_graph_outputs=True)
    network = engine.NetworkDefinition()
    parser = engine.OnnxParser(network, engine.Logger(engine.Logger.INTERNAL_ERROR))
    try:
        parser.parse_model(trial)
    except Exception as exc:  # noqa: BLE001 - an importer bug must not hide the other verdicts
        raise SurgeonError(f"the engine's parser failed unexpectedly: {type(exc).__name__}: {exc}") from exc
    return _parser_failures(parser, index_of, readers, skip=failures)


def _parser_failures(parser, index_of: dict[str, int], readers: dict[str, list[int]], skip=(),
                     prefix: str = "") -> dict[int, tuple[str, str]]:
    """Map parser errors to node indices: errors naming a node, and readers of a graph input the parser rejected.
    Each keeps the category the parser recorded (engine.errors.UnsupportedCategory), never one read from wording."""
    found: dict[int, tuple[str, str]] = {}
    for k in range(parser.num_errors):
        error = parser.get_error(k)
        if error.node in index_of and index_of[error.node] not in skip:
            found[index_of[error.node]] = (error.category.value, prefix + _strip_node_prefix(error.desc, error.node))
            continue
        bad_input = re.match(r"input '([^']+)': (.*)", error.desc)
        if bad_input:
            for i in readers.get(bad_input.group(1), []):
                if i not in skip and i in index_of.values():
                    found[i] = (error.category.value,
                                f"{prefix}reads '{bad_input.group(1)}': {bad_input.group(2)}")
    return found


def _strip_node_prefix(desc: str, node: str) -> str:
    for prefix in (f"node '{node}' ", f"node '{node}': "):
        if desc.startswith(prefix):
            desc = desc[len(prefix):]
            return re.sub(r"^\([^)]*\):\s*", "", desc)
    return desc


def partition(model: onnx.ModelProto, verdicts: list[NodeVerdict]) -> list[Subgraph]:
    """Maximal groups of same-kind nodes, each convex (no path leaves a group and comes back), in execution order.

    Each node gets a stage: the smallest number of its kind's parity (even: supported, odd: unsupported) that is
    at least every predecessor's stage, strictly above it for a predecessor of the other kind. Stages never
    decrease along an edge, so grouping by stage yields convex groups ordered by their dependencies.
    """
    graph = model.graph
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    stages: list[int] = []
    for i, node in enumerate(graph.node):
        parity = 0 if verdicts[i].supported else 1
        lowest = 0
        for name in node_reads(node):
            if name in producer:
                p = producer[name]
                lowest = max(lowest, stages[p] + (0 if verdicts[p].supported == verdicts[i].supported else 1))
        stages.append(lowest if lowest % 2 == parity else lowest + 1)
    types = value_types(model)
    groups: dict[int, list[int]] = {}
    for i, stage in enumerate(stages):
        groups.setdefault(stage, []).append(i)
    return [_subgraph(model, indices, types, verdicts[indices[0]].supported) for _, indices in sorted(groups.items())]


def _subgraph(model: onnx.ModelProto, indices: list[int], types, supported: bool) -> Subgraph:
    sub = _submodel(model, indices, types, keep_graph_outputs=False)
    try:
        onnx.checker.check_model(sub)
    except onnx.checker.ValidationError as exc:
        raise SurgeonError(f"subgraph of nodes {min(indices)}-{max(indices)} fails onnx.checker: "
                           f"{str(exc).strip().splitlines()[0]}") from exc
    return Subgraph(supported, indices, [i.name for i in sub.graph.input], [o.name for o in sub.graph.output], sub)


def _submodel(model: onnx.ModelProto, indices: list[int], types, keep_graph_outputs: bool) -> onnx.ModelProto:
    """The given nodes as a model: inputs are what they read but do not produce, outputs what others need.

    With `keep_graph_outputs` (parsing trials) the outputs are the original graph outputs the nodes produce.
    """
    graph = model.graph
    chosen = set(indices)
    nodes = [graph.node[i] for i in indices]
    produced = [out for node in nodes for out in node.output if out]
    produced_set = set(produced)
    initializers = {init.name: init for init in graph.initializer}
    reads: list[str] = []
    for node in nodes:
        for name in node_reads(node):  # a name read by both branches of an If is listed once
            if name not in reads:
                reads.append(name)
    inputs = [name for name in reads if name not in produced_set and name not in initializers]
    graph_outputs = [o.name for o in graph.output]
    if keep_graph_outputs:
        outputs = [name for name in graph_outputs if name in produced_set]
    else:
        read_elsewhere = {name for i, node in enumerate(graph.node) if i not in chosen for name in node_reads(node)}
        outputs = [name for name in produced if name in read_elsewhere or name in graph_outputs]
    declared_inputs = {i.name: i for i in graph.input}
    sub_graph = helper.make_graph(
        nodes, f"{graph.name or 'graph'}_nodes_{min(indices)}_{max(indices)}",
        [declared_inputs.get(name) or _value_info(name, types) for name in inputs],
        [_value_info(name, types) for name in outputs],
        initializer=[initializers[name] for name in reads if name in initializers],
        value_info=[_value_info(name, types) for name in produced if name in types and name not in outputs])
    sub = helper.make_model(sub_graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    sub.functions.extend(model.functions)
    return sub


def _value_info(name: str, types) -> onnx.ValueInfoProto:
    if name not in types:
        raise SurgeonError(f"tensor '{name}' crosses a partition boundary but its type cannot be inferred; "
                           "declare it (e.g. run `polyx surgeon sanitize --infer-shapes`) and try again")
    info = onnx.ValueInfoProto()
    info.name = name
    info.type.CopyFrom(types[name])
    return info


def _verify_supported(model, subgraphs: list[Subgraph], verify_build: bool) -> dict[int, tuple[str, str]]:
    """Nodes of supported subgraphs that fail when their subgraph is parsed (or built) on its own."""
    import engine

    failed: dict[int, tuple[str, str]] = {}
    for sub in subgraphs:
        if not sub.supported:
            continue
        network = engine.NetworkDefinition()
        parser = engine.OnnxParser(network, engine.Logger(engine.Logger.INTERNAL_ERROR))
        index_of = {model.graph.node[i].name: i for i in sub.node_indices}
        if not parser.parse_model(sub.model):
            found = _parser_failures(parser, index_of, _readers(model), prefix="fails inside its partition: ")
            if not found:
                raise SurgeonError(f"{sub.file_name} does not parse in the engine: {parser.get_error(0).desc}")
            failed.update(found)
            continue
        if verify_build and _static_inputs(network):
            error = _build_error(engine, network)
            if error is not None:
                culprit = _culprit(network, error, index_of)
                if culprit is None:
                    raise SurgeonError(f"{sub.file_name} parses but does not build in the engine: {error}")
                failed[culprit] = ("build", f"the engine cannot build it: {error}")
    return failed


def _static_inputs(network) -> bool:
    return all(t.shape is not None and all(d >= 0 for d in t.shape) for t in network.inputs)


def _build_error(engine, network) -> str | None:
    builder = engine.Builder(engine.Logger(engine.Logger.INTERNAL_ERROR))
    config = builder.create_builder_config()
    config.builder_optimization_level = 0
    try:
        builder.build_serialized_network(network, config)
    except engine.EngineError as exc:
        return str(exc).splitlines()[0]
    return None


def _culprit(network, error: str, index_of: dict[str, int]) -> int | None:
    """The ONNX node behind the layer a build error names (layers remember their node)."""
    for layer in network.layers:
        if f"'{layer.name}'" in error and layer.metadata.get("onnx_node") in index_of:
            return index_of[layer.metadata["onnx_node"]]
    return None


def write_capability(report: CapabilityReport, directory: Path, input_path: Path | None = None) -> list[Path]:
    """Write every subgraph, results.txt and results.json into `directory` (created if its parent exists). Every
    target is checked before anything is written: none may be the input model or one of its files; each file is
    written under a temporary name and renamed into place."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise SurgeonError(f"{directory}: exists and is not a directory")
    if not directory.exists() and not directory.parent.is_dir():
        raise SurgeonError(f"{directory}: parent folder '{directory.parent}' does not exist")
    inputs = model_files(input_path) if input_path is not None else []
    targets = [directory / sub.file_name for sub in report.subgraphs] + [directory / "results.txt",
                                                                        directory / "results.json"]
    if directory.exists():
        try:
            for target in targets:
                check_output(target, inputs, "capability output")
        except OutputFileError as exc:
            raise SurgeonError(str(exc)) from None
    directory.mkdir(exist_ok=True)
    for sub, path in zip(report.subgraphs, targets):
        save_model(sub.model, path, input_path=input_path)
    try:
        write_output(targets[-2], report.to_text() + "\n", inputs, "capability report")
        write_output(targets[-1], json.dumps(report.to_json(), indent=2) + "\n", inputs, "capability report")
    except OutputFileError as exc:
        raise SurgeonError(str(exc)) from None
    return targets
