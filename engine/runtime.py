"""Runtime, Engine and ExecutionContext (TensorRT 8.6 names).

An ExecutionContext resolves shapes once per active optimization profile and set of input shapes ("binding"; the
profile picks the tactics, each profile's were tuned at its own opt shapes): it evaluates the host shape
arithmetic, places activations in one arena by the lifetime plan, and precompiles a flat step list. `execute`
then only swaps the user's input/output arrays in and runs the steps. Contexts own their arenas, so several
contexts of one engine can run at the same time from different threads.

A network with data-dependent layers (NonZero, NMS) runs in stages: a binding resolves shapes up to the first such
layer and runs through it; the sizes it produced key the next stage (shapes, arena and steps for the layers up to
the next data-dependent one), cached like bindings. Outputs produced after the first data-dependent layer are
written at the end, into the memory an IOutputAllocator gives (or the address set, when it is big enough).
"""
from __future__ import annotations

import operator
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import get_backend
from .bfloat16 import from_device_array, storage_dtype, to_device_array
from .compatibility import check_loadable
from .config import ProfilingVerbosity
from .debug_listener import IDebugListener
from .dtypes import DataType, nptype
from .eager_execution import has_control_flow, run_eagerly
from .enums import LayerType, TensorIOMode
from .error_recorder import IErrorRecorder, checked_recorder, reports_errors
from .errors import DataDependentShapeError, ExecutionError, PlanFormatError, ShapeError
from .gpu_allocator import IGpuAllocator, allocation_scope, checked_allocator
from .graph import LoweredGraph, ResolvedShapes, is_data_dependent, resolve_shapes, tactic_context
from .logger import Logger, Severity
from .memory_plan import device_lifetimes, plan_graph_memory
from .nvtx_ranges import layer_ranges
from .output_allocator import OUTPUT_ALIGNMENT, IOutputAllocator
from .plan import deserialize_plan, serialize_plan
from .steps import Step, compile_steps, run_step
from .subgraph import CONTROL_FLOW_TYPES
from .tactics import tactic_by_id
from .user_hooks import UserHooks
from .version import __version__

# Bindings (resolved shapes + arena) kept per context; shape inputs whose values change every call would otherwise
# grow the cache without bound.
MAX_BINDINGS = 16


MAX_GRAPHS_PER_BINDING = 8  # captured graphs kept per input shapes (one per set of IO addresses)


class Runtime(UserHooks):
    def __init__(self, logger: Logger | None = None):
        self.logger = logger or Logger()

    @reports_errors
    def deserialize_cuda_engine(self, plan: bytes | bytearray | memoryview) -> Engine:
        """Load a plan; raises PlanFormatError for damaged, truncated or foreign files, and for plans built for
        another device or engine version (engine/compatibility.py)."""
        graph, meta = deserialize_plan(bytes(plan))
        return Engine(graph, meta, self.logger, bytes(plan), self._error_recorder, self._gpu_allocator)


