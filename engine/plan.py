"""The serialized plan: the lowered graph, chosen tactics, profiles and weights in one self-describing file.

Layout (docs/plan-format.md): the shared container (engine/container.py) with magic b"POLYXPLN", the plan
format version, a JSON header and one raw buffer per constant tensor, then a SHA-256 of everything before it.
Tactic states (re-laid-out weights) are not stored: each tactic's deterministic `prepare` recomputes them at load.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .container import pack, unpack
from .dtypes import DataType, nptype
from .enums import (
    ActivationType,
    BoundingBoxFormat,
    ElementWiseOperation,
    LayerType,
    MatrixOperation,
    PaddingMode,
    PoolingType,
    ReduceOperation,
    TopKOperation,
    UnaryOperation,
)
from .errors import PlanFormatError
from .evaluator import output_infos
from .graph import LayerSpec, LoweredGraph, TensorSpec, host_flags
from .ir import Epilogue, Node
from .ops.base import TensorInfo
from .version import __version__

MAGIC = b"POLYXPLN"
# 2: per-profile tactics (tactic_ids, tactic_names); 3: fused residuals (a layer with params.fused_residual adds its
# last input to its output), which a version-2 reader would silently skip; 4: the typed epilogue (a layer's
# residual and activation in its own "epilogue" field instead of params keys); 5: a layer's forced output types
# ("output_types": {output position: dtype}, set_output_type or INT8 outputs), which loading checks the recorded
# tensor dtypes against (a version-4 plan gives no way to tell a forced dtype from a tampered one)
FORMAT_VERSION = 5


def serialize_plan(graph: LoweredGraph, meta: dict[str, Any]) -> bytes:
    layers = []
    arrays = {}
    for spec in graph.layers:
        layer = spec.layer
        params = {k: v for k, v in layer.params.items() if k != "weights"}
        layers.append({"name": layer.name, "type": layer.type.value, "params": params,
                       "precision": layer.precision.value, "epilogue": layer.epilogue.to_json(),
                       "output_types": {str(k): DataType(v).value for k, v in sorted(layer.output_types.items())},
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
    """The plan's graph and metadata. Beyond the checksum (which catches damage, not a crafted header), the header
    is validated field by field before anything uses it: every tensor index in range, every constant buffer of
    its tensor's dtype and shape, and every layer's params consistent with its type and recorded tensors (the
    op's own shape inference must reproduce the recorded output dtypes and static dims). Any violation is a
    PlanFormatError naming the field."""
    header, arrays = unpack(data, MAGIC, FORMAT_VERSION, "plan")
    try:
        _check_header(header)
        tensors = [TensorSpec(t["name"], DataType(t["dtype"]), None if t["shape"] is None else tuple(t["shape"]))
                   for t in header["tensors"]]
        constants = _constants(arrays, tensors)
        layers = []
        for entry in header["layers"]:
            params = dict(entry["params"])
            outputs = list(entry["outputs"])
            if entry["type"] == LayerType.CONSTANT.value:
                if len(outputs) != 1 or outputs[0] not in constants:
                    raise ValueError(f"layer '{entry['name']}': a constant layer needs one output with a buffer")
                params["weights"] = constants[outputs[0]]
            epilogue = Epilogue.from_json(entry["epilogue"], f"layer '{entry['name']}'")
            if epilogue.residual is not None and epilogue.residual >= len(entry["inputs"]):
                raise ValueError(f"layer '{entry['name']}': epilogue residual {epilogue.residual} is not one of its "
                                 f"{len(entry['inputs'])} inputs")
            layer = Node(LayerType(entry["type"]), entry["name"], params, precision=DataType(entry["precision"]),
                         epilogue=epilogue, metadata=entry.get("metadata") or {},
                         output_types={int(k): DataType(v) for k, v in entry["output_types"].items()})
            layers.append(LayerSpec(layer, list(entry["inputs"]), outputs, bool(entry["host"]),
                                    int(entry["tactic_id"]), entry.get("tactic_name", ""),
                                    [int(t) for t in entry["tactic_ids"]], list(entry["tactic_names"])))
        graph = LoweredGraph(tensors, layers, list(header["inputs"]), list(header["outputs"]), constants,
                             list(header.get("shape_inputs", [])))
        _check_layers(graph)
        for spec, host in zip(graph.layers, host_flags(graph)):
            if spec.host != host:
                raise _fail(f"layer '{spec.layer.name}' host", f"{spec.host} in the plan, but the layer runs on the "
                                                               f"{'host' if host else 'device'}")
        _check_profiles(header.get("meta"), graph)
    except PlanFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PlanFormatError(f"plan: header is malformed ({type(exc).__name__}: {exc})") from None
    meta = header.get("meta", {})
    if not isinstance(meta, dict):
        raise PlanFormatError(f"plan: 'meta' must be an object, got {type(meta).__name__}")
    meta = dict(meta)
    meta["engine_version"] = header.get("engine_version")
    return graph, meta


# Params that hold an enum value (as NetworkDefinition's add_* methods store them), checked at load: a value the
# kernels do not know would otherwise fall through to a default branch (an unknown padding_mode pads as explicit).
# Keyed by param name, or by (layer type, name) where the name means different things per layer type.
ENUM_PARAMS: dict[Any, type] = {
    "padding_mode": PaddingMode, "activation_type": ActivationType, "pooling_type": PoolingType,
    "op0": MatrixOperation, "op1": MatrixOperation, "to_type": DataType,
    (LayerType.ELEMENTWISE.value, "op"): ElementWiseOperation, (LayerType.UNARY.value, "op"): UnaryOperation,
    (LayerType.REDUCE.value, "op"): ReduceOperation, (LayerType.TOPK.value, "op"): TopKOperation,
    (LayerType.NMS.value, "bounding_box_format"): BoundingBoxFormat,
}


def _check_enum_params(layer: dict[str, Any]) -> None:
    for key, value in layer["params"].items():
        enum = ENUM_PARAMS.get((layer["type"], key), ENUM_PARAMS.get(key))
        if enum is not None and value not in {member.value for member in enum}:
            raise _fail(f"layer '{layer['name']}' params.{key}", f"{value!r} is not a {enum.__name__}")


def _fail(field: str, problem: str) -> PlanFormatError:
    return PlanFormatError(f"plan: {field}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_indices(field: str, values: Any, count: int, optional: bool = False) -> None:
    if not isinstance(values, list):
        raise _fail(field, f"must be a list of tensor indices, got {values!r:.100}")
    for value in values:
        if value is None and optional:
            continue
        if not _is_int(value) or not 0 <= value < count:
            raise _fail(field, f"tensor index {value!r} is not in 0..{count - 1}")


def _check_header(header: dict[str, Any]) -> None:
    """Structure and ranges of every field the graph is built from (the container checked the buffers)."""
    for key, kind in (("tensors", list), ("layers", list), ("inputs", list), ("outputs", list)):
        if not isinstance(header.get(key), kind):
            raise _fail(f"'{key}'", f"must be a {kind.__name__}, got {type(header.get(key)).__name__}")
    dtypes = {d.value for d in DataType}
    for position, tensor in enumerate(header["tensors"]):
        field = f"tensors[{position}]"
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise _fail(field, f"must be an object with a string name, got {tensor!r:.100}")
        if tensor.get("dtype") not in dtypes:
            raise _fail(f"{field} ('{tensor['name']}') dtype", f"{tensor.get('dtype')!r} is not a known data type")
        shape = tensor.get("shape")
        if shape is not None and (not isinstance(shape, list) or not all(_is_int(d) and d >= -1 for d in shape)):
            raise _fail(f"{field} ('{tensor['name']}') shape", f"must be null or a list of dims >= -1, got {shape!r}")
    count = len(header["tensors"])
    for key in ("inputs", "outputs", "shape_inputs"):
        _check_indices(f"'{key}'", header.get(key, []), count)
    if not set(header.get("shape_inputs", [])) <= set(header["inputs"]):
        raise _fail("'shape_inputs'", "must be a subset of the inputs")
    io = header["inputs"] + header["outputs"]
    if len(set(io)) != len(io):
        raise _fail("'inputs'/'outputs'", "a tensor is listed twice")
    layer_types = {t.value for t in LayerType}
    produced: set[int] = set()
    for position, layer in enumerate(header["layers"]):
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
            raise _fail(f"layers[{position}]", f"must be an object with a string name, got {layer!r:.100}")
        field = f"layer '{layer['name']}'"
        if layer.get("type") not in layer_types:
            raise _fail(f"{field} type", f"{layer.get('type')!r} is not a known layer type")
        if layer.get("precision") not in dtypes:
            raise _fail(f"{field} precision", f"{layer.get('precision')!r} is not a known data type")
        if not isinstance(layer.get("params"), dict):
            raise _fail(f"{field} params", "must be an object")
        _check_enum_params(layer)
        forced = layer.get("output_types")
        if not isinstance(forced, dict) or not all(
                isinstance(k, str) and k.isdigit() and int(k) < len(layer.get("outputs") or []) and v in dtypes
                for k, v in forced.items()):
            raise _fail(f"{field} output_types", f"must map output positions to known data types, got {forced!r:.100}")
        _check_indices(f"{field} inputs", layer.get("inputs"), count, optional=True)
        _check_indices(f"{field} outputs", layer.get("outputs"), count)
        for output in layer["outputs"]:
            if output in produced or output in header["inputs"]:
                raise _fail(f"{field} outputs", f"tensor {output} is produced twice (or is a network input)")
            produced.add(output)
        if not isinstance(layer.get("host"), bool):
            raise _fail(f"{field} host", f"must be true or false, got {layer.get('host')!r}")
        ids = layer.get("tactic_ids")
        if not _is_int(layer.get("tactic_id")) or not isinstance(ids, list) or not all(_is_int(t) for t in ids):
            raise _fail(f"{field} tactics", "tactic_id and tactic_ids must be integers")
        if not isinstance(layer.get("tactic_names"), list) or len(layer["tactic_names"]) != len(ids):
            raise _fail(f"{field} tactic_names", "must be a list as long as tactic_ids")
    for layer in header["layers"]:
        for i in layer["inputs"]:
            if i is not None and i not in produced and i not in header["inputs"]:
                raise _fail(f"layer '{layer['name']}' inputs", f"tensor {i} is neither an input nor produced by "
                                                               "a layer")
    for i in header["outputs"]:
        if i not in produced:
            raise _fail("'outputs'", f"tensor {i} is not produced by any layer")


def _constants(arrays: dict[str, Any], tensors: list[TensorSpec]) -> dict[int, Any]:
    """The 'const<index>' buffers, each of its tensor's dtype and shape."""
    constants = {}
    for name, array in arrays.items():
        index = name[5:]
        if not name.startswith("const") or not index.isdigit() or not int(index) < len(tensors):
            raise _fail(f"buffer {name!r}", "is not 'const<tensor index>' of an existing tensor")
        tensor = tensors[int(index)]
        if array.dtype != np.dtype(nptype(tensor.dtype)) or (tensor.shape is not None and
                                                              tuple(array.shape) != tensor.shape):
            raise _fail(f"buffer {name!r}", f"{array.dtype} of shape {list(array.shape)} does not match tensor "
                                            f"'{tensor.name}' ({tensor.dtype.value} {list(tensor.shape or [])})")
        constants[int(index)] = array
    return constants


def _check_layers(graph: LoweredGraph) -> None:
    """Each layer's own shape inference, on the recorded input tensors, must give the recorded output dtypes
    and agree with every static recorded dim: a crafted param (a conv stride of 0, a changed IO dtype) fails
    here, before any kernel runs."""
    for spec in graph.layers:
        layer = spec.layer
        if layer.type == LayerType.CONSTANT:
            continue
        infos = [None if i is None else TensorInfo(graph.tensors[i].shape, graph.tensors[i].dtype,
                                                   graph.constants.get(i)) for i in spec.inputs]
        if any(info is not None and info.shape is None for info in infos):
            continue  # unknown rank: nothing to compare with
        field = f"layer '{layer.name}' ({layer.type.value})"
        try:
            results = output_infos(layer, infos)
        except Exception as exc:  # noqa: BLE001 - an op's inference raises many types for invalid params
            raise _fail(field, f"its params or inputs are invalid ({type(exc).__name__}: {exc})") from None
        if len(results) != len(spec.outputs):
            raise _fail(f"{field} outputs", f"the layer makes {len(results)} outputs, the plan lists "
                                            f"{len(spec.outputs)}")
        for position, (out, (shape, dtype)) in enumerate(zip(spec.outputs, results)):
            tensor = graph.tensors[out]
            dtype = layer.output_types.get(position, DataType(dtype))
            # An INT8 layer's output type is set by the fusion that made it (INT8 with an output scale, else the
            # dequantized float), not by its op's inference: only its shape is checked.
            if DataType(dtype) != tensor.dtype and not layer.params.get("int8"):
                raise _fail(f"{field} output '{tensor.name}'", f"dtype {tensor.dtype.value} in the plan, the layer "
                                                               f"makes {DataType(dtype).value}")
            if shape is None or tensor.shape is None:
                continue
            if len(shape) != len(tensor.shape) or any(a >= 0 and b >= 0 and a != b
                                                      for a, b in zip(shape, tensor.shape)):
                raise _fail(f"{field} output '{tensor.name}'", f"shape {list(tensor.shape)} in the plan, the layer "
                                                               f"makes {list(shape)}")


def _check_profiles(meta: Any, graph: LoweredGraph) -> None:
    """meta.profiles: per profile, {input name: [min, opt, max]}, each a shape of the input's rank."""
    profiles = meta.get("profiles", []) if isinstance(meta, dict) else []
    if not isinstance(profiles, list):
        raise _fail("meta 'profiles'", f"must be a list, got {type(profiles).__name__}")
    ranks = {graph.tensors[i].name: None if graph.tensors[i].shape is None else len(graph.tensors[i].shape)
             for i in graph.inputs}
    for position, profile in enumerate(profiles):
        if not isinstance(profile, dict):
            raise _fail(f"meta profiles[{position}]", f"must be an object, got {profile!r:.100}")
        for name, shapes in profile.items():
            field = f"meta profiles[{position}] '{name}'"
            if name not in ranks:
                raise _fail(field, "is not an input of the plan")
            if not (isinstance(shapes, list) and len(shapes) == 3 and all(
                    isinstance(s, list) and all(_is_int(d) and d >= 0 for d in s) and
                    (ranks[name] is None or len(s) == ranks[name]) for s in shapes)):
                raise _fail(field, f"must be [min, opt, max] shapes of rank {ranks[name]}, got {shapes!r:.100}")
