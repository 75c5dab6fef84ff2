"""The serialized plan: the lowered graph, chosen tactics, profiles and weights in one self-describing file.

Layout (docs/plan-format.md): the shared container (engine/container.py) with magic b"POLYXPLN", the plan
format version, a JSON header and one raw buffer per constant tensor, then a SHA-256 of everything before it.
Tactic states (re-laid-out weights) are not stored: each tactic's deterministic `prepare` recomputes them at load.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .channels_last_choice import validate_choice_record
from .compatibility import validate_record
from .config import ProfilingVerbosity
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
    RNNDirection,
    RNNOperation,
    TensorFormat,
    TopKOperation,
    UnaryOperation,
)
from .errors import EngineError, PlanFormatError
from .evaluator import output_infos
from .graph import LayerSpec, LoweredGraph, TensorSpec, host_flags
from .ir import Epilogue, Node
from .ops.base import TensorInfo
from .plugin import plugin_refusal
from .refittable import add_stripped_placeholders, refit_table_from_json
from .shuffle_views import ViewFacts, view_refusal
from .version import __version__

MAGIC = b"POLYXPLN"
# 2: per-profile tactics (tactic_ids, tactic_names); 3: fused residuals (a layer with params.fused_residual adds its
# last input to its output), which a version-2 reader would silently skip; 4: the typed epilogue (a layer's
# residual and activation in its own "epilogue" field instead of params keys); 5: a layer's forced output types
# ("output_types": {output position: dtype}, set_output_type or INT8 outputs), which loading checks the recorded
# tensor dtypes against (a version-4 plan gives no way to tell a forced dtype from a tampered one); 6: control-flow
# layers (CONDITIONAL, LOOP) with their subgraphs in a layer's "subgraphs" field, each a graph of the same form, and
# their constants in buffers named "<layer index>.<subgraph name>/const<tensor index>" (nested: prefixes chain), and
# the "refit" table of a refittable engine (named weights -> constant tensors; a stripped plan has no buffers for
# them), which a version-5 reader would load as an engine that cannot refit and, when stripped, that computes with
# missing weights; and meta "compatibility" (engine version, compute capability, VERSION_COMPATIBLE, hardware
# compatibility level), checked when loading, and meta "profiling_verbosity" (what inspect may show); and the INT8
# layers made by Q/DQ propagation (params.int8.input_scales: ElementWise/Activation/Pooling/Concat/Scale layers
# reading INT8; params.int8.residual_scale: an INT8 residual), which a version-5 reader would run on raw INT8 values;
# 7: tensor formats (a tensor's "format", written when not LINEAR: "HWC" for channels-last, and REFORMAT layers'
# params.to_format), which a version-6 reader would run as NCHW memory; 8: control-flow subgraph layers' chosen
# tactics (a subgraph layer's "tactic_id"/"tactic_name", 0/"" for the reference kernel; engine/body_tactics.py),
# which a version-7 reader would ignore; 9: a layer's "view" (a reshape-only SHUFFLE whose output shares its input's
# memory, engine/shuffle_views.py), which a version-8 reader would run on an output that has no memory of its own
FORMAT_VERSION = 9
SUBGRAPHS = "subgraphs"


def serialize_plan(graph: LoweredGraph, meta: dict[str, Any]) -> bytes:
    """The plan file of `graph` (its `refit` table, if any, included; a stripped one leaves out those buffers)."""
    arrays: dict[str, np.ndarray] = {}
    header = {"engine_version": __version__, "meta": meta, **_graph_fields(graph, arrays, ""),
              "refit": None if graph.refit is None else graph.refit.to_json()}
    if graph.refit is not None and graph.refit.stripped:
        for index in graph.refit.tensors():
            arrays.pop(f"const{index}", None)
    return pack(MAGIC, FORMAT_VERSION, header, arrays)


def _graph_fields(graph: LoweredGraph, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """A graph's tensors, layers and IO as JSON, its constants added to `arrays` under `prefix`."""
    from .subgraph import as_lowered

    layers = []
    for position, spec in enumerate(graph.layers):
        layer = spec.layer
        params = {k: v for k, v in layer.params.items() if k not in ("weights", SUBGRAPHS)}
        entry = {"name": layer.name, "type": layer.type.value, "params": params,
                 "precision": layer.precision.value, "epilogue": layer.epilogue.to_json(),
                 "output_types": {str(k): DataType(v).value for k, v in sorted(layer.output_types.items())},
                 "metadata": layer.metadata,
                 "inputs": spec.inputs, "outputs": spec.outputs, "host": spec.host,
                 "tactic_id": spec.tactic_id, "tactic_name": spec.tactic_name,
                 "tactic_ids": spec.tactic_ids, "tactic_names": spec.tactic_names, "view": spec.view}
        if SUBGRAPHS in layer.params:
            entry[SUBGRAPHS] = {name: _graph_fields(as_lowered(sub), arrays, f"{prefix}{position}.{name}/")
                                for name, sub in layer.params[SUBGRAPHS].items()}
        layers.append(entry)
    for index, array in graph.constants.items():
        arrays[f"{prefix}const{index}"] = array
    return {
        "tensors": [{"name": t.name, "dtype": t.dtype.value, "shape": None if t.shape is None else list(t.shape),
                     **({} if t.format == TensorFormat.LINEAR else {"format": t.format.value})}
                    for t in graph.tensors],
        "layers": layers,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "shape_inputs": graph.shape_inputs,
    }


