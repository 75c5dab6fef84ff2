"""The lowered graph shared by the builder's tactic sweep, the plan file and the runtime.

After the passes, the builder's ir.Graph becomes flat lists: tensors by index and layers by index, each layer
knowing its input/output tensor indices, whether it runs on the host (shape arithmetic on small integer tensors,
evaluated whenever input shapes change) or on the device (through its tactic), and the tactic chosen for it.
Nothing here looks anything up by name on the hot path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bfloat16 import bfloat16_positions, widened_info
from .dtypes import DataType, nptype
from .enums import LayerType, TensorFormat
from .errors import DataDependentShapeError, ShapeError
from .evaluator import compute_host_layer, output_infos
from .ir import Graph, Node, Value
from .ops.base import TensorInfo, layer_impl
from .tactics.base import TacticContext

HOST_DTYPES = (DataType.INT32, DataType.INT64, DataType.BOOL)
# Network inputs this small, of static shape and rank <= 1, are *shape inputs* (TensorRT's shape tensors) when
# they are integers, or floats read by a layer whose output shape follows values (Resize scales, Range bounds,
# OneHot depth): their values are read on the host when input shapes are set, so the layers they drive (Reduce
# axes, TopK k, Reshape dims fed as inputs, ...) get exact output shapes.
MAX_SHAPE_INPUT_ELEMENTS = 16
MAX_HOST_ELEMENTS = 16
# Layer type -> first input index whose value sets the output shape (Resize scales/sizes, Range bounds, depth).
VALUE_SHAPED_INPUTS = {LayerType.RESIZE: 1, LayerType.FILL: 0, LayerType.ONE_HOT: 1}
# (layer type, input position) of integer operands that are data, never shape values: a network input read only
# there stays an ordinary input (an RNN's sequence_lens changes per batch, not the engine's shapes; the values
# NonZero and Unique search change per execution, and their output sizes with them).
DATA_INTEGER_INPUTS = frozenset({(LayerType.RNN_V2, 4), (LayerType.NON_ZERO, 0), (LayerType.UNIQUE, 0)})


def _small_static(tensor, limit: int) -> bool:
    shape = tensor.shape
    return shape is not None and all(d >= 0 for d in shape) and int(np.prod(shape, dtype=np.int64)) <= limit


def shape_input_names(graph: Graph) -> set[str]:
    names = set()
    for value in graph.inputs:
        if value.shape is None or len(value.shape) > 1 or not _small_static(value, MAX_SHAPE_INPUT_ELEMENTS):
            continue
        if value.uses and all((node.type, position) in DATA_INTEGER_INPUTS for node, position in value.uses):
            continue
        if value.dtype in (DataType.INT32, DataType.INT64) or (value.dtype.is_floating and any(
                node.type in VALUE_SHAPED_INPUTS and position >= VALUE_SHAPED_INPUTS[node.type]
                for node, position in value.uses)):
            names.add(value.name)
    return names


def _host_sized(tensor) -> bool:
    """Outputs a host layer may produce: integer/bool shape vectors, or any tiny tensor of static shape."""
    if tensor.dtype in HOST_DTYPES and tensor.shape is not None and len(tensor.shape) <= 1:
        return True
    return _small_static(tensor, MAX_HOST_ELEMENTS)


@dataclass
class TensorSpec:
    name: str
    dtype: DataType
    shape: tuple[int, ...] | None  # build-time shape, -1 for dynamic dims
    format: TensorFormat = TensorFormat.LINEAR  # memory layout (tensor_formats.py); dims stay NCHW-ordered


@dataclass
class LayerSpec:
    layer: Node            # type, name, params, precision, epilogue, metadata (its Values are not used after lowering)
    inputs: list[int | None]
    outputs: list[int]
    host: bool
    tactic_id: int = 0     # profile 0's tactic (what single-profile readers such as `inspect` show)
    tactic_name: str = ""
    tactic_ids: list[int] = field(default_factory=list)    # one per optimization profile (device layers only)
    tactic_names: list[str] = field(default_factory=list)
    view: bool = False     # a reshape-only SHUFFLE whose output is a view of its input (engine/shuffle_views.py)


@dataclass
class LoweredGraph:
    tensors: list[TensorSpec]
    layers: list[LayerSpec]
    inputs: list[int]
    outputs: list[int]
    constants: dict[int, np.ndarray] = field(default_factory=dict)
    shape_inputs: list[int] = field(default_factory=list)
    refit: Any = None  # engine.refittable.RefitTable of a refittable engine (imported there: it reads this module)

    @property
    def device_layers(self) -> list[LayerSpec]:
        return [spec for spec in self.layers if not spec.host and spec.layer.type != LayerType.CONSTANT]


def lower(graph: Graph) -> LoweredGraph:
    """Index the optimized graph: tensors and layers by position, each layer marked host or device."""
    index: dict[int, int] = {}
    tensors: list[TensorSpec] = []

    def tid(value: Value) -> int:
        if id(value) not in index:
            index[id(value)] = len(tensors)
            tensors.append(TensorSpec(value.name, value.dtype, value.shape, value.format))
        return index[id(value)]

    inputs = [tid(v) for v in graph.inputs]
    shape_names = shape_input_names(graph)
    shape_inputs = [tid(v) for v in graph.inputs if v.name in shape_names]
    layers: list[LayerSpec] = []
    constants: dict[int, np.ndarray] = {}
    for node in graph.nodes:
        ins = [None if v is None else tid(v) for v in node.inputs]
        outs = [tid(v) for v in node.outputs]
        if node.type == LayerType.CONSTANT:
            constants[outs[0]] = node.params["weights"]
        layers.append(LayerSpec(node, ins, outs, host=False))
    outputs = [tid(v) for v in graph.outputs]
    lowered = LoweredGraph(tensors, layers, inputs, outputs, constants, shape_inputs)
    for spec, host in zip(layers, host_flags(lowered)):
        spec.host = host
    return lowered


def host_flags(graph: LoweredGraph) -> list[bool]:
    """Which layers run on the host: constants, Shape, and layers whose inputs are all host-known and whose
    outputs are host-sized (not plugins). The one definition: `lower` sets it, plan loading checks it."""
    host_known: set[int] = set(graph.shape_inputs)
    flags = []
    for spec in graph.layers:
        layer_type = spec.layer.type
        present = [i for i in spec.inputs if i is not None]
        host = layer_type in (LayerType.CONSTANT, LayerType.SHAPE) or (
            bool(present) and all(i in host_known for i in present)
            and all(_host_sized(graph.tensors[o]) for o in spec.outputs) and layer_type != LayerType.PLUGIN_V2
            and not is_data_dependent(layer_type))  # sized by running: the staged runtime runs it on the device
        if host:
            host_known.update(spec.outputs)
        flags.append(host)
    return flags


@dataclass
class ResolvedShapes:
    shapes: list[tuple[int, ...] | None]
    host_values: dict[int, np.ndarray]
    # Index in graph.layers of the first data-dependent layer (NonZero, NMS) whose output sizes were not given
    # (its outputs, and the tensors computed from them, are None). None: everything is resolved.
    pending: int | None = None


def is_data_dependent(layer_type: LayerType) -> bool:
    """Whether a layer's output sizes depend on its input values, so they are known only after running it."""
    return not layer_impl(layer_type).static_output_shape


