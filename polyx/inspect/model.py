"""`inspect model` for ONNX files: opsets, producer, IO, initializers, nodes, attributes, weight statistics."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from engine.onnx_file import load_onnx_file

from .render import Block, Fields, Table, format_bytes, format_shape
from .stats import tensor_stats
from .views import attribute_text, histogram, io_rows, ops_table, stats_table

LARGEST_INITIALIZERS = 5
DEFAULT_DOMAIN = "ai.onnx"


def describe_onnx(path: Path, show: set[str]) -> dict[str, Any]:
    """A JSON-ready report. `show`: 'layers' adds nodes, 'attrs' their attributes, 'weights' initializer stats."""
    model = load_onnx_file(path)
    graph = model.graph
    initializer_names = {t.name for t in graph.initializer}
    sizes = sorted(({"name": t.name, "dtype": onnx_dtype_name(t.data_type), "shape": list(t.dims),
                     "nbytes": _initializer_nbytes(t)} for t in graph.initializer),
                   key=lambda entry: (-entry["nbytes"], entry["name"]))
    ops = Counter(_op_name(node) for node in graph.node)
    report: dict[str, Any] = {
        "kind": "onnx",
        "file": str(path),
        "ir_version": model.ir_version,
        "producer": {"name": model.producer_name, "version": model.producer_version},
        "graph_name": graph.name,
        "opsets": [{"domain": entry.domain or DEFAULT_DOMAIN, "version": entry.version}
                   for entry in model.opset_import],
        # Models of IR version < 4 list initializers among the inputs too; they are not inputs to feed.
        "inputs": [_value_info(v) for v in graph.input if v.name not in initializer_names],
        "outputs": [_value_info(v) for v in graph.output],
        "initializers": {"count": len(sizes), "total_bytes": sum(entry["nbytes"] for entry in sizes),
                         "largest": sizes[:LARGEST_INITIALIZERS]},
        "node_count": len(graph.node),
        "op_histogram": histogram(ops, "op"),
    }
    if show & {"layers", "attrs"}:
        report["nodes"] = [_node(index, node, with_attributes="attrs" in show) for index, node in enumerate(graph.node)]
    if "weights" in show:
        report["weights"] = [{"name": t.name, **tensor_stats(numpy_helper.to_array(t))} for t in graph.initializer]
    return report


def onnx_blocks(report: dict[str, Any]) -> list[Block]:
    producer = " ".join(filter(None, (report["producer"]["name"], report["producer"]["version"]))) or "-"
    initializers = report["initializers"]
    blocks: list[Block] = [
        Fields(f"ONNX model {report['file']}", [
            ("graph", report["graph_name"] or "-"),
            ("ir version", str(report["ir_version"])),
            ("producer", producer),
            ("opsets", ", ".join(f"{o['domain']} {o['version']}" for o in report["opsets"]) or "-"),
            ("nodes", str(report["node_count"])),
            ("initializers", f"{initializers['count']} tensors, {format_bytes(initializers['total_bytes'])}"),
        ]),
        Table("inputs", ["name", "dtype", "shape"], io_rows(report["inputs"])),
        Table("outputs", ["name", "dtype", "shape"], io_rows(report["outputs"])),
        Table("largest initializers", ["name", "dtype", "shape", "size"],
              [[e["name"], e["dtype"], format_shape(e["shape"]), format_bytes(e["nbytes"])]
               for e in initializers["largest"]]),
        ops_table("ops", "op", report["op_histogram"]),
    ]
    if "nodes" in report:
        with_attributes = any("attributes" in node for node in report["nodes"])
        columns = ["#", "name", "op", "inputs -> outputs"] + (["attributes"] if with_attributes else [])
        rows = []
        for node in report["nodes"]:
            row = [str(node["index"]), node["name"] or "-", node["op"],
                   f"{_names(node['inputs'])} -> {_names(node['outputs'])}"]
            if with_attributes:
                row.append(attribute_text(node["attributes"]))
            rows.append(row)
        blocks.append(Table("nodes", columns, rows))
    if "weights" in report:
        blocks.append(stats_table("initializer statistics", report["weights"]))
    return blocks


def _names(names: list[str]) -> str:
    # An omitted optional input or output is an empty name in ONNX.
    return ", ".join(name or "<omitted>" for name in names)


def onnx_dtype_name(elem_type: int) -> str:
    """NumPy-style names (float32, int64) where NumPy has the type, else the ONNX name lowercased."""
    if elem_type == onnx.TensorProto.STRING:
        return "string"
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower() if elem_type else "undefined"


def _op_name(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", DEFAULT_DOMAIN) else f"{node.domain}::{node.op_type}"


def _initializer_nbytes(tensor: onnx.TensorProto) -> int:
    if tensor.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        itemsize = 0
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def _value_info(value: onnx.ValueInfoProto) -> dict[str, Any]:
    """dtype and shape; a dimension is an int, a symbolic name, or None when the model leaves it unnamed."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return {"name": value.name, "dtype": kind or "undefined", "shape": None}
    tensor_type = value.type.tensor_type
    shape = None
    if tensor_type.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor_type.shape.dim]
    return {"name": value.name, "dtype": onnx_dtype_name(tensor_type.elem_type), "shape": shape}


def _node(index: int, node: onnx.NodeProto, with_attributes: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "name": node.name, "op": _op_name(node), "inputs": list(node.input),
                             "outputs": list(node.output)}
    if with_attributes:
        entry["attributes"] = {a.name: _attribute_value(a) for a in node.attribute}
    return entry


def _attribute_value(attribute: onnx.AttributeProto) -> Any:
    """Plain values stay values; tensors and graphs become short summaries (a weight is not an attribute to read)."""
    kind = attribute.type
    if kind == onnx.AttributeProto.TENSOR:
        array = numpy_helper.to_array(attribute.t)
        summary = {"tensor": {"dtype": onnx_dtype_name(attribute.t.data_type), "shape": list(array.shape)}}
        if array.size <= 8 and array.dtype.kind in "biuf":
            summary["tensor"]["values"] = array.ravel().tolist()
        return summary
    if kind == onnx.AttributeProto.GRAPH:
        return {"graph": attribute.g.name, "nodes": len(attribute.g.node)}
    if kind == onnx.AttributeProto.GRAPHS:
        return [{"graph": g.name, "nodes": len(g.node)} for g in attribute.graphs]
    if kind in (onnx.AttributeProto.STRING, onnx.AttributeProto.STRINGS):
        value = onnx.helper.get_attribute_value(attribute)
        decode = lambda s: s.decode("utf-8", errors="replace")  # noqa: E731
        return decode(value) if isinstance(value, bytes) else [decode(s) for s in value]
    if kind in (onnx.AttributeProto.INT, onnx.AttributeProto.INTS, onnx.AttributeProto.FLOAT,
                onnx.AttributeProto.FLOATS):
        value = onnx.helper.get_attribute_value(attribute)
        return value if isinstance(value, (int, float)) else list(value)
    return {"type": onnx.AttributeProto.AttributeType.Name(kind).lower()}