def deserialize_plan(data: bytes) -> tuple[LoweredGraph, dict[str, Any]]:
    """The plan's graph and metadata. Beyond the checksum (which catches damage, not a crafted header), the header
    is validated field by field before anything uses it: every tensor index in range, every constant buffer of
    its tensor's dtype and shape, and every layer's params consistent with its type and recorded tensors (the
    op's own shape inference must reproduce the recorded output dtypes and static dims). Any violation is a
    PlanFormatError naming the field."""
    header, arrays = unpack(data, MAGIC, FORMAT_VERSION, "plan")
    try:
        consumed: set[str] = set()
        graph = _load_graph(header, arrays, "", "", consumed)
        stray = sorted(set(arrays) - consumed)
        if stray:
            raise _fail(f"buffer {stray[0]!r}", "belongs to no graph of the plan")
        _check_profiles(header.get("meta"), graph)
        _check_shape_input_values(header.get("meta"), graph)
        _check_recorded_settings(header.get("meta"))
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


def _load_graph(header: dict[str, Any], arrays: dict[str, Any], prefix: str, where: str,
                consumed: set[str]) -> LoweredGraph:
    """One graph of the plan (the network, or a control-flow layer's subgraph when `where` names it), validated
    field by field, its subgraphs loaded the same way."""
    _check_header(header, where)
    tensors = [TensorSpec(t["name"], DataType(t["dtype"]), None if t["shape"] is None else tuple(t["shape"]),
                          TensorFormat(t.get("format", TensorFormat.LINEAR.value))) for t in header["tensors"]]
    own = {name[len(prefix):]: array for name, array in arrays.items()
           if name.startswith(prefix) and "/" not in name[len(prefix):]}
    constants = _constants(own, tensors, where)
    if not where:  # the network's stripped refittable weights: placeholders until a refit gives them
        add_stripped_placeholders(header["refit"], tensors, constants)
    consumed.update(prefix + name for name in own)
    layers = []
    for position, entry in enumerate(header["layers"]):
        params = dict(entry["params"])
        if where and (entry["tactic_ids"] or not Epilogue.from_json(entry["epilogue"], "").empty):
            raise _fail(f"{where}layer '{entry['name']}'", "a subgraph layer has no per-profile tactics "
                                                           "(tactic_ids) and no epilogue")
        subgraphs = entry.get(SUBGRAPHS)
        if (subgraphs is not None) != (entry["type"] in (LayerType.CONDITIONAL.value, LayerType.LOOP.value)):
            raise _fail(f"{where}layer '{entry['name']}' {SUBGRAPHS}", "only CONDITIONAL and LOOP layers have "
                                                                       "subgraphs, and they must")
        if subgraphs is not None:
            expected = {"then", "else"} if entry["type"] == LayerType.CONDITIONAL.value else {"body"}
            if not isinstance(subgraphs, dict) or set(subgraphs) != expected:
                raise _fail(f"{where}layer '{entry['name']}' {SUBGRAPHS}", f"must be an object with "
                                                                           f"{sorted(expected)}")
            params[SUBGRAPHS] = {name: _load_graph(sub, arrays, f"{prefix}{position}.{name}/",
                                                   f"{where}layer '{entry['name']}' {name} subgraph: ", consumed)
                                 for name, sub in subgraphs.items()}
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
                                [int(t) for t in entry["tactic_ids"]], list(entry["tactic_names"]),
                                entry["view"]))
    graph = LoweredGraph(tensors, layers, list(header["inputs"]), list(header["outputs"]), constants,
                         list(header.get("shape_inputs", [])))
    _check_layers(graph, where)
    if not where:
        graph.refit = refit_table_from_json(header["refit"], graph)
    for spec, host in zip(graph.layers, host_flags(graph)):
        if spec.host != host:
            raise _fail(f"{where}layer '{spec.layer.name}' host", f"{spec.host} in the plan, but the layer runs "
                                                                  f"on the {'host' if host else 'device'}")
    _check_views(graph, where)
    return graph


