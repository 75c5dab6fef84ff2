"""The serialized plan: the lowered graph, chosen tactics, profiles and weights in one self-describing file.

Layout (docs/plan-format.md): the shared container (engine/container.py) with magic b"POLYXPLN", the plan
format version, a JSON header and one raw buffer per constant tensor, then a SHA-256 of everything before it.
Tactic states (re-laid-out weights) are not stored: each tactic's deterministic `prepare` recomputes them at load.
"""
from __future__ import annotations

from typing import Any

from .container import pack, unpack
from .dtypes import DataType
from .enums import LayerType
from .graph import LayerSpec, LoweredGraph, TensorSpec
from .ir import Epilogue, Node
from .version import __version__

MAGIC = b"POLYXPLN"
# 2: per-profile tactics (tactic_ids, tactic_names); 3: fused residuals (a layer with params.fused_residual adds its
# last input to its output), which a version-2 reader would silently skip; 4: the typed epilogue (a layer's
# residual and activation in its own "epilogue" field instead of params keys)
FORMAT_VERSION = 4


def serialize_plan(graph: LoweredGraph, meta: dict[str, Any]) -> bytes:
    layers = []
    arrays = {}
    for spec in graph.layers:
        layer = spec.layer
        params = {k: v for k, v in layer.params.items() if k != "weights"}
        layers.append({"name": layer.name, "type": layer.type.value, "params": params,
                       "precision": layer.precision.value, "epilogue": layer.epilogue.to_json(),
                       "metadata": layer.metadata,
                       "inputs": spec.inputs, "outputs": spec.outputs, "host": spec.host,
                       "tactic_id": spec.tactic_id, "tactic_name": spec.tactic_name,
                       "tactic_ids": spec.tactic_ids, "tactic_names": spec.tactic_names})
    for index, array in graph.constants.items():
        arrays[f"const{index}"] = array
    header = {
        "engine_version": __version__,
        "meta": meta,
        "tensors": [{"name": t.name, "dtype": t.dtype.value, "shape": None if t.shape is None else list(t.shape)}
                    for t in graph.tensors],
        "layers": layers,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "shape_inputs": graph.shape_inputs,
    }
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


def deserialize_plan(data: bytes) -> tuple[LoweredGraph, dict[str, Any]]:
    header, arrays = unpack(data, MAGIC, FORMAT_VERSION, "plan")
    try:
        tensors = [TensorSpec(t["name"], DataType(t["dtype"]), None if t["shape"] is None else tuple(t["shape"]))
                   for t in header["tensors"]]
        constants = {int(name[5:]): array for name, array in arrays.items() if name.startswith("const")}
        layers = []
        for entry in header["layers"]:
            params = dict(entry["params"])
            outputs = list(entry["outputs"])
            if entry["type"] == LayerType.CONSTANT.value:
                params["weights"] = constants[outputs[0]]
            epilogue = Epilogue.from_json(entry["epilogue"], f"layer '{entry['name']}'")
            if epilogue.residual is not None and epilogue.residual >= len(entry["inputs"]):
                raise ValueError(f"layer '{entry['name']}': epilogue residual {epilogue.residual} is not one of its "
                                 f"{len(entry['inputs'])} inputs")
            layer = Node(LayerType(entry["type"]), entry["name"], params, precision=DataType(entry["precision"]),
                         epilogue=epilogue, metadata=entry.get("metadata") or {})
            layers.append(LayerSpec(layer, list(entry["inputs"]), outputs, bool(entry["host"]),
                                    int(entry["tactic_id"]), entry.get("tactic_name", ""),
                                    [int(t) for t in entry["tactic_ids"]], list(entry["tactic_names"])))
        graph = LoweredGraph(tensors, layers, list(header["inputs"]), list(header["outputs"]), constants,
                             list(header.get("shape_inputs", [])))
    except (KeyError, TypeError, ValueError) as exc:
        from .errors import PlanFormatError

        raise PlanFormatError(f"plan: header is malformed ({type(exc).__name__}: {exc})") from None
    meta = dict(header.get("meta", {}))
    meta["engine_version"] = header.get("engine_version")
    return graph, meta
