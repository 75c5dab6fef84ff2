"""Runtime, Engine and ExecutionContext (TensorRT 8.6 names).

An ExecutionContext resolves shapes once per active optimization profile and set of input shapes ("binding"; the
profile picks the tactics, each profile's were tuned at its own opt shapes): it evaluates the host shape
arithmetic, places activations in one arena by the lifetime plan, and precompiles a flat step list. `execute`
then only swaps the user's input/output arrays in and runs the steps. Contexts own their arenas, so several
contexts of one engine can run at the same time from different threads.
"""
from __future__ import annotations

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
from .dtypes import DataType, nptype
from .enums import LayerType, TensorIOMode
from .error_recorder import IErrorRecorder, checked_recorder, reports_errors
from .errors import ExecutionError, PlanFormatError, ShapeError
from .gpu_allocator import IGpuAllocator, allocation_scope, checked_allocator
from .graph import LoweredGraph, resolve_shapes, tactic_context
from .logger import Logger, Severity
from .memory_plan import device_lifetimes, plan_graph_memory
from .nvtx_ranges import layer_ranges
from .plan import deserialize_plan
from .steps import Step, compile_steps, run_step
from .tactics import tactic_by_id
from .version import __version__

# Bindings (resolved shapes + arena) kept per context; shape inputs whose values change every call would otherwise
# grow the cache without bound.
MAX_BINDINGS = 16


MAX_GRAPHS_PER_BINDING = 8  # captured graphs kept per input shapes (one per set of IO addresses)


class Runtime:
    def __init__(self, logger: Logger | None = None):
        self.logger = logger or Logger()
        self._error_recorder: IErrorRecorder | None = None
        self._gpu_allocator: IGpuAllocator | None = None

    @property
    def error_recorder(self) -> IErrorRecorder | None:
        """Where load errors are reported (engine/error_recorder.py); engines loaded here inherit it."""
        return self._error_recorder

    @error_recorder.setter
    def error_recorder(self, recorder: IErrorRecorder | None) -> None:
        self._error_recorder = checked_recorder(recorder)

    @property
    def gpu_allocator(self) -> IGpuAllocator | None:
        """Allocates the device memory of engines loaded here (GPU only; engine/gpu_allocator.py)."""
        return self._gpu_allocator

    @gpu_allocator.setter
    def gpu_allocator(self, allocator: IGpuAllocator | None) -> None:
        self._gpu_allocator = checked_allocator(allocator)

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
        with allocation_scope(self.gpu_allocator, self.device):
            self._device_constants = {i: self.backend.to_device(a) for i, a in graph.constants.items()}
        self._states = self._prepare_tactics()

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
        return False

    @property
    def num_layers(self) -> int:
        return sum(1 for spec in self.graph.layers if spec.layer.type != LayerType.CONSTANT)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> tuple:
        """(min, opt, max) of an input in one profile."""
        self._io(name)
        profile = self.profiles[profile_index]
        if name in profile:
            return profile[name]
        shape = self.get_tensor_shape(name)
        return (shape, shape, shape)

    def get_profile_shape(self, profile_index: int, name: str) -> tuple:
        return self.get_tensor_profile_shape(name, profile_index)

    @property
    def device_memory_size(self) -> int:
        return int(self.meta.get("memory", {}).get("planned_peak_bytes", 0)) + \
            int(self.meta.get("memory", {}).get("workspace_bytes", 0))

    @property
    def has_implicit_batch_dimension(self) -> bool:
        return False

    def serialize(self) -> bytes:
        if self._plan is None:
            raise ExecutionError("this engine was not created from a plan and cannot be serialized")
        return self._plan

    def create_execution_context(self) -> ExecutionContext:
        return ExecutionContext(self)

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


