"""ONNX → NetworkDefinition. Walks the graph in order and hands each node to its op's registered importer.

Every unsupported node is reported (not only the first): nodes that depend on a failed node are skipped
silently, so the error list names root causes. Network tensors keep their ONNX names, which is what lets
`polyx run --mark-all` line up our tensors with onnxruntime's.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import ops  # noqa: F401 - importing registers every op module
from .dtypes import DataType, from_onnx, is_supported_onnx
from .errors import EngineError, ParseError, UnsupportedCategory, UnsupportedError
from .logger import Logger, Severity
from .network import NetworkDefinition, Tensor
from .onnx_file import describe_exception, load_onnx_bytes, load_onnx_file, read_external_data
from .ops.base import ONNX_IMPORTERS, OnnxImporter
from .plugin import get_plugin_registry
from .shape_inference import known_value

MIN_OPSET = 1

# Attributes that ONNX defines as positive wherever they occur (Conv, ConvTranspose, the pooling ops, Col2Im, ...):
# a 0 would build and compute nonsense (a MaxPool with kernel [0, 0] returns an output larger than its input).
POSITIVE_INTS_ATTRIBUTES = frozenset({"kernel_shape", "strides", "dilations"})


@dataclass(frozen=True)
class ParserError:
    """One parse failure: `desc` is the full message; `node` / `op` name the culprit when it is a node;
    `category` says which kind of problem it is (OTHER for errors that are not an unsupported feature)."""

    desc: str
    node: str | None = None
    op: str | None = None
    node_index: int = -1
    category: UnsupportedCategory = UnsupportedCategory.OTHER

    def __str__(self) -> str:
        return self.desc


class ImportContext:
    """What an importer sees of the node it imports and the network it adds layers to."""

    def __init__(self, parser: OnnxParser, node: onnx.NodeProto, index: int, opset: int):
        self.parser = parser
        self.network: NetworkDefinition = parser.network
        self.node = node
        self.index = index
        self.opset = opset
        self.name = node.name or f"{node.op_type}_{index}"
        self.logger = parser.logger
        self._attrs = {a.name: a for a in node.attribute}
        self._suffix = 0

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def num_inputs(self) -> int:
        return len(self.node.input)

    @property
    def num_outputs(self) -> int:
        return len(self.node.output)

    def input(self, index: int) -> Tensor | None:
        """The Tensor for input `index`, or None when it is absent or the empty name (an omitted optional input)."""
        if index >= len(self.node.input) or not self.node.input[index]:
            return None
        return self.parser._tensor(self.node.input[index])

    def inputs(self) -> list[Tensor | None]:
        return [self.input(i) for i in range(len(self.node.input))]

    def const(self, index: int) -> np.ndarray | None:
        """The value of input `index` when known at parse time (initializer, Constant, static shape arithmetic)."""
        return known_value(self.input(index))

    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, default: Any = None) -> Any:
        """The attribute's value, checked against the op's ONNX schema: a value of the wrong type (strides as
        floats, a perm given as one int) or a non-positive kernel/stride/dilation raises a ParseError."""
        if name not in self._attrs:
            return default
        attr = self._attrs[name]
        if attr.type == onnx.AttributeProto.GRAPH or attr.type == onnx.AttributeProto.GRAPHS:
            self.unsupported(f"attribute '{name}' holds a subgraph, which is not supported",
                             UnsupportedCategory.ATTRIBUTE)
        if attr.ref_attr_name:
            self.unsupported(f"attribute '{name}' references a function attribute", UnsupportedCategory.ATTRIBUTE)
        expected = _schema_attribute_types(self.node.domain or "", self.op_type, self.opset).get(name)
        if expected is not None and attr.type != expected:
            raise ParseError(f"attribute '{name}' must be {_attr_type_name(expected)}, got "
                             f"{_attr_type_name(attr.type)}", node=self.name, op=self.op_type)
        if attr.type == onnx.AttributeProto.TENSOR:
            try:
                return numpy_helper.to_array(attr.t)
            except Exception as exc:  # noqa: BLE001 - a damaged tensor raises ValueError, TypeError, ...
                raise ParseError(f"attribute '{name}': cannot read its tensor ({describe_exception(exc)})",
                                 node=self.name, op=self.op_type) from None
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, list) and value and isinstance(value[0], bytes):
            return [v.decode("utf-8", errors="replace") for v in value]
        if name in POSITIVE_INTS_ATTRIBUTES and isinstance(value, list) and any(v < 1 for v in value):
            raise ParseError(f"attribute '{name}' must hold positive values, got {value}", node=self.name,
                             op=self.op_type)
        return value

    def subgraph(self, name: str) -> onnx.GraphProto:
        """The graph held by attribute `name` (If's branches, Loop's and Scan's body); a missing attribute or one
        that holds no graph is a ParseError naming the node."""
        attr = self._attrs.get(name)
        if attr is None:
            raise ParseError(f"attribute '{name}' (a graph) is missing", node=self.name, op=self.op_type)
        if attr.type != onnx.AttributeProto.GRAPH or not attr.HasField("g"):
            raise ParseError(f"attribute '{name}' must be a graph, got {_attr_type_name(attr.type)}", node=self.name,
                             op=self.op_type)
        return attr.g

    def import_subgraph(self, graph: onnx.GraphProto, network: NetworkDefinition, bound: dict[str, Tensor],
                        capture: Callable[[Tensor], Tensor], what: str) -> list[Tensor]:
        """Import a subgraph of this node into `network` (a branch or body): its inputs are the tensors `bound`
        gives by name; a name it reads from an enclosing graph is resolved there and passed through
        `capture(outer tensor) -> tensor inside`. Returns the subgraph's outputs, in order; any error in it is a
        ParseError naming this node and `what`."""
        return self.parser.import_subgraph(graph, network, bound, capture, what, self.name, self.op_type)

    def unsupported(self, reason: str, category: UnsupportedCategory):
        raise UnsupportedError(reason, node=self.name, op=self.op_type, category=category)

    def layer_name(self, suffix: str | None = None) -> str:
        """Names for the layers a node expands into: the node name, then node name + '/suffix'."""
        if suffix is None:
            self._suffix += 1
            return self.name if self._suffix == 1 else f"{self.name}/{self._suffix - 1}"
        return f"{self.name}/{suffix}"

    def constant(self, value: Any, dtype: Any = None, name: str | None = None) -> Tensor:
        array = np.asarray(value, dtype=dtype)
        if array.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
            array = array.astype(np.float32)
        layer = self.network.add_constant(array.shape, array, name=name or self.layer_name("const"))
        return layer.get_output(0)


class OnnxParser:
    """TensorRT-style parser: `parse(bytes)` / `parse_from_file(path)` return success; errors via get_error(i)."""

    def __init__(self, network: NetworkDefinition, logger: Logger | None = None):
        self.network = network
        self.logger = logger or Logger()
        self._errors: list[ParserError] = []
        self._tensors: dict[str, Tensor] = {}
        self._initializers: dict[str, onnx.TensorProto] = {}
        self._failed: set[str] = set()
        self.model: onnx.ModelProto | None = None
        # Subgraph parsers (If/Loop/Scan bodies) resolve names of enclosing graphs through this: name -> Tensor
        # inside the subgraph, or None when no enclosing graph has it.
        self._outer: Callable[[str], Tensor | None] | None = None
        self._opset = 0
        self._domains: dict[str, int] = {}

    # ------------------------------------------------------------------ errors
    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors.clear()

    def errors_text(self) -> str:
        return "\n".join(e.desc for e in self._errors)

    def _error(self, desc: str, node: str | None = None, op: str | None = None, index: int = -1,
               category: UnsupportedCategory = UnsupportedCategory.OTHER) -> None:
        self._errors.append(ParserError(desc, node, op, index, UnsupportedCategory(category)))
        self.logger.log(Severity.ERROR, desc)

    # ------------------------------------------------------------------ entry points
    def parse_from_file(self, path: str | os.PathLike) -> bool:
        path = os.fspath(path)
        try:
            model = load_onnx_file(path)
        except ParseError as exc:
            self._error(str(exc))
            return False
        return self.parse_model(model, source=path)

    def parse(self, model_bytes: bytes, path: str | None = None) -> bool:
        try:
            model = load_onnx_bytes(model_bytes, path or "<bytes>")
        except ParseError as exc:
            self._error(str(exc))
            return False
        if path:
            try:
                read_external_data(model, path)
            except ParseError as exc:
                self._error(str(exc))
                return False
        return self.parse_model(model, source=path or "<bytes>")

    def parse_model(self, model: onnx.ModelProto, source: str = "<model>") -> bool:
        self.model = model
        graph = model.graph
        opset = _default_opset(model)
        if opset is None:
            self._error(f"{source}: the model imports no default-domain opset")
            return False
        if opset > onnx.defs.onnx_opset_version():
            self._error(f"{source}: opset {opset} is newer than the newest supported "
                        f"({onnx.defs.onnx_opset_version()})", category=UnsupportedCategory.OPSET)
            return False
        domains = {imp.domain: imp.version for imp in model.opset_import}
        self._opset, self._domains = opset, domains
        self.network.name = graph.name or self.network.name
        self._initializers = {init.name: init for init in graph.initializer}
        for inp in graph.input:
            if inp.name in self._initializers:
                continue
            if not self._add_graph_input(inp):
                continue
        self._import_nodes(graph)
        for out in graph.output:
            if out.name in self._failed:
                continue
            tensor = self._tensors.get(out.name)
            if tensor is None and out.name in self._initializers:
                try:
                    tensor = self._tensor(out.name)
                except ParseError as exc:
                    self._error(f"{source}: {exc}")
                    continue
            if tensor is None:
                self._error(f"{source}: graph output '{out.name}' is not produced by any node")
                continue
            if tensor.is_network_input or tensor.is_network_output:
                # An output that is also an input (or listed twice) still needs a tensor of its own name.
                tensor = self.network.add_identity(tensor, name=f"{out.name}/identity").get_output(0)
            self.network.mark_output(tensor)
        ok = not self._errors
        if ok:
            self.logger.log(Severity.INFO, f"parsed {source}: {len(graph.node)} nodes -> "
                                           f"{self.network.num_layers} layers (opset {opset})")
        return ok

    def _import_nodes(self, graph: onnx.GraphProto) -> None:
        opset, domains = self._opset, self._domains
        for index, node in enumerate(graph.node):
            self._import_node(node, index, domains.get(node.domain or "", opset) if node.domain not in ("", "ai.onnx")
                              else opset)

    def import_subgraph(self, graph: onnx.GraphProto, network: NetworkDefinition, bound: dict[str, Tensor],
                        capture: Callable[[Tensor], Tensor], what: str, node: str | None = None,
                        op: str | None = None) -> list[Tensor]:
        """See ImportContext.import_subgraph: a child parser imports `graph` into `network`; errors name `node`."""
        child = OnnxParser(network, Logger(Logger.INTERNAL_ERROR))
        child._opset, child._domains = self._opset, self._domains
        child._initializers = {init.name: init for init in graph.initializer}
        captured: dict[str, Tensor] = {}

        def outer(name: str) -> Tensor | None:
            if name not in captured:
                tensor = self._scope_tensor(name)
                if tensor is None:
                    return None
                value = known_value(tensor)
                if value is not None:  # a build-time value is copied in: shapes and conditions inside stay known
                    captured[name] = network.add_constant(value.shape, value, name=f"{name}/outer").get_output(0)
                else:
                    captured[name] = capture(tensor)
            return captured[name]

        child._outer = outer
        for inp in graph.input:
            if inp.name not in bound:
                raise ParseError(f"{what}: input '{inp.name}' is not one the op provides ({sorted(bound)})", node, op)
            tensor = bound[inp.name]
            if tensor.name != inp.name and network.find_tensor(inp.name) is None:
                network.rename_tensor(tensor, inp.name)
            child._tensors[inp.name] = tensor
        child._import_nodes(graph)
        outputs: list[Tensor] = []
        for out in graph.output:
            if not child._errors and out.name not in child._failed:
                try:
                    tensor = child._tensor(out.name)
                except EngineError as exc:
                    child._error(f"graph output '{out.name}': {exc}")
                    continue
                if tensor.is_network_input or tensor in outputs or tensor.producer is None or \
                        tensor.producer.type.value == "CONSTANT" and tensor.name in child._initializers:
                    tensor = network.add_identity(tensor, name=f"{out.name}/identity").get_output(0)
                outputs.append(tensor)
        if child._errors:
            message = f"{what}: " + "; ".join(error.desc for error in child._errors)
            category = child._errors[0].category
            if category != UnsupportedCategory.OTHER:  # an unsupported op inside is why the node is unsupported
                raise UnsupportedError(message, node, op, category=category)
            raise ParseError(message, node, op)
        return outputs

    def _scope_tensor(self, name: str) -> Tensor | None:
        """The tensor `name` as this graph sees it (its own, an initializer, or an enclosing graph's), or None."""
        if name in self._tensors or name in self._initializers:
            return self._tensor(name)
        return None if self._outer is None else self._outer(name)

    # ------------------------------------------------------------------ internals
    def _add_graph_input(self, inp: onnx.ValueInfoProto) -> bool:
        ttype = inp.type.tensor_type
        if inp.name in self._tensors:
            self._error(f"input '{inp.name}': the graph declares this input twice")
            return False
        if not inp.type.HasField("tensor_type"):
            self._error(f"input '{inp.name}': only tensor inputs are supported (got {inp.type.WhichOneof('value')})")
            self._failed.add(inp.name)
            return False
        if not is_supported_onnx(ttype.elem_type):
            self._error(f"input '{inp.name}': unsupported data type "
                        f"{onnx.TensorProto.DataType.Name(ttype.elem_type)}", category=UnsupportedCategory.DTYPE)
            self._failed.add(inp.name)
            return False
        if not ttype.HasField("shape"):
            self._error(f"input '{inp.name}': the model gives no rank for this input, which the engine needs")
            self._failed.add(inp.name)
            return False
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in ttype.shape.dim]
        negative = [(axis, d) for axis, d in enumerate(ttype.shape.dim) if d.HasField("dim_value") and d.dim_value < 0]
        if negative:
            axis, dim = negative[0]
            self._error(f"input '{inp.name}': dim {axis} is {dim.dim_value}; an ONNX dim_value must be >= 0 "
                        "(a dynamic dim has a dim_param or no value)")
            self._failed.add(inp.name)
            return False
        tensor = self.network.add_input(inp.name, from_onnx(ttype.elem_type), shape)
        self._tensors[inp.name] = tensor
        return True

    def _tensor(self, name: str) -> Tensor:
        if name in self._tensors:
            return self._tensors[name]
        if name in self._initializers:
            init = self._initializers[name]
            if not is_supported_onnx(init.data_type):
                raise UnsupportedError(f"initializer '{name}' has unsupported data type "
                                       f"{onnx.TensorProto.DataType.Name(init.data_type)}",
                                       category=UnsupportedCategory.DTYPE)
            array = _initializer_array(init)
            layer = self.network.add_constant(array.shape, array, name=name)
            tensor = layer.get_output(0)
            self.network.rename_tensor(tensor, name)
            self._tensors[name] = tensor
            return tensor
        if self._outer is not None:  # a subgraph reading a tensor of an enclosing graph
            tensor = self._outer(name)
            if tensor is not None:
                self._tensors[name] = tensor
                return tensor
        raise EngineError(f"tensor '{name}' is used before it is produced (the graph is not topologically sorted, "
                          "or the name is misspelled)")

    def _import_node(self, node: onnx.NodeProto, index: int, opset: int) -> None:
        name = node.name or f"{node.op_type}_{index}"
        if any(i in self._failed for i in node.input if i):
            self._failed.update(node.output)
            return
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        importer = ONNX_IMPORTERS.get((domain, node.op_type))
        if importer is None and get_plugin_registry().get(node.op_type) is not None:
            importer = OnnxImporter(node.op_type, domain, _import_plugin)
        if importer is None:
            where = f" in domain '{node.domain}'" if domain else ""
            self._error(f"node '{name}' ({node.op_type}): unsupported operator{where}", name, node.op_type, index,
                        UnsupportedCategory.OPERATOR)
            self._failed.update(node.output)
            return
        if opset < importer.min_opset or (importer.max_opset is not None and opset > importer.max_opset):
            self._error(f"node '{name}' ({node.op_type}): opset {opset} is not supported for this op "
                        f"(supported: {importer.min_opset}..{importer.max_opset or 'newest'})", name, node.op_type,
                        index, UnsupportedCategory.OPSET)
            self._failed.update(node.output)
            return
        ctx = ImportContext(self, node, index, opset)
        first_new_layer = self.network.num_layers
        try:
            outputs = list(importer.fn(ctx))
        except ParseError as exc:
            category = exc.category if isinstance(exc, UnsupportedError) else UnsupportedCategory.OTHER
            self._error(str(exc) if exc.node else f"node '{name}' ({node.op_type}): {exc}", name, node.op_type, index,
                        category)
            self._failed.update(node.output)
            return
        except EngineError as exc:
            self._error(f"node '{name}' ({node.op_type}): {exc}", name, node.op_type, index)
            self._failed.update(node.output)
            return
        except Exception as exc:  # noqa: BLE001 - a malformed node must not escape parse() as a raw exception
            self._error(f"node '{name}' ({node.op_type}): cannot import this node ({describe_exception(exc)})", name,
                        node.op_type, index)
            self._failed.update(node.output)
            return
        for layer in self.network.layers[first_new_layer:]:
            layer.metadata.setdefault("onnx_node", name)
        self._bind_outputs(node, outputs, ctx)

    def _free_name(self, name: str) -> None:
        """Move an internal tensor off an ONNX tensor's name. A node expanded into several layers names the first
        layer after the node, so its output is auto-named '<node>_output_0', which is exactly the name PyTorch
        gives the node's own output (timm's XCiT: '/blocks.0/attn/ReduceL2_output_0'): the internal tensor yields."""
        if self._tensors.get(name) is not None:
            return  # an ONNX tensor: a duplicate output name is the rename's error to report
        holder = self.network.find_tensor(name) if self.network.has_tensor_name(name) else None
        if holder is not None and not holder.is_network_input:
            self.network.rename_tensor(holder, self.network.unique_tensor_name(f"{name}/internal"))

    def _bind_outputs(self, node: onnx.NodeProto, outputs: Sequence[Tensor | None], ctx: ImportContext) -> None:
        for out_name, tensor in zip(node.output, outputs):
            if not out_name:
                continue
            if tensor is None:
                self._failed.add(out_name)
                continue
            claimed = tensor.is_network_input or tensor.name in self._tensors and self._tensors[tensor.name] is tensor
            if claimed or tensor.producer is None or tensor.producer.type.value == "CONSTANT" and \
                    tensor.name in self._initializers:
                tensor = self.network.add_identity(tensor, name=ctx.layer_name("identity")).get_output(0)
            self._free_name(out_name)
            self.network.rename_tensor(tensor, out_name)
            self._tensors[out_name] = tensor
        for out_name in node.output[len(outputs):]:
            if out_name:
                self._failed.add(out_name)

    def supports_operator(self, op_type: str, domain: str = "") -> bool:
        return (domain, op_type) in ONNX_IMPORTERS


def _import_plugin(ctx: ImportContext) -> list[Tensor]:
    """Fallback importer: a node whose op type names a registered plugin becomes a plugin layer (TensorRT's
    fallback plugin importer). Attributes `plugin_version` and `plugin_namespace` pick among registered versions and
    namespaces; every other attribute becomes a field."""
    selectors = {key: str(_plain(ctx.attr(key))) for key in ("plugin_version", "plugin_namespace")
                 if ctx.attr(key) is not None}
    cls = get_plugin_registry().get(ctx.op_type, selectors.get("plugin_version"), selectors.get("plugin_namespace"))
    if cls is None:
        ctx.unsupported(f"no registered plugin {ctx.op_type!r} matches " +
                        ", ".join(f"{k}={v!r}" for k, v in selectors.items()), UnsupportedCategory.OPERATOR)
    fields = {a.name: _plain(ctx.attr(a.name)) for a in ctx.node.attribute if a.name not in selectors}
    try:
        plugin = cls(**fields)
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - user code: reported with the node named, as a parse error
        raise ParseError(f"plugin {cls.plugin_type!r} refused the node's attributes {sorted(fields)}: "
                         f"{type(exc).__name__}: {exc}") from None
    layer = ctx.network.add_plugin([t for t in ctx.inputs()], plugin, name=ctx.layer_name())
    return list(layer.outputs)


def _plain(value: Any) -> Any:
    """An attribute value as plugin fields hold it: arrays as lists, bytes as text."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _initializer_array(init: onnx.TensorProto) -> np.ndarray:
    """The initializer's value; data that does not match its dims or dtype is a ParseError naming it."""
    if any(d < 0 for d in init.dims):
        raise ParseError(f"initializer '{init.name}': negative dim in dims {list(init.dims)}")
    try:
        array = numpy_helper.to_array(init)
    except Exception as exc:  # noqa: BLE001 - short raw_data, values in the wrong field, ...: ValueError, TypeError
        raise ParseError(f"initializer '{init.name}': its data does not match dims {list(init.dims)} and type "
                         f"{onnx.TensorProto.DataType.Name(init.data_type)} ({describe_exception(exc)})") from None
    if array.shape != tuple(init.dims):
        raise ParseError(f"initializer '{init.name}': holds {array.size} values of shape {array.shape}, its dims "
                         f"say {list(init.dims)}")
    return array


@functools.cache
def _schema_attribute_types(domain: str, op_type: str, opset: int) -> dict[str, int]:
    """{attribute name: AttributeProto type} from the ONNX schema of the op at `opset` ({} when unknown)."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, "" if domain == "ai.onnx" else domain)
    except onnx.defs.SchemaError:
        return {}
    return {name: int(attr.type.value) for name, attr in schema.attributes.items()}


def _attr_type_name(attr_type: int) -> str:
    return onnx.AttributeProto.AttributeType.Name(attr_type) if attr_type in \
        onnx.AttributeProto.AttributeType.values() else str(attr_type)


def _default_opset(model: onnx.ModelProto) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


def supported_onnx_ops() -> list[tuple[str, str]]:
    """(domain, op_type) pairs with an importer, sorted."""
    return sorted(ONNX_IMPORTERS)


__all__ = ["OnnxParser", "ParserError", "ImportContext", "supported_onnx_ops", "DataType"]