def _check_views(graph: LoweredGraph, where: str) -> None:
    """A layer marked as a view must be one (engine/shuffle_views.py): a tampered mark would make a layer's output
    share memory it must not (a transpose's, a user buffer)."""
    facts = None
    for spec in graph.layers:
        if not spec.view:
            continue
        field = f"{where}layer '{spec.layer.name}' view"
        if where:
            raise _fail(field, "a subgraph layer runs through its subgraph's own kernels and is never a view")
        facts = facts or ViewFacts.of(graph)
        reason = view_refusal(graph, spec, facts)
        if reason is not None:
            raise _fail(field, f"true in the plan, but the layer cannot share its input's memory: {reason}")


# Params that hold an enum value (as NetworkDefinition's add_* methods store them), checked at load: a value the
# kernels do not know would otherwise fall through to a default branch (an unknown padding_mode pads as explicit).
# Keyed by param name, or by (layer type, name) where the name means different things per layer type.
ENUM_PARAMS: dict[Any, type] = {
    "padding_mode": PaddingMode, "activation_type": ActivationType, "pooling_type": PoolingType,
    "op0": MatrixOperation, "op1": MatrixOperation, "to_type": DataType, "to_format": TensorFormat,
    (LayerType.ELEMENTWISE.value, "op"): ElementWiseOperation, (LayerType.UNARY.value, "op"): UnaryOperation,
    (LayerType.REDUCE.value, "op"): ReduceOperation, (LayerType.TOPK.value, "op"): TopKOperation,
    (LayerType.RNN_V2.value, "op"): RNNOperation, (LayerType.RNN_V2.value, "direction"): RNNDirection,
    (LayerType.NMS.value, "bounding_box_format"): BoundingBoxFormat,
}


def _check_enum_params(layer: dict[str, Any]) -> None:
    for key, value in layer["params"].items():
        enum = ENUM_PARAMS.get((layer["type"], key), ENUM_PARAMS.get(key))
        if enum is not None and value not in {member.value for member in enum}:
            raise _fail(f"layer '{layer['name']}' params.{key}", f"{value!r} is not a {enum.__name__}")


