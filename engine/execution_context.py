"""ExecutionContext (TensorRT 8.6 names): runs an engine on the user's buffers.

A context resolves shapes once per active optimization profile and set of input shapes (a binding,
engine/binding.py; the profile picks the tactics, each profile's were tuned at its own opt shapes), then
`execute` only swaps the user's input/output arrays in and runs the steps (engine/step_execution.py), replaying
a CUDA graph where asked (engine/cuda_graph_replay.py). Contexts own their arenas, so several contexts of one
engine can run at the same time from different threads.

A network with data-dependent layers (NonZero, NMS) runs in stages. Outputs produced after the first
data-dependent layer are written at the end, into the memory an IOutputAllocator gives (or the address set, when
it is big enough; engine/output_memory.py). A network whose shapes depend on what its control flow computes runs
layer by layer (engine/eager_execution.py).
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .bfloat16 import from_device_array, storage_dtype, to_device_array
from .binding import MAX_BINDINGS, Binding, BoundInputs, bind
from .config import ProfilingVerbosity
from .cuda_graph_replay import CudaGraphReplay
from .debug_listener import IDebugListener
from .dtypes import DataType, nptype
from .eager_execution import has_control_flow, run_eagerly
from .error_recorder import reports_errors
from .errors import DataDependentShapeError, ExecutionError, ShapeError
from .gpu_allocator import allocation_scope
from .graph import resolve_shapes
from .logger import Severity
from .nvtx_ranges import layer_ranges
from .output_allocator import IOutputAllocator
from .output_memory import allocator_memory, output_view
from .profiler import IProfiler
from .step_execution import StepObservers, run_stages, run_steps
from .user_hooks import ErrorRecorderHook

if TYPE_CHECKING:
    from .cuda_engine import Engine



class ExecutionContext(ErrorRecorderHook):
    """Runs an engine. Thread safety (docs/guarantees.md): `execute` and `execute_async_v3` are each atomic under
    the context's lock (the input shapes they set and the run that reads them cannot interleave with another
    thread's call); a sequence of separate calls (set_input_shape, then set_tensor_address, then
    execute_async_v3) is not, so threads that drive a context that way need a context each, as in TensorRT."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.profiler: IProfiler | None = None
        # With a profiler on a GPU engine: True reports each layer's GPU time (its kernels replayed as a CUDA graph,
        # engine/step_execution.py); False the layer's wall time around a synchronization, host work included.
        self.profile_device_time = True
        self._debug_listener: IDebugListener | None = None
        self._debug_tensors: set[int] = set()  # tensor indices reported to the listener
        self.name = ""
        # Synchronize after every layer (engines built with BuilderFlag.DEBUG): a GPU fault names its layer.
        self.debug_sync = bool(engine.meta.get("flags", {}).get("DEBUG", False))
        self._profile = 0
        self._input_shapes: dict[int, tuple[int, ...]] = {}
        self._input_values: dict[int, np.ndarray] = {}  # host values of shape inputs
        self._addresses: dict[int, Any] = {}
        self._bindings: dict[tuple, Binding] = {}
        self._weights_version = engine.weights_version
        self._allocators: dict[int, IOutputAllocator] = {}
        self._data_shapes: dict[int, tuple[int, ...]] = {}  # last execution's shapes of late outputs
        self._lock = threading.RLock()
        # CUDA graphs (GPU engines): when True, the first enqueue per input shapes and IO addresses runs and
        # captures the step list; later ones replay it. A capture failure logs a WARNING and falls back.
        self.use_cuda_graph = False
        self.cuda_graph_captures = 0
        self._graph_replay = CudaGraphReplay()
        self._error_recorder = engine.error_recorder  # the engine's (the runtime's) until one is set here
        # DETAILED engines on the GPU: an NVTX range per layer (nvtx_ranges.py); None: no ranges
        self._nvtx = layer_ranges(engine.logger) if engine.device == "gpu" and \
            engine.profiling_verbosity == ProfilingVerbosity.DETAILED else None
        graph = engine.graph
        for i in graph.inputs:
            shape = graph.tensors[i].shape
            if shape is not None and all(d >= 0 for d in shape):
                self._input_shapes[i] = tuple(shape)

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
            self._profile = self.engine.checked_profile(profile_index)
        return True

    set_optimization_profile = set_optimization_profile_async

    @reports_errors
    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        idx = self.engine.io_index(name)
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
        idx = self.engine.io_index(name)
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
        idx = self.engine.io_index(name)
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
        idx = self.engine.io_index(name)
        self._addresses[idx] = buffer
        return True

    def set_output_allocator(self, name: str, allocator: IOutputAllocator | None) -> bool:
        """Let `allocator` provide the memory of output `name` once its size is known (engine/output_allocator.py);
        None removes it. Needed for outputs whose size depends on the data, unless the address set for them is
        big enough."""
        idx = self.engine.io_index(name)
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
        return self._allocators.get(self.engine.io_index(name))

    def get_tensor_address(self, name: str) -> Any:
        return self._addresses.get(self.engine.io_index(name))

    def _wrap(self, idx: int, buffer: Any, shape: tuple[int, ...] | None) -> Any:
        tensor = self.engine.graph.tensors[idx]
        try:
            return self.engine.backend.wrap(buffer, shape, storage_dtype(tensor.dtype, self.engine.device),
                                            f"tensor '{tensor.name}'")
        except (TypeError, ValueError) as exc:
            raise ExecutionError(str(exc)) from None

    # ------------------------------------------------------------------ binding
    def _binding(self) -> Binding:
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
                binding = bind(self.engine, BoundInputs(self._profile, dict(self._input_shapes),
                                                        dict(self._input_values)))
            if binding.graph_failure is not None and self.use_cuda_graph and self.engine.backend.supports_cuda_graphs:
                self.engine.logger.log(Severity.WARNING, f"CUDA graph capture skipped: {binding.graph_failure}; this "
                                                         "context enqueues the layers one by one")
            while len(self._bindings) >= MAX_BINDINGS:  # least recently used first (dicts keep insertion order)
                self._bindings.pop(next(iter(self._bindings)))
        self._bindings[key] = binding
        return binding

    def _binding_or_none(self) -> Binding | None:
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
        slots, _, _ = run_eagerly(engine.graph, engine.tactic_states[self._profile], engine.device, engine.backend,
                                  inputs,
                                  {i: self._input_values[i] for i in engine.graph.shape_inputs},
                                  engine.device_constants)
        return {i: slots[i] for i in engine.graph.outputs}

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
                    memory = self._addresses[i] = allocator_memory(self._allocators[i], graph.tensors[i],
                                                                   self._addresses.get(i), shape)
                    outputs[i] = output_view(self.engine.backend, graph.tensors[i], memory, shape)
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
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        for name, array in zip(names, bindings):
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

    def _enqueue(self, binding: Binding, inputs: dict[int, Any], outputs: dict[int, Any],
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
        observers = StepObservers(self.profiler, self.debug_sync, self._nvtx, self._debug_listener,
                                  self._debug_tensors, self.profile_device_time)

        if binding.pending is not None:  # sizes are read back between stages: no CUDA graph
            with backend.stream_scope(stream):
                return run_stages(self.engine, binding, slots, host_outputs, stream, observers)

        def enqueue() -> None:
            with allocation_scope(self.engine.gpu_allocator, self.engine.device):
                run_steps(self.engine, binding, slots, host_outputs, stream, observers)

        if self.use_cuda_graph and backend.supports_cuda_graphs and self.profiler is None and not self.debug_sync \
                and self._debug_listener is None:
            if self._graph_replay.enqueue(self.engine, binding, enqueue, [*inputs.values(), *outputs.values()],
                                          stream):
                self.cuda_graph_captures += 1
            return {}
        with backend.stream_scope(stream):
            enqueue()
        return {}

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
            memory = self._addresses[i] = allocator_memory(allocator, tensor, memory, shape)
        self.engine.backend.xp.copyto(output_view(self.engine.backend, tensor, memory, shape), value)
        self._data_shapes[i] = shape
        if allocator is not None:
            allocator.notify_shape(tensor.name, shape)
