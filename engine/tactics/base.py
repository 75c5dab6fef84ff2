"""Tactic base class and the id every tactic is known by (the registry is registry.py, lookups catalog.py).

A tactic is one implementation of one layer type on one backend. It has a stable integer id (recorded in plans,
timing caches and tactic replay files), a readable name, a `supports` check, a workspace size, a build-time
`prepare` (weight re-layout: Winograd transform, transposed/FP16 copies, ...) and `run`, which writes the layer's
outputs into buffers the runtime planned.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..enums import LayerType, TacticSource, TensorFormat
from ..errors import PlanFormatError
from ..ir.epilogue import NO_EPILOGUE, Epilogue


@dataclass
class TacticContext:
    """What a tactic may look at when deciding and preparing: the layer (type, name, params, precision),
    input infos (shape, dtype, known value for constants) and output infos, at the shapes being built for.
    `extra` carries build options at build time: {"tf32": BuilderFlag.TF32 is set}. The formats are the tensors'
    memory layouts (None for an absent input); empty means all LINEAR."""

    layer: Any
    inputs: Sequence[Any]
    outputs: Sequence[Any]
    backend: str = "cpu"
    extra: dict = field(default_factory=dict)
    input_formats: Sequence[TensorFormat | None] = ()
    output_formats: Sequence[TensorFormat] = ()

    @property
    def channels_last(self) -> bool:
        """Whether the layer runs on HWC tensors (passes/tensor_formats.py gives a layer all-HWC activations)."""
        return TensorFormat.HWC in self.output_formats

    @property
    def epilogue(self) -> Epilogue:
        """What fusion appended to the layer (the builder's nodes carry one; a façade layer driven by hand
        has none)."""
        return getattr(self.layer, "epilogue", NO_EPILOGUE)


class Tactic:
    """Override `supports`, `workspace_bytes`, `prepare` and `run`.

    `run(state, inputs, outputs, workspace, xp)`: `inputs` are arrays (None for absent optional inputs),
    `outputs` preallocated arrays of the planned shapes and dtypes, to be filled completely.
    """

    id: int = 0
    name: str = "tactic"
    layer_type: LayerType = LayerType.MISC
    backend: str = "cpu"
    # Lower is preferred when tactics are chosen without timing (builder_optimization_level 0).
    heuristic_rank: int = 100
    # Minimum builder_optimization_level at which this tactic is considered (slow-to-time ones ask for more).
    min_optimization_level: int = 0
    # Parts of the layer's epilogue (ir/epilogue.py: "residual", "activation") that `run` does itself; the step
    # applies the rest after it.
    absorbs: frozenset[str] = frozenset()
    # True for tactics that run INT8 layers (quantized operands, int32 accumulation); the builder gives INT8 layers
    # only to them and every other layer only to the others.
    runs_int8: bool = False
    # False when `run` calls an API that CUDA-graph capture refuses (CuPy's own cuBLAS wrappers): GPU builds pick
    # such a tactic only for layers no capturable tactic supports, so engines replay as CUDA graphs.
    capturable: bool = True
    # The kernel library this tactic depends on (TacticSource); the builder skips it when
    # BuilderConfig.set_tactic_sources clears that source. None: always available (reference and CPU kernels).
    source: TacticSource | None = None
    # False for a tactic whose code is built for exactly the build device's architecture, so a plan choosing it
    # runs only there: builds with hardware_compatibility_level AMPERE_PLUS skip it (engine/compatibility.py).
    # Every tactic here compiles its kernels (NVRTC, native C) on the loading device, so none sets it yet.
    hardware_compatible: bool = True
    # True for a tactic that runs BF16 tensors as they are stored (ml_dtypes arrays on the CPU, uint16 bits on the
    # GPU) and sees them as BF16 in its context; other tactics get widened float32 copies (engine/bfloat16.py).
    reads_bfloat16: bool = False
    # The tensor formats `run` handles (engine/tensor_formats.py); the builder gives a layer whose tensors are HWC
    # only to tactics listing HWC, and the channels-last pass makes HWC only layers some such tactic can run.
    formats: frozenset[TensorFormat] = frozenset({TensorFormat.LINEAR})
    # A slow catch-all (the reference kernels, the float64 INT8 convolution): on the GPU the channels-last pass
    # forms no chain for such a tactic alone (builder.channels_last_check), it only keeps HWC layers runnable.
    is_fallback: bool = False

    def supports(self, ctx: TacticContext) -> bool | str:
        """True when this tactic can run the layer; otherwise False or a string saying why not."""
        return True

    def unavailable(self) -> str | None:
        """Why this tactic cannot run on this machine at all (a missing library), else None. The channels-last
        pass asks it: a chain is formed only where a tactic that can run it is really there."""
        return None

    def require_available(self, ctx: TacticContext, library: str) -> None:
        """Raise PlanFormatError naming the layer when `unavailable()` says this machine cannot run the tactic.
        For `prepare` of tactics that need a library: only a loaded plan gets there without the library (the
        builder asked `supports` first)."""
        reason = self.unavailable()
        if reason is not None:
            raise PlanFormatError(f"plan: layer '{ctx.layer.name}' runs on {library} (tactic {self.name}), which is "
                                  f"not usable here: {reason}")

    def may_run_channels_last(self, node: Any) -> bool:
        """Asked by the channels-last pass (through builder.channels_last_check) of a tactic that runs HWC, before
        it puts `node` (an ir.Node) in a chain: False when the tactic refuses it for its parameters alone, so no
        chain is formed around a layer only a slow fallback would run."""
        return True

    def workspace_bytes(self, ctx: TacticContext) -> int:
        return 0

    def prepare(self, ctx: TacticContext) -> Any:
        """Build-time work (weights re-layout); the result is passed to `run` as `state`."""
        return None

    def run(self, state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Tactic {self.name} id=0x{self.id:08x} {self.layer_type.value}/{self.backend}>"


def stable_tactic_id(name: str) -> int:
    """A 31-bit id derived from the tactic name: stable across processes and machines."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF
