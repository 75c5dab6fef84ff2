"""Engine (TensorRT's ICudaEngine): a loaded plan, ready to make execution contexts.

It checks that the plan can run here, puts the weights on the device once and prepares each chosen tactic once
(shared by the profiles that chose it); its contexts share all of that and own only their activation memory.
Answers TensorRT's queries about IO tensors, profiles and layers, and takes refitted weights.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .backends import get_backend
from .compatibility import check_loadable
from .config import ProfilingVerbosity
from .dtypes import DataType, nptype
from .enums import LayerType, TensorFormat, TensorIOMode
from .error_recorder import IErrorRecorder
from .errors import ExecutionError, PlanFormatError
from .execution_context import ExecutionContext
from .gpu_allocator import IGpuAllocator, allocation_scope, checked_allocator
from .graph import LoweredGraph, is_data_dependent, tactic_context
from .logger import Logger
from .memory_plan import device_lifetimes
from .plan import serialize_plan
from .shuffle_views import view_roots
from .subgraph import prepare_subgraph_tactics
from .tactics import tactic_by_id
from .tensor_formats import layer_formats
from .user_hooks import ErrorRecorderHook
from .version import __version__


class Engine(ErrorRecorderHook):
    """A loaded plan (TensorRT's ICudaEngine). `tactic_states`, `device_constants` and `tensor_lifetimes` are
    what its execution contexts share: prepared tactics per profile, weights on the device, activation lifetimes."""

    def __init__(self, graph: LoweredGraph, meta: dict[str, Any], logger: Logger, plan: bytes | None = None,
                 error_recorder: IErrorRecorder | None = None, gpu_allocator: IGpuAllocator | None = None):
        self.graph = graph
        self.meta = meta
        self.logger = logger
        self._plan = plan
        self.error_recorder = error_recorder  # checked by the property's setter
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
        self.tensor_lifetimes = device_lifetimes(graph)
        self.view_roots = view_roots(graph)  # view layers' outputs -> the tensor whose memory they share
        self._debug_index: dict[str, int] | None = None
        # Whether some layer's output sizes are known only after it ran: execution then goes in stages.
        self.has_data_dependent_shapes = any(is_data_dependent(spec.layer.type) for spec in graph.layers)
        with allocation_scope(self.gpu_allocator, self.device):
            self.device_constants = {i: self.backend.to_device(a) for i, a in graph.constants.items()}
        self.tactic_states = self._prepare_tactics()
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
        prepare_subgraph_tactics(self.graph, self.device)  # control-flow subgraph layers: one tactic each
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
                    tctx = tactic_context(self.graph, spec, self.device, widen=not tactic.reads_bfloat16)
                    unhandled = layer_formats(tctx) - tactic.formats
                    if unhandled:  # a tampered format field would otherwise run the kernel on the wrong layout
                        raise PlanFormatError(f"plan: layer '{spec.layer.name}' has "
                                              f"{'/'.join(sorted(f.value for f in unhandled))} tensors, which its "
                                              f"tactic {tactic.name} does not run")
                    prepared[key] = (tactic, tactic.prepare(tctx))
                states.append(prepared[key])
            per_profile.append(states)
        return per_profile

    # ------------------------------------------------------------------ TensorRT-style queries
    @property
    def num_io_tensors(self) -> int:
        return len(self._io_names)

    def get_tensor_name(self, index: int) -> str:
        return self._io_names[index]

    def io_index(self, name: str) -> int:
        """The tensor index of IO tensor `name`; an ExecutionError lists the IO tensors for any other name."""
        if name not in self._index:
            raise ExecutionError(f"'{name}' is not an input or output of this engine "
                                 f"(tensors: {', '.join(self._io_names)})")
        return self._index[name]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        idx = self.io_index(name)
        return TensorIOMode.INPUT if idx in self.graph.inputs else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.graph.tensors[self.io_index(name)].dtype

    def get_tensor_format(self, name: str) -> TensorFormat:
        """The IO tensor's memory layout (TensorRT's get_tensor_format): LINEAR, as the user's arrays are, also in a
        channels-last engine, whose HWC tensors are all inside (docs/formats.md)."""
        return self.graph.tensors[self.io_index(name)].format

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        """Build-time shape: -1 marks a dimension that depends on the input shapes."""
        return tuple(self.graph.tensors[self.io_index(name)].shape or ())

    def is_shape_inference_io(self, name: str) -> bool:
        """True for a shape input: its values (read on the host) set shapes inside the engine."""
        return self.io_index(name) in self.graph.shape_inputs

    @property
    def num_layers(self) -> int:
        return sum(1 for spec in self.graph.layers if spec.layer.type != LayerType.CONSTANT)

    @property
    def num_optimization_profiles(self) -> int:
        return len(self.profiles)

    def checked_profile(self, profile_index: Any) -> int:
        """`profile_index` as an int when this engine has that profile; an ExecutionError naming the range."""
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
        idx = self.io_index(name)
        if idx not in self.graph.inputs:
            raise ExecutionError(f"'{name}' is an output of engine '{self.name}'; optimization profiles give input "
                                 "shapes")
        return idx

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> tuple:
        """(min, opt, max) shapes of an input in one profile (an input of static shape: that shape three times)."""
        self._input(name)
        profile = self.profiles[self.checked_profile(profile_index)] if self.profiles else {}
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
        index = self.checked_profile(profile_index)
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
                self.device_constants[index] = self.backend.to_device(value)
        for spec in self.graph.layers:  # the constant layers' own copies (host evaluation reads them)
            if spec.layer.type == LayerType.CONSTANT and spec.outputs[0] in self.graph.constants:
                spec.layer.params["weights"] = self.graph.constants[spec.outputs[0]]
        self.tactic_states = self._prepare_tactics()
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

    def subgraph_layer_info(self) -> list[dict[str, Any]]:
        """Per layer inside a control-flow subgraph (nested ones too), in execution order: the subgraph
        ("<layer>/<then|else|body>", nested paths joined by "/"), name, type and its one tactic (0 and
        "reference": its reference kernel; it also runs that on shapes its tactic does not support)."""
        from .subgraph import subgraph_layers

        return [{"subgraph": path, "name": spec.layer.name, "type": spec.layer.type.value,
                 "tactic_id": spec.tactic_id, "tactic": spec.tactic_name or "reference"}
                for path, spec in subgraph_layers(self.graph)]

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
                "host": spec.host, "view": spec.view, "fused_from": spec.layer.metadata.get("fused_from", []),
                "epilogue": None if spec.layer.epilogue.empty else spec.layer.epilogue.to_json(),
                "inputs": [None if i is None else self.graph.tensors[i].name for i in spec.inputs],
                "outputs": [self.graph.tensors[o].name for o in spec.outputs],
            })
        return rows