def resolve_shapes(graph: LoweredGraph, input_shapes: dict[int, tuple[int, ...]],
                   input_values: dict[int, np.ndarray] | None = None,
                   data_shapes: dict[int, tuple[int, ...]] | None = None,
                   upper_bounds: bool = False, resume: ResolvedShapes | None = None) -> ResolvedShapes:
    """Concrete shapes of every tensor for these input shapes; host layers are evaluated on the way.

    A data-dependent layer's outputs take their shapes from `data_shapes` (what a run of it produced); missing
    there, they take the layer's upper bound when `upper_bounds` (the builder times and plans at it), otherwise
    they stay unknown (None), as does every tensor computed from them, and the first such layer is `pending`:
    the runtime runs up to it, then resolves again with its sizes, from where it stopped (`resume`: the earlier
    result for the same input shapes, whose resolved layers are not evaluated again)."""
    if resume is not None:
        shapes, values = list(resume.shapes), dict(resume.host_values)
    else:
        shapes = [None] * len(graph.tensors)
        values = dict(graph.constants)
        for idx, shape in input_shapes.items():
            shapes[idx] = tuple(shape)
        if input_values:
            values.update(input_values)
        for idx, array in graph.constants.items():
            shapes[idx] = tuple(array.shape)
    data_shapes = data_shapes or {}
    pending = None
    first = 0 if resume is None or resume.pending is None else resume.pending  # every layer before it resolved
    for position in range(first, len(graph.layers)):
        spec = graph.layers[position]
        layer = spec.layer
        if layer.type == LayerType.CONSTANT or (resume is not None and shapes[spec.outputs[0]] is not None):
            continue
        if any(i is not None and shapes[i] is None for i in spec.inputs):
            continue  # reads a tensor sized by a data-dependent layer that has not run yet
        infos = [None if i is None else TensorInfo(shapes[i], graph.tensors[i].dtype, values.get(i))
                 for i in spec.inputs]
        data_dependent = is_data_dependent(layer.type)
        if data_dependent and all(o in data_shapes for o in spec.outputs):
            results = [(data_shapes[o], None) for o in spec.outputs]
        elif data_dependent and not upper_bounds:
            pending = position if pending is None else pending
            continue
        else:
            try:
                results = (layer_impl(layer.type).upper_bound if data_dependent else output_infos)(layer, infos)
            except Exception as exc:  # noqa: BLE001 - surfaced as a shape error naming the layer
                raise ShapeError(f"layer '{layer.name}' ({layer.type.value}): cannot compute output shape for "
                                 f"these input shapes: {exc}") from None
        for out, (shape, _dtype) in zip(spec.outputs, results):
            if shape is None or any(d < 0 for d in shape):
                raise DataDependentShapeError(f"layer '{layer.name}' ({layer.type.value}): output "
                                              f"'{graph.tensors[out].name}' has a data-dependent shape {shape}, "
                                              "which the engine cannot plan")
            shapes[out] = tuple(int(d) for d in shape)
        if spec.host:
            for out, value in zip(spec.outputs, compute_host_layer(layer, infos)):
                values[out] = np.asarray(value, dtype=nptype(graph.tensors[out].dtype)).reshape(shapes[out])
    return ResolvedShapes(shapes, values, pending)


