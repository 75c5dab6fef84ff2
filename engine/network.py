"""The network IR: NetworkDefinition, Layer, Tensor (TensorRT-style names).

A layer is a type (LayerType), a name, input/output tensors and a flat `params` dict. Parameters are plain
JSON values (numbers, strings, str-enums, lists, None) except a Constant layer's `weights` (a NumPy array),
so the plan can store a layer as JSON plus raw buffers. Layer parameters read and write as attributes
(`conv.stride_nd = (2, 2)`), the way TensorRT's typed layer interfaces do.

Weights are never hidden in a layer: `add_convolution_nd(..., kernel, bias)` creates Constant layers that feed
the convolution, so constant folding, refit and the plan treat every weight the same way.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .dtypes import DataType, from_numpy
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
    TopKOperation,
    UnaryOperation,
)
from .errors import BuildError, EngineError

Shape = tuple[int, ...]


class Tensor:
    """A named value flowing between layers. `shape` uses -1 for dimensions unknown until run time."""

    def __init__(self, name: str, dtype: DataType, shape: Sequence[int] | None = None):
        self.name = name
        self.dtype = DataType(dtype)
        self.shape: Shape | None = None if shape is None else tuple(int(d) for d in shape)
        self.producer: Layer | None = None
        self.is_network_input = False
        self.is_network_output = False
        self.dynamic_range: tuple[float, float] | None = None  # INT8 (min, max), set_dynamic_range

    def set_dynamic_range(self, min: float, max: float) -> bool:
        """The tensor's INT8 range (TensorRT's ITensor.set_dynamic_range): with BuilderFlag.INT8 the builder
        quantizes Conv/MatMul layers reading or writing it with scale max(|min|, |max|) / 127 (symmetric)."""
        low, high = float(min), float(max)
        if not (np.isfinite(low) and np.isfinite(high)) or low > high or max_abs(low, high) == 0:
            raise EngineError(f"tensor '{self.name}': dynamic range must be finite with min <= max and not all zero, "
                              f"got [{min}, {max}]")
        self.dynamic_range = (low, high)
        return True

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, {self.dtype.value}, {self.shape})"


class Layer:
    """One operation of the network. Parameters live in `params` and read as attributes."""

    _OWN_ATTRS = frozenset({"name", "type", "inputs", "outputs", "params", "precision", "precision_is_set",
                            "output_types", "metadata"})

    def __init__(self, layer_type: LayerType, name: str, inputs: list[Tensor | None], params: dict[str, Any]):
        object.__setattr__(self, "type", LayerType(layer_type))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "inputs", list(inputs))
        object.__setattr__(self, "outputs", [])
        object.__setattr__(self, "params", dict(params))
        object.__setattr__(self, "precision", DataType.FLOAT)
        object.__setattr__(self, "precision_is_set", False)
        object.__setattr__(self, "output_types", {})
        # Free-form build info (fused-from names, original ONNX node) shown by `inspect`; never used to compute.
        object.__setattr__(self, "metadata", {})

    def __getattr__(self, key: str) -> Any:
        params = object.__getattribute__(self, "params")
        if key in params:
            return params[key]
        if key == "padding_nd" and "pre_padding" in params:  # TensorRT returns the pre-padding when asymmetric
            return params["pre_padding"]
        raise AttributeError(f"{type(self).__name__} of type {self.type.value} has no attribute {key!r}")

    def __setattr__(self, key: str, value: Any) -> None:
        if key in Layer._OWN_ATTRS:
            if key == "precision":
                object.__setattr__(self, "precision", DataType(value))
                object.__setattr__(self, "precision_is_set", True)
                return
            object.__setattr__(self, key, value)
        elif key in self.params:
            self.params[key] = _keep_weights(key, value)
            _reinfer(self)
        elif key == "padding_nd" and "pre_padding" in self.params:  # TensorRT's symmetric padding
            self.params["pre_padding"] = _normalize_param(value)
            self.params["post_padding"] = _normalize_param(value)
            _reinfer(self)
        else:
            raise AttributeError(f"layer '{self.name}' ({self.type.value}) has no parameter {key!r}")

    # TensorRT-style accessors
    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def get_input(self, index: int) -> Tensor | None:
        return self.inputs[index]

    def get_output(self, index: int) -> Tensor:
        return self.outputs[index]

    def set_input(self, index: int, tensor: Tensor) -> None:
        """Replace (or append, for optional trailing inputs such as a Shuffle's shape tensor) an input."""
        while len(self.inputs) <= index:
            self.inputs.append(None)
        self.inputs[index] = tensor
        _reinfer(self)

    def set_params(self, params: dict[str, Any]) -> None:
        """Set several parameters at once (new keys allowed) and infer output shapes once: an importer's
        parameters may only make sense together."""
        self.params.update({k: _keep_weights(k, v) for k, v in params.items()})
        _reinfer(self)

    def reset_precision(self) -> None:
        object.__setattr__(self, "precision", DataType.FLOAT)
        object.__setattr__(self, "precision_is_set", False)

    def set_output_type(self, index: int, dtype: DataType) -> None:
        self.output_types[index] = DataType(dtype)

    def get_output_type(self, index: int) -> DataType:
        return self.output_types.get(index, self.outputs[index].dtype)

    def __repr__(self) -> str:
        ins = ", ".join(t.name if t is not None else "None" for t in self.inputs)
        outs = ", ".join(t.name for t in self.outputs)
        return f"Layer({self.name!r}, {self.type.value}, [{ins}] -> [{outs}])"


def max_abs(low: float, high: float) -> float:
    return max(abs(low), abs(high))


def _reinfer(layer: Layer) -> None:
    """Parameters set after creation (TensorRT style) change output shapes: infer them again."""
    if layer.outputs:
        from .shape_inference import forget_known_values, infer_layer

        forget_known_values()
        infer_layer(layer)


def _normalize_param(value: Any) -> Any:
    """Turn tuples and NumPy scalars/arrays (except weights) into plain JSON-able values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_normalize_param(v) for v in value]
    if isinstance(value, list):
        return [_normalize_param(v) for v in value]
    return value


def _axes_from_mask(axes: int | Sequence[int]) -> list[int]:
    """TensorRT passes reduction axes as a bitmask; lists are accepted too."""
    if isinstance(axes, (int, np.integer)):
        return [i for i in range(64) if (int(axes) >> i) & 1]
    return [int(a) for a in axes]


class NetworkDefinition:
    """A graph of layers under construction. Only explicit-batch networks exist (as in TensorRT 8.6 with ONNX)."""

    def __init__(self, name: str = "network"):
        self.name = name
        self.layers: list[Layer] = []
        self._inputs: list[Tensor] = []
        self._outputs: list[Tensor] = []
        self._tensor_names: set[str] = set()
        self._layer_names: set[str] = set()
        self.has_implicit_batch_dimension = False
        # NetworkDefinitionCreationFlag bits given to Builder.create_network (STRONGLY_TYPED: passes/precision.py)
        self.flags = 0

    def get_flag(self, flag: int) -> bool:
        """Whether the network was created with NetworkDefinitionCreationFlag `flag`."""
        return bool(self.flags >> int(flag) & 1)

    # ------------------------------------------------------------------ basic structure
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_inputs(self) -> int:
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def get_layer(self, index: int) -> Layer:
        return self.layers[index]

    def get_input(self, index: int) -> Tensor:
        return self._inputs[index]

    def get_output(self, index: int) -> Tensor:
        return self._outputs[index]

    @property
    def inputs(self) -> list[Tensor]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[Tensor]:
        return list(self._outputs)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def has_tensor_name(self, name: str) -> bool:
        """Whether a tensor of this network has `name` (a set lookup; find_tensor scans)."""
        return name in self._tensor_names

    def unique_tensor_name(self, base: str) -> str:
        name, i = base, 1
        while name in self._tensor_names:
            name = f"{base}_{i}"
            i += 1
        return name

    def _unique_layer_name(self, base: str) -> str:
        name, i = base, 1
        while name in self._layer_names:
            name = f"{base}_{i}"
            i += 1
        return name

    def add_input(self, name: str, dtype: DataType, shape: Sequence[int]) -> Tensor:
        """Declare a network input; use -1 for dynamic dimensions (then add an optimization profile)."""
        if name in self._tensor_names:
            raise EngineError(f"a tensor named '{name}' already exists in the network")
        dtype = DataType(dtype) if not isinstance(dtype, type) else from_numpy(dtype)
        tensor = Tensor(name, dtype, shape)
        tensor.is_network_input = True
        self._tensor_names.add(name)
        self._inputs.append(tensor)
        return tensor

    def mark_output(self, tensor: Tensor) -> None:
        if tensor.is_network_output:
            return
        tensor.is_network_output = True
        self._outputs.append(tensor)

    def unmark_output(self, tensor: Tensor) -> None:
        if tensor in self._outputs:
            self._outputs.remove(tensor)
            tensor.is_network_output = False

    def remove_input(self, tensor: Tensor) -> None:
        self._inputs.remove(tensor)
        tensor.is_network_input = False

    def add_layer(self, layer_type: LayerType, inputs: Sequence[Tensor | None], params: dict[str, Any] | None = None,
                  num_outputs: int = 1, name: str | None = None, output_names: Sequence[str] | None = None,
                  output_dtypes: Sequence[DataType] | None = None) -> Layer:
        """Generic layer constructor behind every `add_*` method.

        Output dtypes/shapes are filled in by shape inference (engine.shape_inference); the placeholder dtype is
        the first input's (or FLOAT).
        """
        for i, t in enumerate(inputs):
            if t is not None and not isinstance(t, Tensor):
                raise EngineError(f"input {i} of new {LayerType(layer_type).value} layer is not a Tensor: {t!r}")
        layer_name = self._unique_layer_name(name or f"({LayerType(layer_type).value})_{len(self.layers)}")
        self._layer_names.add(layer_name)
        params = {k: _keep_weights(k, v) for k, v in (params or {}).items()}
        layer = Layer(layer_type, layer_name, list(inputs), params)
        default_dtype = next((t.dtype for t in inputs if t is not None), DataType.FLOAT)
        for i in range(num_outputs):
            base = output_names[i] if output_names else f"{layer_name}_output_{i}"
            out_name = self.unique_tensor_name(base)
            self._tensor_names.add(out_name)
            dtype = output_dtypes[i] if output_dtypes else default_dtype
            out = Tensor(out_name, dtype)
            out.producer = layer
            layer.outputs.append(out)
        self.layers.append(layer)
        from .shape_inference import infer_layer  # late import: shape inference needs the op registry

        infer_layer(layer)
        return layer

    def append_layer_output(self, layer: Layer, base_name: str, dtype: DataType) -> Tensor:
        """A new output of an existing layer (control-flow layers gain one per add_output / add_loop_output, as
        TensorRT's do); its shape is inferred when the caller next re-infers the layer."""
        name = self.unique_tensor_name(base_name)
        self._tensor_names.add(name)
        tensor = Tensor(name, dtype)
        tensor.producer = layer
        layer.outputs.append(tensor)
        return tensor

    def move_layer_to_end(self, layer: Layer) -> None:
        """Run `layer` after every layer added so far: a control-flow layer given an input made after it was
        created. Refused once a layer reads one of its outputs (that reader would then run before it)."""
        readers = [other.name for other in self.layers for t in other.inputs
                   if t is not None and t.producer is layer and other is not layer]
        if readers:
            raise EngineError(f"layer '{layer.name}': cannot take an input made after it, its outputs are already "
                              f"read by {readers}; declare the inputs of a loop or conditional before reading its "
                              "outputs")
        self.layers.remove(layer)
        self.layers.append(layer)

    # ------------------------------------------------------------------ control flow (engine/control_flow.py)
    def add_if_conditional(self, name: str | None = None) -> Any:
        """An if-conditional (TensorRT's IIfConditional): set_condition, add_input, add_output; the layers of
        each branch are added to `then_branch` / `else_branch`."""
        from .control_flow import IfConditional

        return IfConditional(self, name)

    def add_loop(self, name: str | None = None) -> Any:
        """A loop (TensorRT's ILoop): add_trip_limit, add_recurrence, add_iterator, add_input, add_loop_output;
        the body's layers are added to `body`."""
        from .control_flow import Loop

        return Loop(self, name)

    def rename_tensor(self, tensor: Tensor, new_name: str) -> None:
        if new_name == tensor.name:
            return
        if new_name in self._tensor_names:
            raise EngineError(f"a tensor named '{new_name}' already exists in the network")
        self._tensor_names.discard(tensor.name)
        self._tensor_names.add(new_name)
        tensor.name = new_name

    # ------------------------------------------------------------------ TensorRT-style layer constructors
    def add_constant(self, shape: Sequence[int], weights: np.ndarray, name: str | None = None) -> Layer:
        array = np.ascontiguousarray(np.asarray(weights))
        if array.dtype == np.float64 and not isinstance(weights, np.ndarray):
            array = array.astype(np.float32)
        from_numpy(array.dtype)  # validates the dtype
        array = array.reshape(tuple(shape))
        return self.add_layer(LayerType.CONSTANT, [], {"weights": array, "shape": list(array.shape)}, name=name)

    def _weights_tensor(self, values: np.ndarray | None, name: str) -> Tensor | None:
        if values is None:
            return None
        if isinstance(values, Tensor):
            return values
        array = np.asarray(values)
        if array.size == 0:
            return None
        return self.add_constant(array.shape, array, name=name).get_output(0)

    def _add_weighted_window_layer(self, layer_type: LayerType, input: Tensor, num_output_maps: int,
                                   kernel_shape: Sequence[int], kernel, bias, name: str | None,
                                   extra: dict[str, Any]) -> Layer:
        """Convolution and deconvolution: constant kernel/bias inputs and the shared window parameters."""
        n = len(kernel_shape)
        base = name or f"({layer_type.value})_{len(self.layers)}"
        kernel_t = self._weights_tensor(kernel, f"{base}.kernel")
        bias_t = self._weights_tensor(bias, f"{base}.bias")
        params = {"num_output_maps": int(num_output_maps), "kernel_size_nd": list(kernel_shape),
                  "stride_nd": [1] * n, "dilation_nd": [1] * n, "pre_padding": [0] * n, "post_padding": [0] * n,
                  **extra, "num_groups": 1, "padding_mode": PaddingMode.EXPLICIT_ROUND_DOWN}
        return self.add_layer(layer_type, [input, kernel_t, bias_t], params, name=name)

    def add_convolution_nd(self, input: Tensor, num_output_maps: int, kernel_shape: Sequence[int],
                           kernel: np.ndarray | Tensor, bias: np.ndarray | Tensor | None = None,
                           name: str | None = None) -> Layer:
        """Convolution over the trailing len(kernel_shape) dims. kernel: (K, C/groups, *kernel_shape)."""
        return self._add_weighted_window_layer(LayerType.CONVOLUTION, input, num_output_maps, kernel_shape, kernel,
                                               bias, name, {})

    def add_deconvolution_nd(self, input: Tensor, num_output_maps: int, kernel_shape: Sequence[int],
                             kernel: np.ndarray | Tensor, bias: np.ndarray | Tensor | None = None,
                             name: str | None = None) -> Layer:
        """Transposed convolution. kernel: (C, K/groups, *kernel_shape) as in ONNX ConvTranspose."""
        return self._add_weighted_window_layer(LayerType.DECONVOLUTION, input, num_output_maps, kernel_shape, kernel,
                                               bias, name, {"output_padding": [0] * len(kernel_shape)})

    def add_pooling_nd(self, input: Tensor, type: PoolingType, window_size: Sequence[int],
                       name: str | None = None) -> Layer:
        n = len(window_size)
        params = {"pooling_type": PoolingType(type), "window_size_nd": list(window_size),
                  "stride_nd": list(window_size), "pre_padding": [0] * n, "post_padding": [0] * n,
                  "dilation_nd": [1] * n, "padding_mode": PaddingMode.EXPLICIT_ROUND_DOWN,
                  "average_count_excludes_padding": True, "p": 2}
        return self.add_layer(LayerType.POOLING, [input], params, name=name)

    def add_activation(self, input: Tensor, type: ActivationType, alpha: float = 0.0, beta: float = 0.0,
                       name: str | None = None) -> Layer:
        params = {"activation_type": ActivationType(type), "alpha": float(alpha), "beta": float(beta)}
        return self.add_layer(LayerType.ACTIVATION, [input], params, name=name)

    def add_parametric_relu(self, input: Tensor, slopes: Tensor, name: str | None = None) -> Layer:
        return self.add_layer(LayerType.PARAMETRIC_RELU, [input, slopes], {}, name=name)

    def add_elementwise(self, input1: Tensor, input2: Tensor, op: ElementWiseOperation,
                        name: str | None = None) -> Layer:
        """Binary op with NumPy (multidirectional) broadcasting."""
        return self.add_layer(LayerType.ELEMENTWISE, [input1, input2], {"op": ElementWiseOperation(op)}, name=name)

    def add_unary(self, input: Tensor, op: UnaryOperation, name: str | None = None) -> Layer:
        return self.add_layer(LayerType.UNARY, [input], {"op": UnaryOperation(op)}, name=name)

    def add_matrix_multiply(self, input0: Tensor, op0: MatrixOperation, input1: Tensor, op1: MatrixOperation,
                            name: str | None = None) -> Layer:
        """Batched matrix product with NumPy matmul broadcasting; TRANSPOSE swaps the last two dims."""
        params = {"op0": MatrixOperation(op0), "op1": MatrixOperation(op1)}
        return self.add_layer(LayerType.MATRIX_MULTIPLY, [input0, input1], params, name=name)

    def add_shuffle(self, input: Tensor, name: str | None = None) -> Layer:
        """Transpose → reshape → transpose. reshape_dims: 0 copies the input dim (unless zero_is_placeholder
        is False), -1 is inferred; set_input(1, shape_tensor) gives dynamic reshape dims."""
        params = {"first_transpose": None, "reshape_dims": None, "second_transpose": None, "zero_is_placeholder": True}
        return self.add_layer(LayerType.SHUFFLE, [input], params, name=name)

    def add_reduce(self, input: Tensor, op: ReduceOperation, axes: int | Sequence[int], keep_dims: bool,
                   name: str | None = None) -> Layer:
        """axes: a TensorRT bitmask (int) or a list of axes."""
        params = {"op": ReduceOperation(op), "axes": _axes_from_mask(axes), "keep_dims": bool(keep_dims)}
        return self.add_layer(LayerType.REDUCE, [input], params, name=name)

    def add_softmax(self, input: Tensor, name: str | None = None) -> Layer:
        """Softmax over `axes` (bitmask; default: the last dim once shape is known). `log=True` gives LogSoftmax."""
        rank = len(input.shape) if input.shape is not None else 1
        return self.add_layer(LayerType.SOFTMAX, [input], {"axes": 1 << max(rank - 1, 0), "log": False}, name=name)

    def add_concatenation(self, inputs: Sequence[Tensor], name: str | None = None) -> Layer:
        """Concatenate along `axis` (default 0; set `layer.axis`)."""
        return self.add_layer(LayerType.CONCATENATION, list(inputs), {"axis": 0}, name=name)

    def add_slice(self, input: Tensor, start: Sequence[int], shape: Sequence[int], stride: Sequence[int],
                  name: str | None = None) -> Layer:
        """TensorRT slice: output[i] = input[start + i*stride] for i < shape. mode: DEFAULT|WRAP|CLAMP|FILL|REFLECT.
        Optional dynamic inputs: set_input(1|2|3, start|shape|stride tensor), set_input(4, fill value)."""
        params = {"start": list(start), "shape": list(shape), "stride": list(stride), "mode": "DEFAULT"}
        return self.add_layer(LayerType.SLICE, [input], params, name=name)

    def add_gather(self, input: Tensor, indices: Tensor, axis: int, name: str | None = None) -> Layer:
        """mode DEFAULT (np.take), ELEMENT (GatherElements) or ND (GatherND with num_elementwise_dims batch dims)."""
        params = {"axis": int(axis), "mode": "DEFAULT", "num_elementwise_dims": 0}
        return self.add_layer(LayerType.GATHER, [input, indices], params, name=name)

    def add_identity(self, input: Tensor, name: str | None = None) -> Layer:
        return self.add_layer(LayerType.IDENTITY, [input], {}, name=name)

    def add_cast(self, input: Tensor, to_type: DataType, name: str | None = None) -> Layer:
        return self.add_layer(LayerType.CAST, [input], {"to_type": DataType(to_type)}, name=name,
                              output_dtypes=[DataType(to_type)])

    def add_topk(self, input: Tensor, op: TopKOperation, k: int, axes: int | Sequence[int],
                 name: str | None = None) -> Layer:
        """Outputs (values, indices INT64). axes: bitmask or list with one axis. set_input(1, k) for dynamic k."""
        axis = _axes_from_mask(axes)
        if len(axis) != 1:
            raise EngineError(f"add_topk expects exactly one axis, got {axis}")
        params = {"op": TopKOperation(op), "k": int(k), "axis": axis[0], "sorted": True}
        return self.add_layer(LayerType.TOPK, [input], params, num_outputs=2,
                              output_dtypes=[input.dtype, DataType.INT64], name=name)

    def add_resize(self, input: Tensor, name: str | None = None) -> Layer:
        """Resize to `shape` or by `scales` (one of them set, or a tensor via set_input(1, ...)).
        resize_mode NEAREST|LINEAR|CUBIC; coordinate_transformation and nearest_rounding follow ONNX names."""
        params = {"shape": None, "scales": None, "resize_mode": "NEAREST", "coordinate_transformation": "half_pixel",
                  "nearest_rounding": "round_prefer_floor", "cubic_coeff": -0.75, "exclude_outside": False,
                  "extrapolation_value": 0.0, "axes": None, "keep_aspect_ratio_policy": "stretch",
                  "input_is_scales": False}
        return self.add_layer(LayerType.RESIZE, [input], params, name=name)

    def add_select(self, condition: Tensor, then_input: Tensor, else_input: Tensor, name: str | None = None) -> Layer:
        return self.add_layer(LayerType.SELECT, [condition, then_input, else_input], {}, name=name)

    def add_normalization(self, input: Tensor, scale: Tensor, bias: Tensor, axes_mask: int | Sequence[int],
                          name: str | None = None) -> Layer:
        """(x - mean) / sqrt(var + epsilon) * scale + bias, statistics over `axes`; num_groups > 1 gives
        GroupNormalization (axes then are the spatial axes, channels split in groups)."""
        params = {"axes": _axes_from_mask(axes_mask), "epsilon": 1e-5, "num_groups": 1}
        return self.add_layer(LayerType.NORMALIZATION, [input, scale, bias], params, name=name)

    def add_shape(self, input: Tensor, name: str | None = None) -> Layer:
        return self.add_layer(LayerType.SHAPE, [input], {"start": 0, "end": None}, name=name,
                              output_dtypes=[DataType.INT64])

    def add_rnn_v2(self, input: Tensor, op: RNNOperation, hidden_size: int, W: np.ndarray | Tensor,
                   R: np.ndarray | Tensor, B: np.ndarray | Tensor | None = None, *,
                   direction: RNNDirection = RNNDirection.FORWARD, layout: int = 0,
                   sequence_lens: Tensor | None = None, initial_h: Tensor | None = None,
                   initial_c: Tensor | None = None, peepholes: np.ndarray | Tensor | None = None,
                   name: str | None = None) -> Layer:
        """A recurrent layer over a whole sequence (TensorRT's IRNNv2Layer, with ONNX LSTM/GRU/RNN semantics and
        weight layouts; engine/ops/recurrent.py). input: (seq, batch, input_size), or (batch, seq, input_size)
        with layout=1. W (dirs, gates*hidden, input_size), R (dirs, gates*hidden, hidden), B (dirs,
        2*gates*hidden) and peepholes (dirs, 3*hidden) may be arrays (they become Constant layers) or tensors.
        Outputs: Y, Y_h and for LSTM Y_c. `activations`, `activation_alpha`, `activation_beta`, `clip`,
        `input_forget` and `linear_before_reset` are parameters to set afterwards (set_params for several)."""
        op = RNNOperation(op)
        base = name or f"({LayerType.RNN_V2.value})_{len(self.layers)}"
        weights = [self._weights_tensor(values, f"{base}.{role}") for values, role in
                   ((W, "W"), (R, "R"), (B, "B"))]
        inputs = [input, *weights, sequence_lens, initial_h, initial_c,
                  self._weights_tensor(peepholes, f"{base}.P")]
        while inputs[-1] is None:
            inputs.pop()
        from .ops.recurrent import DEFAULT_ACTIVATIONS  # late import: importing engine.ops loads every op module

        defaults = [a.value for a in DEFAULT_ACTIVATIONS[op]]
        params = {"op": op, "direction": RNNDirection(direction), "hidden_size": int(hidden_size),
                  "layout": int(layout), "activations": defaults, "activation_alpha": [0.0] * len(defaults),
                  "activation_beta": [0.0] * len(defaults), "clip": None, "input_forget": False,
                  "linear_before_reset": False}
        return self.add_layer(LayerType.RNN_V2, inputs, params, num_outputs=3 if op == RNNOperation.LSTM else 2,
                              name=name)

    def add_non_zero(self, input: Tensor, name: str | None = None) -> Layer:
        """Indices (INT64, [rank, count]) of the non-zero elements; `count` is known only after running."""
        return self.add_layer(LayerType.NON_ZERO, [input], {}, name=name, output_dtypes=[DataType.INT64])

    def add_nms(self, boxes: Tensor, scores: Tensor, max_output_boxes_per_class: Tensor,
                name: str | None = None) -> Layer:
        """Non-maximum suppression (engine/ops/nms.py): outputs selected (batch, class, box) indices [count, 3]
        and count. set_input(3, iou_threshold), set_input(4, score_threshold); params bounding_box_format
        (CORNER_PAIRS | CENTER_SIZES) and topk_box_limit."""
        params = {"bounding_box_format": BoundingBoxFormat.CORNER_PAIRS, "topk_box_limit": None}
        return self.add_layer(LayerType.NMS, [boxes, scores, max_output_boxes_per_class], params, num_outputs=2,
                              name=name, output_dtypes=[DataType.INT64, DataType.INT32])

    def add_unique(self, input: Tensor, axis: int | None = None, sorted: bool = True,
                   name: str | None = None) -> Layer:
        """The distinct values of `input` (flattened), or its distinct slices along `axis` (engine/ops/unique.py):
        outputs Y, indices, inverse_indices and counts; the count is known only after running."""
        return self.add_layer(LayerType.UNIQUE, [input], {"axis": axis, "sorted": sorted}, num_outputs=4, name=name,
                              output_dtypes=[input.dtype] + [DataType.INT64] * 3)

    def add_col2im(self, input: Tensor, image_shape: Sequence[int] | Tensor, block_shape: Sequence[int] | Tensor,
                   strides: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
                   pads: Sequence[int] | None = None, name: str | None = None) -> Layer:
        """Sum the sliding blocks of `input` (N, C*prod(block_shape), L) into images (N, C, *image_shape), ONNX
        Col2Im (engine/ops/col2im.py). image_shape and block_shape are ints, or INT64 shape tensors (inputs 1, 2);
        strides and dilations default to 1, pads ([begin..., end...]) to 0."""
        sizes = {"image_shape": image_shape, "block_shape": block_shape}
        n = block_shape.shape[0] if isinstance(block_shape, Tensor) else len(block_shape)
        params = {key: None if isinstance(value, Tensor) else [int(v) for v in value] for key, value in sizes.items()}
        params.update({"strides": [int(v) for v in strides or [1] * n],
                       "dilations": [int(v) for v in dilations or [1] * n],
                       "pads": [int(v) for v in pads or [0] * (2 * n)]})
        inputs = [input] + [value if isinstance(value, Tensor) else None for value in sizes.values()]
        while inputs[-1] is None:
            inputs.pop()
        return self.add_layer(LayerType.COL2IM, inputs, params, name=name)

    def add_plugin(self, inputs: Sequence[Tensor], plugin: Any, name: str | None = None) -> Layer:
        """Add a layer computed by a registered plugin (see engine.plugin)."""
        from .plugin import plugin_layer_params

        params, num_outputs = plugin_layer_params(plugin)
        return self.add_layer(LayerType.PLUGIN_V2, list(inputs), params, num_outputs=num_outputs, name=name)

    # ------------------------------------------------------------------ queries
    def tensors(self) -> list[Tensor]:
        seen: dict[int, Tensor] = {id(t): t for t in self._inputs}
        for layer in self.layers:
            for t in layer.outputs:
                seen.setdefault(id(t), t)
        return list(seen.values())

    def find_tensor(self, name: str) -> Tensor | None:
        for t in self.tensors():
            if t.name == name:
                return t
        return None

    def find_layer(self, name: str) -> Layer | None:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None

    def validate(self) -> None:
        """Raise BuildError for structural mistakes: no outputs, tensors from another network, cycles."""
        if not self._outputs:
            raise BuildError("the network has no outputs: call network.mark_output(tensor) for each result")
        produced = {id(t) for t in self._inputs}
        for layer in self.layers:
            for i, t in enumerate(layer.inputs):
                if t is not None and id(t) not in produced:
                    raise BuildError(f"layer '{layer.name}' input {i} ('{t.name}') is not produced by an earlier layer "
                                     "or a network input (wrong order, a cycle, or a tensor of another network)")
            produced.update(id(t) for t in layer.outputs)
        for t in self._outputs:
            if id(t) not in produced:
                raise BuildError(f"network output '{t.name}' is not produced by any layer")


def _keep_weights(key: str, value: Any) -> Any:
    """Weights arrays and control-flow subgraphs are kept as they are; every other param becomes plain JSON."""
    return value if key in ("weights", "subgraphs") else _normalize_param(value)