class ExecutionContext:
    """Runs an engine. Thread safety (docs/guarantees.md): `execute` and `execute_async_v3` are each atomic under
    the context's lock (the input shapes they set and the run that reads them cannot interleave with another
    thread's call); a sequence of separate calls (set_input_shape, then set_tensor_address, then
    execute_async_v3) is not, so threads that drive a context that way need a context each, as in TensorRT."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.profiler: IProfiler | None = None
        self.name = ""
        # Synchronize after every layer (engines built with BuilderFlag.DEBUG): a GPU fault names its layer.
        self.debug_sync = bool(engine.meta.get("flags", {}).get("DEBUG", False))
        self._profile = 0
        self._input_shapes: dict[int, tuple[int, ...]] = {}
        self._input_values: dict[int, np.ndarray] = {}  # host values of shape inputs
        self._addresses: dict[int, Any] = {}
        self._bindings: dict[tuple, _Binding] = {}
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
        if not 0 <= profile_index < max(self.engine.num_optimization_profiles, 1):
            raise ExecutionError(f"optimization profile {profile_index} does not exist "
                                 f"(the engine has {self.engine.num_optimization_profiles})")
        self._profile = profile_index
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
        ranges = self.engine.meta.get("shape_input_values") or []
        if self._profile < len(ranges) and name in ranges[self._profile]:
            lo, _, hi = (np.asarray(v) for v in ranges[self._profile][name])
            flat = array.ravel()
            if np.any(flat < lo) or np.any(flat > hi):
                raise ShapeError(f"shape input '{name}': values {flat.tolist()} are outside optimization profile "
                                 f"{self._profile} (min {lo.tolist()}, max {hi.tolist()})")
        self._input_values[idx] = array.copy()
        return True

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
        return tuple(self._binding().shapes[idx])

    @property
    def all_binding_shapes_specified(self) -> bool:
        return len(self._input_shapes) == len(self.engine.graph.inputs)

    @reports_errors
    def infer_shapes(self) -> list[str]:
        """Names of inputs whose shapes are still missing (empty when all are set)."""
        missing = [self.engine.graph.tensors[i].name for i in self.engine.graph.inputs if i not in self._input_shapes]
        if not missing:
            self._binding()
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
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                binding = self._bind()
            while len(self._bindings) >= MAX_BINDINGS:  # least recently used first (dicts keep insertion order)
                self._bindings.pop(next(iter(self._bindings)))
        self._bindings[key] = binding
        return binding

    def _bind(self) -> _Binding:
        engine, graph, backend = self.engine, self.engine.graph, self.engine.backend
        resolved = resolve_shapes(graph, self._input_shapes, self._input_values)
        shapes = resolved.shapes
        slots: list[Any] = [None] * len(graph.tensors)
        for i, value in resolved.host_values.items():
            slots[i] = engine._device_constants.get(i) if i in engine._device_constants else backend.to_device(value)
        planned, plan = plan_graph_memory(graph, shapes, engine._lifetimes)
        arena = backend.allocate(max(plan.peak_bytes, 1))
        for i, offset in zip(planned, plan.offsets):
            dtype = storage_dtype(graph.tensors[i].dtype, engine.device)
            count = int(np.prod(shapes[i], dtype=np.int64))
            slots[i] = arena[offset:offset + count * dtype.itemsize].view(dtype).reshape(shapes[i])
        steps, workspace_bytes = compile_steps(graph, engine._states[self._profile], shapes, resolved.host_values,
                                               engine.device)
        workspace = backend.allocate(workspace_bytes) if workspace_bytes else None
        engine.logger.log(Severity.VERBOSE, f"context bound shapes {[shapes[i] for i in graph.inputs]}: arena "
                                            f"{plan.peak_bytes} bytes (naive {plan.naive_bytes}), "
                                            f"workspace {workspace_bytes} bytes")
        return _Binding(shapes, slots, steps, workspace, plan.peak_bytes)

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
                if i not in self._addresses:
                    raise ExecutionError(f"no address set for '{graph.tensors[i].name}' (call set_tensor_address)")
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
            binding = self._binding()
            outputs = {i: self._wrap(i, self._addresses[i], tuple(binding.shapes[i])) for i in graph.outputs}
            self._enqueue(binding, inputs, outputs, stream_handle)
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
            binding = self._binding()
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                inputs = {i: backend.stage_input(binding.staging, i, to_device_array(a, self.engine.device),
                                                  stream)
                          for i, a in arrays.items()}
                outputs = {i: backend.stage_output(binding.staging, i, binding.shapes[i],
                                                   storage_dtype(graph.tensors[i].dtype, self.engine.device))
                           for i in graph.outputs}
            self._enqueue(binding, inputs, outputs, stream)
            results = backend.fetch_outputs(binding.staging, outputs, stream)
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

    def _enqueue(self, binding: _Binding, inputs: dict[int, Any], outputs: dict[int, Any], stream: Any) -> None:
        """Enqueue the binding's steps on `stream` (called with the context's lock held); no synchronization."""
        graph, backend = self.engine.graph, self.engine.backend
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

        def enqueue() -> None:
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                self._run_steps(binding, slots, host_outputs, stream)

        if self.use_cuda_graph and backend.supports_cuda_graphs and self.profiler is None and not self.debug_sync:
            self._enqueue_graph(binding, enqueue, [*inputs.values(), *outputs.values()], stream)
            return
        with backend.stream_scope(stream):
            enqueue()

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
        for array, value in host_outputs:
            xp.copyto(array, value, casting="unsafe")