def _is_scale(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_int8_params(field: str, int8: Any, inputs: int) -> None:
    """params.int8 of an INT8 layer: every scale a positive finite number (a tampered 0 or NaN would make every
    value of the layer inf or NaN without an error)."""
    known = {"input_scale", "weight_scales", "input_scales", "residual_scale"}
    if not isinstance(int8, dict) or not int8 or not set(int8) <= known:
        raise _fail(f"{field} params.int8", f"must be an object with keys among {sorted(known)}, got {int8!r:.100}")
    for key in ("input_scale", "residual_scale"):
        if key in int8 and not _is_scale(int8[key]):
            raise _fail(f"{field} params.int8.{key}", f"must be a positive finite number, got {int8[key]!r}")
    scales = int8.get("weight_scales", [1.0])
    if not isinstance(scales, list) or not scales or not all(_is_scale(v) for v in scales):
        raise _fail(f"{field} params.int8.weight_scales", f"must be positive finite numbers, got {scales!r:.100}")
    scales = int8.get("input_scales", [None] * inputs)
    if not isinstance(scales, list) or len(scales) != inputs or not all(v is None or _is_scale(v) for v in scales):
        raise _fail(f"{field} params.int8.input_scales", f"must hold one positive finite number (or null) per "
                                                         f"input, {inputs}, got {scales!r:.100}")


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


def _check_header(header: dict[str, Any], where: str = "") -> None:
    """Structure and ranges of every field the graph is built from (the container checked the buffers). `where`
    names a subgraph (empty for the network), whose outputs may repeat its inputs."""
    if not isinstance(header, dict):
        raise _fail(f"{where}graph", f"must be an object, got {header!r:.100}")
    for key, kind in (("tensors", list), ("layers", list), ("inputs", list), ("outputs", list)):
        if not isinstance(header.get(key), kind):
            raise _fail(f"{where}'{key}'", f"must be a {kind.__name__}, got {type(header.get(key)).__name__}")
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
        _check_tensor_format(f"{field} ('{tensor['name']}') format", tensor)
    count = len(header["tensors"])
    for key in ("inputs", "outputs", "shape_inputs"):
        _check_indices(f"'{key}'", header.get(key, []), count)
    if not set(header.get("shape_inputs", [])) <= set(header["inputs"]):
        raise _fail("'shape_inputs'", "must be a subset of the inputs")
    io = header["inputs"] + header["outputs"]
    if len(set(io)) != len(io) and not (where and len(set(header["outputs"])) == len(header["outputs"])):
        raise _fail(f"{where}'inputs'/'outputs'", "a tensor is listed twice")
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
        if "int8" in layer["params"]:
            _check_int8_params(field, layer["params"]["int8"], len(layer.get("inputs") or []))
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
        if not isinstance(layer.get("tactic_name", ""), str):
            raise _fail(f"{field} tactic_name", f"must be a string, got {layer.get('tactic_name')!r:.100}")
        if where and (layer["tactic_id"] < 0 or (layer["tactic_id"] == 0) != (layer.get("tactic_name", "") == "")):
            raise _fail(f"{where}{field} tactic_id", "a subgraph layer's tactic_id is 0 with an empty tactic_name "
                                                     "(its reference kernel) or a tactic's id with its name, got "
                                                     f"{layer['tactic_id']!r} and {layer.get('tactic_name')!r}")
        names = layer.get("tactic_names")
        if not isinstance(names, list) or len(names) != len(ids) or not all(isinstance(n, str) for n in names):
            raise _fail(f"{field} tactic_names", "must be a list of strings as long as tactic_ids")
        if not isinstance(layer.get("view"), bool):
            raise _fail(f"{field} view", f"must be true or false, got {layer.get('view')!r:.100}")
    for layer in header["layers"]:
        for i in layer["inputs"]:
            if i is not None and i not in produced and i not in header["inputs"]:
                raise _fail(f"layer '{layer['name']}' inputs", f"tensor {i} is neither an input nor produced by "
                                                               "a layer")
    for i in header["outputs"]:
        if i not in produced and not (where and i in header["inputs"]):
            raise _fail(f"{where}'outputs'", f"tensor {i} is not produced by any layer")
    _check_format_boundaries(header, where)


HWC_DTYPES = (DataType.FLOAT.value, DataType.HALF.value, DataType.INT8.value)


def _format_of(tensor: dict[str, Any]) -> str:
    return tensor.get("format", TensorFormat.LINEAR.value)


def _check_tensor_format(field: str, tensor: dict[str, Any]) -> None:
    """A recorded format is a known one, and HWC only on a 4-D FLOAT/HALF/INT8 tensor (what the format pass makes:
    INT8 ones for INT8 convolution chains)."""
    if "format" not in tensor:
        return
    value = tensor["format"]
    if value not in {f.value for f in TensorFormat}:
        raise _fail(field, f"{value!r} is not a TensorFormat ({', '.join(f.value for f in TensorFormat)})")
    if value == TensorFormat.HWC.value and (not isinstance(tensor.get("shape"), list) or len(tensor["shape"]) != 4
                                            or tensor["dtype"] not in HWC_DTYPES):
        raise _fail(field, f"HWC needs a 4-D FLOAT, HALF or INT8 tensor, not {tensor['dtype']} "
                           f"{tensor.get('shape')!r}")


def _check_format_boundaries(header: dict[str, Any], where: str = "") -> None:
    """Network inputs and outputs are LINEAR (what the user's arrays are), and a REFORMAT layer's output has its
    params.to_format (LINEAR when it converts only the precision) while its input may differ: formats change only
    there. (Which tactic may run HWC tensors is checked when the engine prepares its tactics.) A subgraph's tensors
    are all LINEAR: the format pass does not enter subgraphs, and their reference kernels run no format check."""
    tensors = header["tensors"]
    if where:
        for i, tensor in enumerate(tensors):
            if _format_of(tensor) != TensorFormat.LINEAR.value:
                raise _fail(f"{where}tensors[{i}] ('{tensor['name']}') format", "a subgraph's tensors are LINEAR, "
                                                                                f"got {_format_of(tensor)!r}")
    for i in header["inputs"] + header["outputs"]:
        if _format_of(tensors[i]) != TensorFormat.LINEAR.value:
            raise _fail(f"tensors[{i}] ('{tensors[i]['name']}') format", "network inputs and outputs must be LINEAR, "
                                                                          f"got {_format_of(tensors[i])!r}")
    for layer in header["layers"]:
        if layer["type"] != LayerType.REFORMAT.value:
            continue
        expected = layer["params"].get("to_format", TensorFormat.LINEAR.value)
        made = _format_of(tensors[layer["outputs"][0]])
        if made != expected:
            raise _fail(f"layer '{layer['name']}' params.to_format", f"{expected!r}, but its output "
                                                                     f"'{tensors[layer['outputs'][0]]['name']}' is "
                                                                     f"recorded as {made!r}")


def _constants(arrays: dict[str, Any], tensors: list[TensorSpec], where: str = "") -> dict[int, Any]:
    """The 'const<index>' buffers, each of its tensor's dtype and shape."""
    constants = {}
    for name, array in arrays.items():
        index = name[5:]
        if not name.startswith("const") or not index.isdigit() or not int(index) < len(tensors):
            raise _fail(f"{where}buffer {name!r}", "is not 'const<tensor index>' of an existing tensor")
        tensor = tensors[int(index)]
        if array.dtype != np.dtype(nptype(tensor.dtype)) or (tensor.shape is not None and
                                                              tuple(array.shape) != tensor.shape):
            raise _fail(f"buffer {name!r}", f"{array.dtype} of shape {list(array.shape)} does not match tensor "
                                            f"'{tensor.name}' ({tensor.dtype.value} {list(tensor.shape or [])})")
        constants[int(index)] = array
    return constants


def _check_plugin_layer(layer) -> None:
    """A plugin layer names its plugin by type, version and namespace and holds its fields; a plugin that is not
    registered here refuses the plan (a plan never carries code)."""
    params = layer.params
    for key in ("plugin_type", "plugin_version", "plugin_namespace"):
        if not isinstance(params.get(key, ""), str) or (key != "plugin_namespace" and not params.get(key)):
            raise _fail(f"layer '{layer.name}' params.{key}", "must be a non-empty string")
    if not isinstance(params.get("fields"), dict):
        raise _fail(f"layer '{layer.name}' params.fields", "must be an object")
    refusal = plugin_refusal(layer)
    if refusal is not None:
        raise EngineError(f"cannot load the plan: {refusal}")


def _check_layers(graph: LoweredGraph, where: str = "") -> None:
    """Each layer's own shape inference, on the recorded input tensors, must give the recorded output dtypes
    and agree with every static recorded dim: a crafted param (a conv stride of 0, a changed IO dtype) fails
    here, before any kernel runs."""
    for spec in graph.layers:
        layer = spec.layer
        if layer.type == LayerType.CONSTANT:
            continue
        if layer.type == LayerType.PLUGIN_V2:
            _check_plugin_layer(layer)
        infos = [None if i is None else TensorInfo(graph.tensors[i].shape, graph.tensors[i].dtype,
                                                   graph.constants.get(i)) for i in spec.inputs]
        if any(info is not None and info.shape is None for info in infos):
            continue  # unknown rank: nothing to compare with
        field = f"{where}layer '{layer.name}' ({layer.type.value})"
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


def _profile_entries(meta: Any, key: str, names: set[str] | dict, what: str):
    """(field, name, value) of every entry of meta[key], a list with one {tensor name: value} per profile; the
    list, each profile's object and each name (one of `names`, `what` the plan has) are checked here."""
    entries = meta.get(key, []) if isinstance(meta, dict) else []
    if not isinstance(entries, list):
        raise _fail(f"meta '{key}'", f"must be a list, got {type(entries).__name__}")
    for position, profile in enumerate(entries):
        if not isinstance(profile, dict):
            raise _fail(f"meta {key}[{position}]", f"must be an object, got {profile!r:.100}")
        for name, value in profile.items():
            field = f"meta {key}[{position}] '{name}'"
            if name not in names:
                raise _fail(field, f"is not {what} of the plan")
            yield field, name, value


def _check_profiles(meta: Any, graph: LoweredGraph) -> None:
    """meta.profiles: per profile, {input name: [min, opt, max]}, each a shape of the input's rank."""
    ranks = {graph.tensors[i].name: None if graph.tensors[i].shape is None else len(graph.tensors[i].shape)
             for i in graph.inputs}
    for field, name, shapes in _profile_entries(meta, "profiles", ranks, "an input"):
        if not (isinstance(shapes, list) and len(shapes) == 3 and all(
                isinstance(s, list) and all(_is_int(d) and d >= 0 for d in s) and
                (ranks[name] is None or len(s) == ranks[name]) for s in shapes)):
            raise _fail(field, f"must be [min, opt, max] shapes of rank {ranks[name]}, got {shapes!r:.100}")


def _check_shape_input_values(meta: Any, graph: LoweredGraph) -> None:
    """meta.shape_input_values: per profile, {shape input name: [min, opt, max]}, each as many numbers as the input
    holds, min <= opt <= max (the runtime checks a context's values against them)."""
    sizes = {graph.tensors[i].name: int(np.prod(graph.tensors[i].shape or (), dtype=np.int64))
             for i in graph.shape_inputs}
    for field, name, values in _profile_entries(meta, "shape_input_values", sizes, "a shape input"):
        if not (isinstance(values, list) and len(values) == 3 and all(
                isinstance(v, list) and len(v) == sizes[name] and
                all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v) for v in values)) or \
                any(not a <= b <= c for a, b, c in zip(*values)):
            raise _fail(field, f"must be [min, opt, max] lists of {sizes[name]} numbers with min <= opt <= max, "
                               f"got {values!r:.100}")


def _check_recorded_settings(meta: Any) -> None:
    """meta.compatibility (engine/compatibility.py), meta.profiling_verbosity, meta.strongly_typed and
    meta.channels_last (engine/channels_last_choice.py; only in plans built with channels_last "auto")."""
    if not isinstance(meta, dict):
        return  # refused after the graph checks, with the other 'meta' message
    validate_record(meta.get("compatibility"))
    if meta.get("profiling_verbosity") not in {v.value for v in ProfilingVerbosity}:
        raise _fail("meta 'profiling_verbosity'", f"{meta.get('profiling_verbosity')!r} is not one of "
                                                  f"{[v.value for v in ProfilingVerbosity]}")
    if not isinstance(meta.get("strongly_typed"), bool):
        raise _fail("meta 'strongly_typed'", f"must be true or false, got {meta.get('strongly_typed')!r}")
    validate_choice_record(meta.get("channels_last"))  # BuilderConfig.channels_last "auto": what it chose
