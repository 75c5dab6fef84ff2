"""`lint`: everything wrong with a model that can be found without running it on real data, each finding tied to a
node or tensor name: onnx.checker errors, dangling and unused tensors, duplicate names, nodes onnxruntime rejects.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import onnx

from .graph_order import node_reads
from .model_io import load_model


@dataclass(frozen=True)
class Finding:
    kind: str  # checker | duplicate | dangling | unused | onnxruntime
    message: str
    node: str | None = None
    tensor: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = f"node '{self.node}': " if self.node else (f"tensor '{self.tensor}': " if self.tensor else "")
        return f"[{self.kind}] {where}{self.message}"


def lint(path: Path) -> list[Finding]:
    """All findings for the model file at `path` (empty when it is clean)."""
    path = Path(path)
    model = load_model(path, check=False, load_external_data=False)
    findings = _checker(path, model)
    findings += _names(model.graph)
    findings += _onnxruntime(path, model)
    return findings


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def _checker(path: Path, model: onnx.ModelProto) -> list[Finding]:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        message = " ".join(str(exc).split())
        return [Finding("checker", message, node=_node_in_message(message, model))]
    return []


def _node_in_message(message: str, model: onnx.ModelProto) -> str | None:
    patterns = (r"Node ?\(([^)]*)\)", r"Name: (\S+) OpType", r"In Node, \(\"([^\"]*)\"", r"node '([^']*)'",
                r"Node:\s*([^\s,]+)")
    for pattern in patterns:
        match = re.search(pattern, message)
        if match and match.group(1):
            return match.group(1)
    op = re.search(r"No Op registered for (\w+)", message) or re.search(r"(\w+)\(-?\d+\) is not a registered", message)
    if op:
        nodes = [_node_label(n, i) for i, n in enumerate(model.graph.node) if n.op_type == op.group(1)]
        return nodes[0] if nodes else None
    return None


def _names(graph: onnx.GraphProto) -> list[Finding]:
    findings: list[Finding] = []
    initializers = [i.name for i in graph.initializer]
    inputs = [i.name for i in graph.input]
    for name, count in Counter(n.name for n in graph.node if n.name).items():
        if count > 1:
            findings.append(Finding("duplicate", f"{count} nodes share this name", node=name))
    for name, count in Counter(initializers).items():
        if count > 1:
            findings.append(Finding("duplicate", f"{count} initializers share this name", tensor=name))
    for name, count in Counter(inputs).items():
        if count > 1:
            findings.append(Finding("duplicate", f"listed {count} times as a graph input", tensor=name))
    producers: dict[str, str] = {}
    for index, node in enumerate(graph.node):
        label = _node_label(node, index)
        for out in filter(None, node.output):
            if out in producers:
                findings.append(Finding("duplicate", f"also produced by node '{producers[out]}'", node=label,
                                        tensor=out))
            elif out in initializers or out in inputs:
                findings.append(Finding("duplicate", "overwrites a graph input or initializer of the same name",
                                        node=label, tensor=out))
            producers.setdefault(out, label)
    available = set(producers) | set(initializers) | set(inputs)
    read: set[str] = set()
    for index, node in enumerate(graph.node):
        for name in node_reads(node):
            read.add(name)
            if name not in available:
                findings.append(Finding("dangling", "reads a tensor that no node, input or initializer provides",
                                        node=_node_label(node, index), tensor=name))
    outputs = {o.name for o in graph.output}
    for name in outputs - available:
        findings.append(Finding("dangling", "graph output that nothing produces", tensor=name))
    for name in initializers:
        if name not in read and name not in outputs:
            findings.append(Finding("unused", "initializer that no node reads", tensor=name))
    for name in inputs:
        if name not in read and name not in outputs and name not in initializers:
            findings.append(Finding("unused", "graph input that no node reads", tensor=name))
    for name, label in producers.items():
        if name not in read and name not in outputs:
            findings.append(Finding("unused", "output that nothing reads", node=label, tensor=name))
    return findings


def _onnxruntime(path: Path, model: onnx.ModelProto) -> list[Finding]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for a rejected model
        message = " ".join(str(exc).split())
        message = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", message)
        message = re.sub(r"^Load model from \S+ failed:\s*", "", message)
        return [Finding("onnxruntime", message, node=_node_in_message(message, model))]
    return []