def tactic_context(graph: LoweredGraph, spec: LayerSpec, device: str, shapes=None,
                   extra: dict | None = None, widen: bool = True) -> TacticContext:
    """What a tactic sees of a layer: TensorInfo for its inputs (with constant values) and outputs, at `shapes` or
    the build shapes, on `device`, with the build options `extra`. BF16 tensors show as FLOAT (bfloat16.py) unless
    `widen` is False (for tactics with `reads_bfloat16`)."""
    def info(i):
        if i is None:
            return None
        shape = shapes[i] if shapes is not None else graph.tensors[i].shape
        return TensorInfo(shape, graph.tensors[i].dtype, graph.constants.get(i))

    inputs, outputs = [info(i) for i in spec.inputs], [info(o) for o in spec.outputs]
    if widen and widened_positions(graph, spec) is not None:  # tactics run bfloat16 layers in float32
        inputs, outputs = [widened_info(i) for i in inputs], [widened_info(o) for o in outputs]
    formats = tuple(None if i is None else graph.tensors[i].format for i in spec.inputs), \
        tuple(graph.tensors[o].format for o in spec.outputs)
    return TacticContext(spec.layer, inputs, outputs, device, dict(extra or {}), *formats)


def widened_positions(graph: LoweredGraph, spec: LayerSpec) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The BF16 input/output positions of a layer its tactics run in float32 (bfloat16.py), else None."""
    return bfloat16_positions(spec.layer.type, [None if i is None else graph.tensors[i].dtype for i in spec.inputs],
                              [graph.tensors[o].dtype for o in spec.outputs])