class IProfiler:
    """Assign to `context.profiler`: `report_layer_time` is called for every layer of every execution."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        raise NotImplementedError


class Engine:
    def __init__(self, graph: LoweredGraph, meta: dict[str, Any], logger: Logger, plan: bytes | None = None,
                 error_recorder: IErrorRecorder | None = None, gpu_allocator: IGpuAllocator | None = None):
        self.graph = graph
        self.meta = meta
        self.logger = logger
        self._plan = plan
        self.error_recorder = checked_recorder(error_recorder)
        self.gpu_allocator = checked_allocator(gpu_allocator)
        self.device = meta.get("device", "cpu")
        try:
            self.backend = get_backend(self.device)
        except Exception as exc:
            raise PlanFormatError(f"plan: built for device '{self.device}', which is not usable here: {exc}") from None
        check_loadable(meta["compatibility"], self.backend.compute_capability, __version__)
        self.profiling_verbosity = ProfilingVerbosity(meta["profiling_verbosity"])
        self.profiles: list[dict[str, tuple]] = [
            {name: tuple(tuple(s) for s in shapes) for name, shapes in p.items()} for p in meta.get("profiles", [])]
        self.name = meta.get("name", "engine")
        self._io_names = [graph.tensors[i].name for i in graph.inputs] + [graph.tensors[i].name for i in graph.outputs]
        self._index = {graph.tensors[i].name: i for i in graph.inputs + graph.outputs}
        self._lifetimes = device_lifetimes(graph)
        self._debug_index: dict[str, int] | None = None
        # Whether some layer's output sizes are known only after it ran: execution then goes in stages.
        self.has_data_dependent_shapes = any(is_data_dependent(spec.layer.type) for spec in graph.layers)
        with allocation_scope(self.gpu_allocator, self.device):
            self._device_constants = {i: self.backend.to_device(a) for i, a in graph.constants.items()}
        self._states = self._prepare_tactics()
        # Refit (engine/refitter.py): a stripped plan's weights are missing until a refit brings them; contexts
        # rebind when the weights version changes (their bindings hold device constants and prepared tactics).
        self.refit_table = graph.refit
        self.missing_weights: set[str] = {w.name for w in graph.refit.weights} \
            if graph.refit is not None and graph.refit.stripped else set()
        self.weights_version = 0

    def _prepare_tactics(self) -> list[list[Any]]:
        """Per profile, per layer: (tactic, prepared state), None for host layers. Each distinct (layer, tactic)
        is prepared once and shared by the profiles that chose it."""
        prepared: dict[tuple[int, int], tuple[Any, Any]] = {}
        per_profile = []
        for profile in range(max(len(self.profiles), 1)):
            states: list[Any] = []
            for index, spec in enumerate(self.graph.layers):
                if spec.host or spec.layer.type == LayerType.CONSTANT:
                    states.append(None)
                    continue
                if profile >= len(spec.tactic_ids):
                    raise PlanFormatError(f"plan: layer '{spec.layer.name}' has tactics for {len(spec.tactic_ids)} "
                                          f"optimization profile(s), the plan has {len(self.profiles)}")
                key = (index, spec.tactic_ids[profile])
                if key not in prepared:
                    tactic = tactic_by_id(key[1])
                    prepared[key] = (tactic, tactic.prepare(tactic_context(
                        self.graph, spec, self.device, widen=not tactic.reads_bfloat16)))
                states.append(prepared[key])
            per_profile.append(states)
        return per_profile

    # ------------------------------------------------------------------ TensorRT-style queries
    @property
    def num_io_tensors(self) -> int:
        return len(self._io_names)

    def get_tensor_name(self, index: int) -> str:
        return self._io_names[index]

    def _io(self, name: str) -> int:
        if name not in self._index:
            raise ExecutionError(f"'{name}' is not an input or output of this engine "
                                 f"(tensors: {', '.join(self._io_names)})")
        return self._index[name]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        idx = self._io(name)
        return TensorIOMode.INPUT if idx in self.graph.inputs else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.graph.tensors[self._io(name)].dtype

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        """Build-time shape: -1 marks a dimension that depends on the input shapes."""
        return tuple(self.graph.tensors[self._io(name)].shape or ())

    def is_shape_inference_io(self, name: str) -> bool:
        """True for a shape input: its values (read on the host) set shapes inside the engine."""
        return self._io(name) in self.graph.shape_inputs

    @property
    def num_layers(self) -> int:
        return sum(1 for spec in self.graph.layers if spec.layer.type != LayerType.CONSTANT)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def _checked_profile(self, profile_index: Any) -> int:
        count = max(len(self.profiles), 1)
        try:
            index = None if isinstance(profile_index, bool) else operator.index(profile_index)
        except TypeError:
            index = None
        if index is None or not 0 <= index < count:
            raise ExecutionError(f"optimization profile {profile_index!r} does not exist (engine '{self.name}' has "
                                 f"{count}: 0..{count - 1})")
        return index

    def _input(self, name: str) -> int:
        idx = self._io(name)
        if idx not in self.graph.inputs:
            raise ExecutionError(f"'{name}' is an output of engine '{self.name}'; optimization profiles give input "
                                 "shapes")
        return idx

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> tuple:
        """(min, opt, max) shapes of an input in one profile (an input of static shape: that shape three times)."""
        self._input(name)
        profile = self.profiles[self._checked_profile(profile_index)] if self.profiles else {}
        if name in profile:
            return profile[name]
        shape = self.get_tensor_shape(name)
        return (shape, shape, shape)

    def get_tensor_profile_values(self, profile_index: int, name: str) -> tuple:
        """(min, opt, max) values of a shape input in one profile (`profile.set_shape_input`), each a tuple of its
        elements. TensorRT's argument order (profile first, unlike get_tensor_profile_shape); the other order is
        accepted too."""
        if isinstance(profile_index, str):
            profile_index, name = name, profile_index
        idx = self._input(name)
        index = self._checked_profile(profile_index)
        if idx not in self.graph.shape_inputs:
            raise ExecutionError(f"'{name}' is not a shape input of engine '{self.name}' (shape inputs: "
                                 f"{[self.graph.tensors[i].name for i in self.graph.shape_inputs] or 'none'})")
        ranges = self.meta.get("shape_input_values") or []
        values = ranges[index].get(name) if index < len(ranges) else None
        if values is None:
            raise ExecutionError(f"shape input '{name}' has no value range in optimization profile {index}")
        return tuple(tuple(v) for v in values)

    def get_profile_shape(self, profile_index: int, name: str) -> tuple:
        return self.get_tensor_profile_shape(name, profile_index)

    @property
    def device_memory_size(self) -> int:
        return int(self.meta.get("memory", {}).get("planned_peak_bytes", 0)) + \
            int(self.meta.get("memory", {}).get("workspace_bytes", 0))

    @property
    def has_implicit_batch_dimension(self) -> bool:
        return False

    @property
    def refittable(self) -> bool:
        """Built with BuilderFlag.REFIT or STRIP_PLAN: a Refitter can replace its named weights."""
        return self.refit_table is not None

    @property
    def stripped(self) -> bool:
        """Loaded from a weight-stripped plan and not refitted yet: it cannot execute."""
        return bool(self.missing_weights)

    def replace_weights(self, values: dict[str, Any]) -> None:
        """Put new values (checked by the Refitter: known names, the weights' own dtypes and shapes) into every
        constant tensor made from them, converted as the builder converted them, and prepare the tactics again."""
        table = self.refit_table.by_name()
        for name, array in values.items():
            for index in table[name].tensors:
                value = np.ascontiguousarray(array.astype(nptype(self.graph.tensors[index].dtype), copy=True))
                self.graph.constants[index] = value
                self._device_constants[index] = self.backend.to_device(value)
        for spec in self.graph.layers:  # the constant layers' own copies (host evaluation reads them)
            if spec.layer.type == LayerType.CONSTANT and spec.outputs[0] in self.graph.constants:
                spec.layer.params["weights"] = self.graph.constants[spec.outputs[0]]
        self._states = self._prepare_tactics()
        self.missing_weights -= set(values)
        if not self.missing_weights:
            self.graph.refit.stripped = False
        self.weights_version += 1
        self._plan = None  # serialize() writes the refitted weights

    def serialize(self) -> bytes:
        """The plan; after a refit, a new plan holding the new weights (a refitted stripped plan is complete: a
        refit of a stripped engine must give every weight)."""
        if self._plan is None:
            meta = {k: v for k, v in self.meta.items() if k != "engine_version"}
            self._plan = serialize_plan(self.graph, meta)
        return self._plan

    def create_execution_context(self) -> ExecutionContext:
        return ExecutionContext(self)

    def debug_tensor_indices(self) -> dict[str, int]:
        """Every tensor at a layer boundary of the engine (outputs of its non-constant layers), by name, in
        execution order: the tensors a debug listener can watch."""
        if self._debug_index is None:
            tensors = self.graph.tensors
            self._debug_index = {tensors[o].name: o for spec in self.graph.layers
                                 if spec.layer.type != LayerType.CONSTANT for o in spec.outputs}
        return self._debug_index

    def layer_info(self) -> list[dict[str, Any]]:
        """Per layer: name, type, precision, tactic (profile 0's; `tactics_per_profile` has every profile's),
        fused-from names, epilogue, inputs/outputs (what `inspect` shows)."""
        rows = []
        for spec in self.graph.layers:
            if spec.layer.type == LayerType.CONSTANT:
                continue
            rows.append({
                "name": spec.layer.name, "type": spec.layer.type.value, "precision": spec.layer.precision.value,
                "tactic_id": spec.tactic_id, "tactic": spec.tactic_name or ("host" if spec.host else ""),
                "tactics_per_profile": list(spec.tactic_names), "tactic_ids_per_profile": list(spec.tactic_ids),
                "host": spec.host, "fused_from": spec.layer.metadata.get("fused_from", []),
                "epilogue": None if spec.layer.epilogue.empty else spec.layer.epilogue.to_json(),
                "inputs": [None if i is None else self.graph.tensors[i].name for i in spec.inputs],
                "outputs": [self.graph.tensors[o].name for o in spec.outputs],
            })
        return rows


@dataclass
class _Binding:
    shapes: list
    slots: list[Any]            # tensor index -> array (host values, constants, arena views); IO set per call
    steps: list[Step]
    workspace: Any
    arena_bytes: int
    staging: dict = field(default_factory=dict)  # execute()'s device/pinned IO buffers, by tensor index
    graphs: dict = field(default_factory=dict)   # IO device addresses -> captured CUDA graph
    graph_failure: str | None = None              # why capture failed for this binding (then it is not retried)
    # Staged execution (data-dependent layers): this stage runs layers [start, pending]; pending is the
    # data-dependent layer it ends with (None: it runs to the end). `later` caches the next stages by the sizes
    # that layer produced.
    start: int = 0
    pending: int | None = None
    later: dict = field(default_factory=dict)
    late: frozenset = frozenset()  # outputs sized only after a data-dependent layer ran
    resolved: ResolvedShapes | None = None  # this stage's shape resolution, which the next stage continues


class ExecutionContext:
    """Runs an engine. Thread safety (docs/guarantees.md): `execute` and `execute_async_v3` are each atomic under
    the context's lock (the input shapes they set and the run that reads them cannot interleave with another
    thread's call); a sequence of separate calls (set_input_shape, then set_tensor_address, then
    execute_async_v3) is not, so threads that drive a context that way need a context each, as in TensorRT."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.profiler: IProfiler | None = None
        self._debug_listener: IDebugListener | None = None
        self._debug_tensors: set[int] = set()  # tensor indices reported to the listener
        self.name = ""
        # Synchronize after every layer (engines built with BuilderFlag.DEBUG): a GPU fault names its layer.
        self.debug_sync = bool(engine.meta.get("flags", {}).get("DEBUG", False))
        self._profile = 0
        self._input_shapes: dict[int, tuple[int, ...]] = {}
        self._input_values: dict[int, np.ndarray] = {}  # host values of shape inputs
        self._addresses: dict[int, Any] = {}
        self._bindings: dict[tuple, _Binding] = {}
        self._weights_version = engine.weights_version
        self._allocators: dict[int, IOutputAllocator] = {}
        self._data_shapes: dict[int, tuple[int, ...]] = {}  # last execution's shapes of late outputs
        self._lock = threading.RLock()
        # CUDA graphs (GPU engines): when True, the first enqueue per input shapes and IO addresses runs and
        # captures the step list; later ones replay it. A capture failure logs a WARNING and falls back.
        self.use_cuda_graph = False
        self.cuda_graph_captures = 0
        self._capture_stream = None
        self._error_recorder = engine.error_recorder
        # DETAILED engines on the GPU: an NVTX range per layer (nvtx_ranges.py); None: no ranges
        self._nvtx = layer_ranges(engine.logger) if engine.device == "gpu" and \
            engine.profiling_verbosity == ProfilingVerbosity.DETAILED else None
        graph = engine.graph
        for i in graph.inputs:
            shape = graph.tensors[i].shape
            if shape is not None and all(d >= 0 for d in shape):
                self._input_shapes[i] = tuple(shape)

    @property
    def error_recorder(self) -> IErrorRecorder | None:
        """Where this context's errors are reported (default: the engine's, which is the runtime's)."""
        return self._error_recorder

    @error_recorder.setter
    def error_recorder(self, recorder: IErrorRecorder | None) -> None:
        self._error_recorder = checked_recorder(recorder)

    # ------------------------------------------------------------------ shapes and profiles
    @property
    def active_optimization_profile(self) -> int:
        return self._profile

    @reports_errors
    def set_optimization_profile_async(self, profile_index: int, stream: Any = None) -> bool:
        """Make `profile_index` active: its tactics run, and input shapes and shape-input values must lie within
        it (those set before the switch are checked again at the next execution). The switch itself does no
        device work, so `stream` is not used."""
        with self._lock:
            self._profile = self.engine._checked_profile(profile_index)
        return True

    set_optimization_profile = set_optimization_profile_async

    @reports_errors
    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        idx = self.engine._io(name)
        if idx not in self.engine.graph.inputs:
            raise ExecutionError(f"'{name}' is an output; only input shapes can be set")
        shape = tuple(int(d) for d in shape)
        self._check_shape(name, idx, shape)
        self._input_shapes[idx] = shape
        return True

    @reports_errors
    def set_input_values(self, name: str, values: Any) -> bool:
        """Values of a shape input (a small integer input whose values set output shapes, e.g. TopK's k).
        TensorRT reads them from host memory given to set_tensor_address; so does execute_async_v3 here."""
        idx = self.engine._io(name)
        graph = self.engine.graph
        if idx not in graph.shape_inputs:
            raise ExecutionError(f"'{name}' is not a shape input of this engine")
        array = np.asarray(self.engine.backend.to_host(values))
        expected = np.dtype(nptype(graph.tensors[idx].dtype))
        if array.dtype != expected or array.shape != tuple(graph.tensors[idx].shape):
            raise ExecutionError(f"shape input '{name}': expected {expected} of shape {graph.tensors[idx].shape}, "
                                 f"got {array.dtype} of shape {array.shape}")
        self._check_values(name, array)
        self._input_values[idx] = array.copy()
        return True

    def _check_values(self, name: str, array: np.ndarray) -> None:
        ranges = self.engine.meta.get("shape_input_values") or []
        if self._profile < len(ranges) and name in ranges[self._profile]:
            lo, _, hi = (np.asarray(v) for v in ranges[self._profile][name])
            flat = array.ravel()
            if np.any(flat < lo) or np.any(flat > hi):
                raise ShapeError(f"shape input '{name}': values {flat.tolist()} are outside optimization profile "
                                 f"{self._profile} (min {lo.tolist()}, max {hi.tolist()})")

    def _check_shape(self, name: str, idx: int, shape: tuple[int, ...]) -> None:
        built = self.engine.graph.tensors[idx].shape or ()
        if len(shape) != len(built):
            raise ShapeError(f"input '{name}': shape {shape} has rank {len(shape)}, the engine expects rank "
                             f"{len(built)} {tuple(built)}")
        for d, b in zip(shape, built):
            if b >= 0 and d != b:
                raise ShapeError(f"input '{name}': shape {shape} does not match the engine's static shape "
                                 f"{tuple(built)}")
        if self.engine.profiles:
            profile = self.engine.profiles[self._profile]
            if name in profile:
                lo, _, hi = profile[name]
                if any(not a <= d <= c for a, d, c in zip(lo, shape, hi)):
                    raise ShapeError(f"input '{name}': shape {shape} is outside optimization profile "
                                     f"{self._profile} (min {tuple(lo)}, max {tuple(hi)})")

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        idx = self.engine._io(name)
        if idx in self.engine.graph.inputs:
            return self._input_shapes.get(idx, self.engine.get_tensor_shape(name))
        if len(self._input_shapes) < len(self.engine.graph.inputs):
            return self.engine.get_tensor_shape(name)
        binding = self._binding_or_none()
        if binding is None:
            return self.engine.get_tensor_shape(name)
        shape = binding.shapes[idx]
        if shape is None:  # follows a data-dependent layer: known after an execution, -1 dims before
            return self._data_shapes.get(idx, self.engine.get_tensor_shape(name))
        return tuple(shape)

    @property
    def all_binding_shapes_specified(self) -> bool:
        return len(self._input_shapes) == len(self.engine.graph.inputs)

    @reports_errors
    def infer_shapes(self) -> list[str]:
        """Names of inputs whose shapes are still missing (empty when all are set)."""
        missing = [self.engine.graph.tensors[i].name for i in self.engine.graph.inputs if i not in self._input_shapes]
        if not missing:
            self._binding_or_none()
        return missing

    # ------------------------------------------------------------------ addresses
    @reports_errors
    def set_tensor_address(self, name: str, buffer: Any) -> bool:
        """Bind a user buffer to an IO tensor. A CPU engine takes NumPy arrays. A GPU engine takes CuPy arrays,
        objects with `__cuda_array_interface__` or `__dlpack__` (a torch.Tensor on the GPU), or an int device
        pointer, read with the engine's dtype and the shape set by set_input_shape (inputs) or resolved from the
        input shapes (outputs). Shape inputs are read from host memory, as in TensorRT."""
        idx = self.engine._io(name)
        self._addresses[idx] = buffer
        return True

    def set_output_allocator(self, name: str, allocator: IOutputAllocator | None) -> bool:
        """Let `allocator` provide the memory of output `name` once its size is known (engine/output_allocator.py);
        None removes it. Needed for outputs whose size depends on the data, unless the address set for them is
        big enough."""
        idx = self.engine._io(name)
        if idx not in self.engine.graph.outputs:
            raise ExecutionError(f"'{name}' is an input; output allocators are for outputs")
        if allocator is None:
            self._allocators.pop(idx, None)
            return True
        for method in ("reallocate_output", "notify_shape"):
            if not callable(getattr(allocator, method, None)):
                raise ExecutionError(f"output allocator for '{name}' has no {method}() method")
        self._allocators[idx] = allocator
        return True

    def get_output_allocator(self, name: str) -> IOutputAllocator | None:
        return self._allocators.get(self.engine._io(name))

    def get_tensor_address(self, name: str) -> Any:
        return self._addresses.get(self.engine._io(name))

    def _wrap(self, idx: int, buffer: Any, shape: tuple[int, ...] | None) -> Any:
        tensor = self.engine.graph.tensors[idx]
        try:
            return self.engine.backend.wrap(buffer, shape, storage_dtype(tensor.dtype, self.engine.device),
                                            f"tensor '{tensor.name}'")
        except (TypeError, ValueError) as exc:
            raise ExecutionError(str(exc)) from None

    # ------------------------------------------------------------------ binding
    def _binding(self) -> _Binding:
        graph = self.engine.graph
        if self._weights_version != self.engine.weights_version:  # refitted: bindings hold the old weights
            self._bindings.clear()
            self._weights_version = self.engine.weights_version
        missing = [graph.tensors[i].name for i in graph.inputs if i not in self._input_shapes]
        if missing:
            raise ExecutionError(f"input shape not set for: {', '.join(missing)} (call set_input_shape)")
        missing = [graph.tensors[i].name for i in graph.shape_inputs if i not in self._input_values]
        if missing:
            raise ExecutionError(f"no value given for shape input(s): {', '.join(missing)}")
        key = (self._profile, tuple(self._input_shapes[i] for i in graph.inputs),
               tuple(self._input_values[i].tobytes() for i in graph.shape_inputs))
        binding = self._bindings.pop(key, None)
        if binding is None:
            # Shapes and values may have been set under another profile (set_optimization_profile_async after
            # set_input_shape): check them against the active one before binding (a cached binding was checked).
            for i in graph.inputs:
                self._check_shape(graph.tensors[i].name, i, self._input_shapes[i])
            for i in graph.shape_inputs:
                self._check_values(graph.tensors[i].name, self._input_values[i])
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                binding = self._bind()
            while len(self._bindings) >= MAX_BINDINGS:  # least recently used first (dicts keep insertion order)
                self._bindings.pop(next(iter(self._bindings)))
        self._bindings[key] = binding
        return binding

    def _binding_or_none(self) -> _Binding | None:
        """The binding, or None when the engine's shapes depend on values its control flow computes (then it runs
        eagerly, engine/eager_execution.py). Control flow together with data-dependent layers (NonZero, NMS) always
        runs eagerly: a stage after a data-dependent layer may reach a conditional whose shape only running tells."""
        if self.engine.has_data_dependent_shapes and has_control_flow(self.engine.graph):
            return None
        try:
            return self._binding()
        except DataDependentShapeError:
            if not has_control_flow(self.engine.graph):
                raise
            return None

    def _check_weights_present(self) -> None:
        """A weight-stripped engine runs only once a refit gave it every weight."""
        engine = self.engine
        if engine.missing_weights:
            missing = [w.name for w in engine.refit_table.weights if w.name in engine.missing_weights]
            raise ExecutionError(f"engine '{engine.name}' comes from a weight-stripped plan and has not been "
                                 f"refitted: {len(missing)} weights are missing ({', '.join(missing[:5])}"
                                 f"{', ...' if len(missing) > 5 else ''}); refit it from the ONNX model first "
                                 "(OnnxParserRefitter.refit_from_file, or polyx refit PLAN MODEL -o NEWPLAN)")

    def _execute_eagerly(self, inputs: dict[int, Any]) -> dict[int, Any]:
        """Run layer by layer, each output allocated once its shape is known; returns the outputs by index."""
        self._check_weights_present()
        engine = self.engine
        if self.use_cuda_graph and engine.backend.supports_cuda_graphs:
            engine.logger.log(Severity.WARNING, f"engine '{engine.name}': not captured into a CUDA graph: its shapes "
                                                "depend on values its control flow computes, read on the host")
        slots, _, _ = run_eagerly(engine.graph, engine._states[self._profile], engine.device, engine.backend, inputs,
                                  {i: self._input_values[i] for i in engine.graph.shape_inputs},
                                  engine._device_constants)
        return {i: slots[i] for i in engine.graph.outputs}

    def _bind(self, data_shapes: dict[int, tuple[int, ...]] | None = None, start: int = 0,
              late: frozenset[int] | None = None, resume: ResolvedShapes | None = None) -> _Binding:
        """Resolve shapes, place activations and compile steps, for the layers from `start` up to the next
        data-dependent layer whose sizes are not in `data_shapes` (all layers when there is none). `late`: the
        outputs whose shapes the first stage could not know (they get memory in the stage that makes them);
        `resume`: the previous stage's resolution, continued rather than redone."""
        engine, graph, backend = self.engine, self.engine.graph, self.engine.backend
        resolved = resolve_shapes(graph, self._input_shapes, self._input_values, data_shapes, resume=resume)
        shapes = resolved.shapes
        end = len(graph.layers) if resolved.pending is None else resolved.pending + 1
        if late is None:
            late = frozenset(i for i in graph.outputs if shapes[i] is None)
        slots: list[Any] = [None] * len(graph.tensors)
        earlier = resume.host_values if resume is not None else {}  # already on the device in an earlier stage
        for i, value in resolved.host_values.items():
            if i not in earlier:
                slots[i] = engine._device_constants.get(i) if i in engine._device_constants else \
                    backend.to_device(value)
        lifetimes = engine._lifetimes
        if engine.has_data_dependent_shapes:  # this stage's tensors, not those its data-dependent layer makes
            made_here = {o: step for step in range(start, end) for o in graph.layers[step].outputs}
            sized_later = set(graph.layers[resolved.pending].outputs) if resolved.pending is not None else set()
            lifetimes = {i: life for i, life in lifetimes.items() if i in made_here and i not in sized_later}
            for i in late:  # outputs sized by a data-dependent layer: written here, delivered after the run
                if i in made_here and i not in sized_later and slots[i] is None:
                    lifetimes[i] = (made_here[i], len(graph.layers))
        planned, plan = plan_graph_memory(graph, shapes, lifetimes)
        arena = backend.allocate(max(plan.peak_bytes, 1))
        for i, offset in zip(planned, plan.offsets):
            dtype = storage_dtype(graph.tensors[i].dtype, engine.device)
            count = int(np.prod(shapes[i], dtype=np.int64))
            slots[i] = arena[offset:offset + count * dtype.itemsize].view(dtype).reshape(shapes[i])
        steps, workspace_bytes = compile_steps(graph, engine._states[self._profile], shapes, resolved.host_values,
                                               engine.device, range(start, end) if start or end < len(graph.layers)
                                               else None)
        workspace = backend.allocate(workspace_bytes) if workspace_bytes else None
        stage = f" (layers {start}..{end - 1})" if engine.has_data_dependent_shapes else ""
        engine.logger.log(Severity.VERBOSE, f"context bound shapes {[shapes[i] for i in graph.inputs]}{stage}"
                                            f": arena {plan.peak_bytes} bytes (naive {plan.naive_bytes}), "
                                            f"workspace {workspace_bytes} bytes")
        binding = _Binding(shapes, slots, steps, workspace, plan.peak_bytes, start=start, pending=resolved.pending,
                           late=late, resolved=resolved if resolved.pending is not None else None)
        host_reads = [spec.layer for spec in graph.layers if spec.layer.type in CONTROL_FLOW_TYPES]
        if host_reads:  # a condition or trip count read on the host cannot be recorded in a CUDA graph
            binding.graph_failure = (f"layer '{host_reads[0].name}' ({host_reads[0].type.value}) reads its "
                                     "condition or trip count on the host, which a CUDA graph cannot record")
            if self.use_cuda_graph and backend.supports_cuda_graphs:
                engine.logger.log(Severity.WARNING, f"CUDA graph capture skipped: {binding.graph_failure}; this "
                                                    "context enqueues the layers one by one")
        return binding

    def _next_stage(self, stage: _Binding, data_shapes: dict[int, tuple[int, ...]]) -> _Binding:
        """The stage after `stage`, for the sizes its data-dependent layer (and the earlier ones) produced."""
        key = tuple(sorted(data_shapes.items()))
        following = stage.later.pop(key, None)
        if following is None:
            following = self._bind(data_shapes, stage.pending + 1, stage.late, stage.resolved)
            while len(stage.later) >= MAX_BINDINGS:
                stage.later.pop(next(iter(stage.later)))
        stage.later[key] = following
        return following

    # ------------------------------------------------------------------ debug tensors
    def set_debug_listener(self, listener: IDebugListener | None, tensors: Sequence[str] | None = None) -> bool:
        """Report the tensors named in `tensors` (None: every tensor at a layer boundary) to `listener` after the
        layer that writes them, on every execution; None removes the listener. The engine is not changed; CUDA-graph
        replay is off while a listener is set (each layer must hand its tensor over in turn)."""
        if listener is None:
            self._debug_listener, self._debug_tensors = None, set()
            return True
        boundary = self.engine.debug_tensor_indices()
        if tensors is None:
            chosen = set(boundary.values())
        else:
            unknown = [name for name in tensors if name not in boundary]
            if unknown:
                close = ", ".join(list(boundary)[:8])
                raise ExecutionError(f"set_debug_listener: '{unknown[0]}' is not a tensor at a layer boundary of this "
                                     f"engine (it may be inside a fused layer or not exist); tensors: {close}"
                                     f"{' ...' if len(boundary) > 8 else ''}")
            chosen = {boundary[name] for name in tensors}
        if not callable(getattr(listener, "process_debug_tensor", None)):
            raise ExecutionError("set_debug_listener: the listener has no process_debug_tensor(name, array, layer)")
        self._debug_listener, self._debug_tensors = listener, chosen
        return True

    def get_debug_listener(self) -> IDebugListener | None:
        return self._debug_listener

    def debug_tensor_shapes(self) -> dict[str, tuple[tuple[int, ...], DataType]]:
        """Shape and dtype of every layer-boundary tensor at the input shapes set now (no execution): what a
        debug listener will receive, for sizing what a comparison must hold (an upper bound for a tensor whose
        size a data-dependent layer decides)."""
        binding = self._binding_or_none()
        if binding is None:
            raise ExecutionError(f"engine '{self.engine.name}': its tensors' shapes depend on values its control "
                                 "flow computes while it runs; debug tensors cannot be sized or streamed ahead")
        graph = self.engine.graph
        shapes = binding.shapes
        if any(shapes[i] is None for i in self.engine.debug_tensor_indices().values()):
            # after a data-dependent layer (NonZero, NMS): the upper bound the builder planned with
            bounds = resolve_shapes(graph, self._input_shapes, self._input_values, upper_bounds=True).shapes
            shapes = [bounds[i] if shape is None else shape for i, shape in enumerate(shapes)]
        return {name: (tuple(int(d) for d in shapes[i]), graph.tensors[i].dtype)
                for name, i in self.engine.debug_tensor_indices().items()}

    # ------------------------------------------------------------------ execution
    @reports_errors
    def execute_async_v3(self, stream_handle: Any = 0) -> bool:
        """Enqueue one execution on `stream_handle` (0/None: the calling thread's current stream; an int
        cudaStream_t, a CuPy or torch stream) with the buffers given by set_tensor_address. On the GPU it returns
        once the work is enqueued: outputs are valid after that stream synchronizes. CPU execution is synchronous.
        """
        with self._lock:  # the shapes set below and the run that reads them are one atomic step
            graph = self.engine.graph
            for i in graph.inputs + graph.outputs:
                if i not in self._addresses and i not in self._allocators:
                    later = i in graph.outputs and self.engine.has_data_dependent_shapes
                    raise ExecutionError(f"no address set for '{graph.tensors[i].name}' (call set_tensor_address"
                                         + (" or set_output_allocator)" if later else ")"))
            inputs = {}
            for i in graph.inputs:
                name = graph.tensors[i].name
                if i in graph.shape_inputs:  # host values; the binding holds their device copy
                    self.set_input_values(name, self._addresses[i])
                    continue
                array = self._wrap(i, self._addresses[i], self._input_shapes.get(i))
                if self._input_shapes.get(i) != tuple(array.shape):
                    self.set_input_shape(name, array.shape)
                inputs[i] = array
            binding = self._binding_or_none()
            if binding is None:  # shapes known only while it runs: each output buffer must fit what it gives
                with self.engine.backend.stream_scope(stream_handle):
                    for i, array in self._execute_eagerly(inputs).items():
                        if i in self._allocators:  # its allocator gives memory of the size this run made
                            self._deliver(i, array)
                            continue
                        out = self._wrap(i, self._addresses[i], tuple(array.shape))
                        self._check_dtype(i, out, "output")
                        if tuple(out.shape) != tuple(array.shape):
                            raise ExecutionError(f"output '{graph.tensors[i].name}': this run made shape "
                                                 f"{tuple(array.shape)} (its shape depends on the data), the buffer "
                                                 f"has shape {tuple(out.shape)}; execute() returns outputs of any "
                                                 "size")
                        self.engine.backend.xp.copyto(out, array, casting="unsafe")
                return True
            sized = [i for i in graph.outputs if binding.shapes[i] is not None]
            outputs = {}
            for i in sized:
                shape = tuple(binding.shapes[i])
                if i in self._allocators:  # an allocator also provides outputs whose size the input shapes tell
                    self._addresses[i] = self._reallocate(i, shape)
                    outputs[i] = self._view_as(i, self._addresses[i], shape)
                else:
                    outputs[i] = self._wrap(i, self._addresses[i], shape)
            late = self._enqueue(binding, inputs, outputs, stream_handle)
            if late:
                with self.engine.backend.stream_scope(stream_handle):  # copies ordered after the last stage
                    for i, value in late.items():
                        self._deliver(i, value)
            for i in sized:
                if i in self._allocators:
                    self._allocators[i].notify_shape(graph.tensors[i].name, tuple(binding.shapes[i]))
        return True

    @reports_errors
    def execute_v2(self, bindings: Sequence[Any]) -> bool:
        """Synchronous execution with buffers in IO order (inputs then outputs)."""
        for name, array in zip(self.engine._io_names, bindings):
            self.set_tensor_address(name, array)
        self.execute_async_v3(0)
        self.engine.backend.synchronize(None)
        return True

    @reports_errors
    def execute(self, feeds: dict[str, Any]) -> dict[str, Any]:
        """Convenience: run on a {input name: array} dict (host or device arrays) and return {output name: new
        host array}. On the GPU the inputs go through pinned buffers into device buffers the binding keeps, so
        their addresses are stable (a captured CUDA graph replays) and the copies are asynchronous; the call
        waits for the current stream before returning."""
        graph, backend = self.engine.graph, self.engine.backend
        unknown = sorted(set(feeds) - {graph.tensors[i].name for i in graph.inputs})
        if unknown:
            raise ExecutionError(f"unknown input(s) {unknown}; the engine's inputs are "
                                 f"{[graph.tensors[i].name for i in graph.inputs]}")
        # One lock from setting the shapes to fetching the outputs: two threads sharing this context at different
        # shapes each get their own results (the calls run one after the other).
        with self._lock:
            arrays = {}
            for i in graph.inputs:
                name = graph.tensors[i].name
                if name not in feeds:
                    raise ExecutionError(f"missing input '{name}'")
                array = feeds[name]
                if not hasattr(array, "dtype"):
                    array = np.asarray(array)
                self._check_dtype(i, array, "input")
                self.set_input_shape(name, array.shape)
                if i in graph.shape_inputs:
                    self.set_input_values(name, array)
                else:
                    arrays[i] = array
            stream = backend.current_stream()
            binding = self._binding_or_none()
            if binding is None:  # shapes known only while it runs
                with backend.stream_scope(stream):
                    results = self._execute_eagerly({i: backend.to_device(to_device_array(a, self.engine.device))
                                                     for i, a in arrays.items()})
                    results = {i: backend.to_host(a) for i, a in results.items()}
                return {graph.tensors[i].name: from_device_array(results[i], graph.tensors[i].dtype)
                        for i in graph.outputs}
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                inputs = {i: backend.stage_input(binding.staging, i, to_device_array(a, self.engine.device),
                                                  stream)
                          for i, a in arrays.items()}
                outputs = {i: backend.stage_output(binding.staging, i, binding.shapes[i],
                                                   storage_dtype(graph.tensors[i].dtype, self.engine.device))
                           for i in graph.outputs if binding.shapes[i] is not None}
            late = self._enqueue(binding, inputs, outputs, stream)
            results = backend.fetch_outputs(binding.staging, outputs, stream)
            for i, value in late.items():  # data-dependent sizes: private host copies of what the last stage made
                results[i] = np.array(backend.to_host(value), copy=True)
                self._data_shapes[i] = tuple(value.shape)
        return {graph.tensors[i].name: from_device_array(results[i], graph.tensors[i].dtype)
                for i in graph.outputs}

    def _check_dtype(self, i: int, array: Any, role: str, stored: bool = False) -> None:
        """`stored`: `array` is the engine's own (device) array, in the backend's storage dtype."""
        tensor = self.engine.graph.tensors[i]
        expected = storage_dtype(tensor.dtype, self.engine.device) if stored else np.dtype(nptype(tensor.dtype))
        if array.dtype != expected:
            if role == "input":
                raise ExecutionError(f"input '{tensor.name}': expected dtype {expected}, got {array.dtype}")
            raise ExecutionError(f"output '{tensor.name}': buffer dtype {array.dtype} does not match the engine's "
                                 f"{expected}")

    def _enqueue(self, binding: _Binding, inputs: dict[int, Any], outputs: dict[int, Any],
                 stream: Any) -> dict[int, Any]:
        """Enqueue the binding's steps on `stream` (called with the context's lock held); no synchronization.
        Returns the outputs whose sizes were known only after a data-dependent layer ran ({} when none): their
        values in the context's memory, for the caller to deliver."""
        graph, backend = self.engine.graph, self.engine.backend
        self._check_weights_present()
        for i, array in inputs.items():
            self._check_dtype(i, array, "input", stored=True)
        for i, array in outputs.items():
            self._check_dtype(i, array, "output", stored=True)
            if tuple(array.shape) != tuple(binding.shapes[i]):
                raise ExecutionError(f"output '{graph.tensors[i].name}': buffer shape {tuple(array.shape)} "
                                     f"does not match {tuple(binding.shapes[i])}")
        slots = list(binding.slots)
        for i, array in inputs.items():
            slots[i] = array
        host_outputs = []
        for i, array in outputs.items():
            if slots[i] is not None:  # an output known without running (constant or shape arithmetic)
                host_outputs.append((array, slots[i]))  # layers keep reading the known value, not this buffer
            else:
                slots[i] = array

        if binding.pending is not None:  # sizes are read back between stages: no CUDA graph
            with backend.stream_scope(stream):
                return self._run_stages(binding, slots, host_outputs, stream)

        def enqueue() -> None:
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                self._run_steps(binding, slots, host_outputs, stream)

        if self.use_cuda_graph and backend.supports_cuda_graphs and self.profiler is None and not self.debug_sync \
                and self._debug_listener is None:
            self._enqueue_graph(binding, enqueue, [*inputs.values(), *outputs.values()], stream)
            return {}
        with backend.stream_scope(stream):
            enqueue()
        return {}

    def _run_stages(self, binding: _Binding, slots: list[Any], host_outputs: list, stream: Any) -> dict[int, Any]:
        """Run stage after stage: each ends with a data-dependent layer whose output sizes pick the next one."""
        graph = self.engine.graph
        stage, data_shapes = binding, {}
        while True:
            self._run_steps(stage, slots, [], stream)
            if stage.pending is None:
                break
            for o in graph.layers[stage.pending].outputs:
                data_shapes[o] = tuple(int(d) for d in slots[o].shape)
            stage = self._next_stage(stage, data_shapes)
            for i, value in enumerate(stage.slots):
                if value is not None and slots[i] is None:
                    slots[i] = value
        xp = self.engine.backend.xp
        for array, value in host_outputs:
            xp.copyto(array, value, casting="unsafe")
        return {i: slots[i] for i in binding.late}

    def _deliver(self, i: int, value: Any) -> None:
        """Write a data-dependent output into the memory its output allocator gives (or the address set for it,
        when big enough), then tell the allocator its shape."""
        tensor = self.engine.graph.tensors[i]
        shape = tuple(int(d) for d in value.shape)
        allocator = self._allocators.get(i)
        memory = self._addresses.get(i)
        if allocator is None and memory is None:
            raise ExecutionError(f"output '{tensor.name}': no address or output allocator set")
        if allocator is not None:
            memory = self._addresses[i] = self._reallocate(i, shape)
        self.engine.backend.xp.copyto(self._view_as(i, memory, shape), value)
        self._data_shapes[i] = shape
        if allocator is not None:
            allocator.notify_shape(tensor.name, shape)

    def _reallocate(self, i: int, shape: tuple[int, ...]) -> Any:
        """Memory for output `i` at `shape` from its output allocator; failures name the output."""
        tensor = self.engine.graph.tensors[i]
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(nptype(tensor.dtype)).itemsize
        try:
            memory = self._allocators[i].reallocate_output(tensor.name, self._addresses.get(i), nbytes,
                                                           OUTPUT_ALIGNMENT)
        except Exception as exc:
            raise ExecutionError(f"output '{tensor.name}': the output allocator's reallocate_output raised "
                                 f"{type(exc).__name__}: {exc}") from exc
        if memory is None:
            raise ExecutionError(f"output '{tensor.name}': the output allocator gave no memory for {nbytes} bytes "
                                 f"(shape {list(shape)})")
        return memory

    def _view_as(self, i: int, memory: Any, shape: tuple[int, ...]) -> Any:
        """The start of the memory given for output `i` as an array of its dtype and `shape` (bytes reinterpreted,
        not converted); memory too small for this execution is an error naming the output."""
        tensor = self.engine.graph.tensors[i]
        dtype = np.dtype(nptype(tensor.dtype))
        count = int(np.prod(shape, dtype=np.int64))
        what = f"output '{tensor.name}'"
        try:
            array = self.engine.backend.wrap(memory, (max(count * dtype.itemsize, 1),), np.dtype(np.uint8), what)
        except (TypeError, ValueError) as exc:
            raise ExecutionError(str(exc)) from None
        if not array.flags.c_contiguous:
            raise ExecutionError(f"{what}: the memory given is not contiguous")
        raw = array.reshape(-1).view(np.uint8)
        if raw.size < count * dtype.itemsize:
            raise ExecutionError(f"{what}: its shape is {list(shape)} in this execution ({count * dtype.itemsize} "
                                 f"bytes), the memory given holds {raw.size} bytes; set an output allocator "
                                 "(set_output_allocator) for outputs of data-dependent size")
        return raw[:count * dtype.itemsize].view(dtype).reshape(shape)

    def _enqueue_graph(self, binding: _Binding, enqueue, io_arrays: list[Any], stream: Any) -> None:
        """Replay the binding's CUDA graph for these IO addresses, capturing it on first use."""
        from .backends.gpu import as_stream
        from .backends.gpu_graph import run_and_capture

        stream = as_stream(stream)
        if binding.graph_failure is not None:
            with stream:
                enqueue()
            return
        key = tuple(a.data.ptr for a in io_arrays)
        captured = binding.graphs.get(key)
        if captured is not None:
            captured.launch(stream)
            return
        if self._capture_stream is None:
            import cupy

            self._capture_stream = cupy.cuda.Stream(non_blocking=True)
        captured, failure = run_and_capture(enqueue, stream, self._capture_stream)
        logger = self.engine.logger
        if failure is not None:
            binding.graph_failure = failure
            logger.log(Severity.WARNING, f"CUDA graph capture failed for input shapes "
                                         f"{[binding.shapes[i] for i in self.engine.graph.inputs]}; this context "
                                         f"uses plain enqueue for them: {failure}")
            return
        if len(binding.graphs) >= MAX_GRAPHS_PER_BINDING:
            binding.graphs.pop(next(iter(binding.graphs)))
        binding.graphs[key] = captured
        self.cuda_graph_captures += 1
        logger.log(Severity.VERBOSE, f"captured a CUDA graph of {len(binding.steps)} layers for input shapes "
                                     f"{[binding.shapes[i] for i in self.engine.graph.inputs]}")

    def _run_steps(self, binding: _Binding, slots: list[Any], host_outputs: list, stream: Any) -> None:
        """The hot loop: no name lookups, one call per device layer. A failing layer is named in the error."""
        backend, profiler, debug_sync, nvtx = self.engine.backend, self.profiler, self.debug_sync, self._nvtx
        xp, workspace = backend.xp, binding.workspace
        listener, watched = self._debug_listener, self._debug_tensors
        if listener is not None:
            self._report_host_tensors(listener, watched, slots)
        for step in binding.steps:
            start = time.perf_counter() if profiler is not None else 0.0
            if nvtx is not None:
                nvtx[0](step.name)
            try:
                run_step(step, slots, workspace, xp)
                if debug_sync:
                    backend.synchronize(stream)
            except Exception as exc:
                raise ExecutionError(f"layer '{step.name}': {type(exc).__name__}: {exc}") from exc
            finally:
                if nvtx is not None:
                    nvtx[1]()
            if profiler is not None:
                backend.synchronize(stream)
                profiler.report_layer_time(step.name, (time.perf_counter() - start) * 1e3)
            if listener is not None:
                tensors = self.engine.graph.tensors
                for o in step.outputs:
                    if o in watched:
                        listener.process_debug_tensor(tensors[o].name, slots[o], step.name)
        for array, value in host_outputs:
            xp.copyto(array, value, casting="unsafe")

    def _report_host_tensors(self, listener: IDebugListener, watched: set[int], slots: list[Any]) -> None:
        """Host layers (shape arithmetic) ran when the input shapes were bound; their outputs go first."""
        graph = self.engine.graph
        for spec in graph.layers:
            if spec.host and spec.layer.type != LayerType.CONSTANT:
                for o in spec.outputs:
                    if o in watched and slots[o] is not None:
                        listener.process_debug_tensor(graph.tensors[o].name, slots[o], spec.layer.name)
