"""Which weights a refittable build keeps replaceable, and the plan's table of them.

Choice (docs/refit.md): a refittable build keeps the folds off for its named weights instead of recording how
each engine constant was derived from them. A named weight is a floating-point Constant layer (the ONNX parser
names an initializer's layer after the initializer); the builder marks its node (`Node.refit_name`), and
`Value.constant` then hides its value from every pass, so no pass bakes it in: constant folding, BatchNorm-into-
Conv scaling and pattern matches on constant values leave its readers as they are, while rewrites that only move
it (a MatMul's bias operand, an INT8 layer's bias) still apply. The one derivation left is the precision pass's
cast (FP16 builds store a float16 copy), which a refit repeats with the same `astype`. Because the graph the builder
optimizes does not depend on these values, an engine refitted with new weights runs exactly the layers, tactics and
kernels of an engine built from them. The price is speed: a refittable mobilenet keeps its BatchNorm scales as
layers. Recipes replayed at refit time would keep the folds, but every pass would have to record them, and an
unrecorded fold would make a refit silently wrong.

Not refittable (their values shape the graph the builder makes): integer and bool constants (shapes, axes,
indices), Q/DQ scales and zero points (folded into INT8 layers' params), and constants read where a value sets an
output shape (Resize scales, Range bounds, OneHot depth).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dtypes import DataType, nptype
from .enums import LayerType
from .errors import PlanFormatError
from .graph import VALUE_SHAPED_INPUTS, LoweredGraph
from .ir import Graph, Node

# Inputs whose values a quantization layer folds into INT8 layers: scale and zero point.
QUANTIZATION_PARAMETER_INPUTS = {LayerType.QUANTIZE: 1, LayerType.DEQUANTIZE: 1}


def _read_as_parameter(node: Node, position: int) -> bool:
    first = QUANTIZATION_PARAMETER_INPUTS.get(node.type, VALUE_SHAPED_INPUTS.get(node.type))
    return first is not None and position >= first


def mark_refittable_weights(graph: Graph) -> dict[str, tuple[DataType, tuple[int, ...]]]:
    """Mark every refittable Constant node of a freshly lowered graph with its name; returns each name's own dtype
    and shape (what a refit must give, whatever copies the passes make)."""
    marked = {}
    for node in graph.nodes:
        if node.type != LayerType.CONSTANT or not node.outputs[0].dtype.is_floating:
            continue
        if any(_read_as_parameter(reader, position) for reader, position in node.outputs[0].uses):
            continue
        node.refit_name = node.name
        marked[node.name] = (node.outputs[0].dtype, tuple(node.params["weights"].shape))
    return marked


def network_digest(graph: Graph) -> str:
    """SHA-256 of everything in a freshly marked graph except the refittable weights' values: inputs, outputs,
    each node's type, name, params, wiring, output types and shapes, and the values of constants that are not
    refittable. Two imports of models that differ only in refittable weights give the same digest; a model whose
    Reshape shape, Clip bound (read into params when the model is imported) or graph differs does not — so
    OnnxParserRefitter can refuse a file whose other changes a refit would silently ignore."""
    digest = hashlib.sha256()

    def add(item: Any) -> None:
        digest.update(json.dumps(item, sort_keys=True, default=_json_value).encode())
        digest.update(b"\0")

    for value in graph.inputs:
        add(["input", value.name, value.dtype.value, value.shape])
    for node in graph.nodes:
        params = {k: v for k, v in node.params.items() if k != "weights"}
        weights = node.params.get("weights")
        if weights is not None:
            weights = [str(weights.dtype), list(weights.shape), None if node.refit_name else weights.tobytes().hex()]
        add([node.type.value, node.name, params, weights, node.refit_name,
             [None if v is None else v.name for v in node.inputs],
             [[v.name, v.dtype.value, v.shape] for v in node.outputs],
             {str(k): DataType(v).value for k, v in node.output_types.items()}])
    for value in graph.outputs:
        add(["output", value.name])
    return digest.hexdigest()


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [str(value.dtype), list(value.shape), value.tobytes().hex()]
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


@dataclass
class RefitWeight:
    """A named weight: what `Refitter.set_named_weights` must give (dtype, shape) and the engine constant tensors
    made from it (each its `astype` to the tensor's dtype)."""

    name: str
    dtype: DataType
    shape: tuple[int, ...]
    tensors: list[int]


@dataclass
class RefitTable:
    weights: list[RefitWeight]
    stripped: bool  # the plan holds no values for these weights; the engine runs only after a refit
    network_digest: str  # network_digest() of the network the engine was built from

    def by_name(self) -> dict[str, RefitWeight]:
        return {w.name: w for w in self.weights}

    def tensors(self) -> set[int]:
        return {t for w in self.weights for t in w.tensors}

    def to_json(self) -> dict[str, Any]:
        return {"stripped": self.stripped, "network_digest": self.network_digest,
                "weights": [{"name": w.name, "dtype": w.dtype.value, "shape": list(w.shape), "tensors": w.tensors}
                            for w in self.weights]}


def refit_table(graph: LoweredGraph, marked: dict[str, tuple[DataType, tuple[int, ...]]], stripped: bool,
                digest: str) -> RefitTable:
    """The marked weights left in the lowered graph and the constant tensors holding each (a weight that every
    reader lost, e.g. an unused initializer, is not listed: nothing in the engine depends on it)."""
    weights: dict[str, RefitWeight] = {}
    for spec in graph.layers:
        node = spec.layer
        if node.type != LayerType.CONSTANT or node.refit_name is None:
            continue
        if node.refit_name not in weights:
            dtype, shape = marked[node.refit_name]
            weights[node.refit_name] = RefitWeight(node.refit_name, dtype, shape, [])
        weights[node.refit_name].tensors.append(spec.outputs[0])
    return RefitTable(list(weights.values()), stripped, digest)


def _fail(field: str, problem: str) -> PlanFormatError:
    return PlanFormatError(f"plan: refit {field}: {problem}")


def refit_table_from_json(data: Any, graph: LoweredGraph) -> RefitTable | None:
    """The plan header's `refit` field (null for an engine that is not refittable), checked field by field: every
    weight names constant tensors of its shape and a floating dtype, no tensor belongs to two weights."""
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) != {"stripped", "network_digest", "weights"}:
        raise _fail("field", f"must be null or an object with 'stripped', 'network_digest' and 'weights', got "
                             f"{data!r:.100}")
    if not isinstance(data["stripped"], bool) or not isinstance(data["weights"], list):
        raise _fail("field", "'stripped' must be true or false and 'weights' a list")
    digest = data["network_digest"]
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise _fail("network_digest", f"must be 64 lowercase hex digits (SHA-256), got {digest!r:.100}")
    constant_tensors = {spec.outputs[0] for spec in graph.layers if spec.layer.type == LayerType.CONSTANT}
    dtypes = {d.value for d in DataType}
    seen_names: set[str] = set()
    seen_tensors: set[int] = set()
    weights = []
    for position, entry in enumerate(data["weights"]):
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape", "tensors"} or \
                not isinstance(entry["name"], str):
            raise _fail(f"weights[{position}]", f"must be {{name, dtype, shape, tensors}}, got {entry!r:.100}")
        field = f"weight '{entry['name']}'"
        if entry["name"] in seen_names:
            raise _fail(field, "is listed twice")
        seen_names.add(entry["name"])
        if entry["dtype"] not in dtypes or not DataType(entry["dtype"]).is_floating:
            raise _fail(f"{field} dtype", f"{entry['dtype']!r} is not a floating-point data type")
        shape = entry["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                  for d in shape):
            raise _fail(f"{field} shape", f"must be a list of dims >= 0, got {shape!r:.100}")
        tensors = entry["tensors"]
        if not isinstance(tensors, list) or not tensors:
            raise _fail(f"{field} tensors", "must be a non-empty list of constant tensor indices")
        for index in tensors:
            if index not in constant_tensors or isinstance(index, bool):
                raise _fail(f"{field} tensors", f"{index!r} is not a constant tensor of the plan")
            if index in seen_tensors:
                raise _fail(f"{field} tensors", f"tensor {index} belongs to two weights")
            seen_tensors.add(index)
            tensor = graph.tensors[index]
            if tensor.shape != tuple(shape) or not tensor.dtype.is_floating:
                raise _fail(f"{field} tensors", f"tensor {index} ('{tensor.name}', {tensor.dtype.value} "
                                                f"{list(tensor.shape or [])}) is not a floating copy of shape {shape}")
        weights.append(RefitWeight(entry["name"], DataType(entry["dtype"]), tuple(shape), list(tensors)))
    return RefitTable(weights, data["stripped"], digest)


def add_stripped_placeholders(data: Any, tensors: list, constants: dict[int, Any]) -> None:
    """A stripped plan has no buffers for its weights: zeros of each weight tensor's dtype and shape stand in (so
    the plan's graph is complete and its tactics can prepare) until a refit brings the values. The engine refuses
    to execute before that (Engine.missing_weights)."""
    if not isinstance(data, dict) or data.get("stripped") is not True or not isinstance(data.get("weights"), list):
        return  # not stripped (refit_table_from_json checks the field itself)
    for entry in data["weights"]:
        for index in entry.get("tensors", []) if isinstance(entry, dict) else []:
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(tensors):
                raise _fail("weights", f"tensor index {index!r} is not in 0..{len(tensors) - 1}")
            tensor = tensors[index]
            if index in constants:
                raise _fail(f"weight '{entry.get('name')}'", f"the plan is stripped but holds a buffer for tensor "
                                                             f"'{tensor.name}'")
            if tensor.shape is None or any(d < 0 for d in tensor.shape) or not tensor.dtype.is_floating:
                raise _fail(f"weight '{entry.get('name')}'", f"tensor '{tensor.name}' is not a floating tensor of "
                                                             "static shape")
            constants[index] = np.zeros(tensor.shape, nptype(tensor.dtype))
