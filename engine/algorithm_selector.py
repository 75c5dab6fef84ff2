"""Algorithm selector interface (TensorRT's IAlgorithmSelector) and the objects the builder passes to it.

The builder calls `select_algorithms(context, choices)` for every layer and every optimization profile (as
TensorRT does: `context.profile_index`, shapes of that profile) with its candidate tactics (already timed at that
profile's opt shape, unless the optimization level skips timing) and picks the fastest among the returned indices;
after the build it calls `report_algorithms(contexts, choices)` once with what was chosen, profile 0's layers
first. polyx's tactic replay and
`debug tactics` bisection are written on top of this interface only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AlgorithmVariant:
    implementation: int  # the tactic's layer family (stable hash of the layer type and backend)
    tactic: int          # the tactic id


@dataclass(frozen=True)
class AlgorithmIOInfo:
    dtype: Any
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Algorithm:
    algorithm_variant: AlgorithmVariant
    tactic_name: str
    timing_msec: float
    workspace_size: int
    inputs: tuple[AlgorithmIOInfo, ...] = ()
    outputs: tuple[AlgorithmIOInfo, ...] = ()

    def get_algorithm_io_info(self, index: int) -> AlgorithmIOInfo:
        ios = self.inputs + self.outputs
        return ios[index]


@dataclass(frozen=True)
class AlgorithmContext:
    name: str
    layer_type: str
    # per input/output: (min, opt, max) shapes of the profile being built
    input_shapes: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    output_shapes: tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    precision: str = "FLOAT"
    profile_index: int = 0  # the optimization profile whose shapes these are (the builder asks once per profile)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def num_inputs(self) -> int:
        return len(self.input_shapes)

    @property
    def num_outputs(self) -> int:
        return len(self.output_shapes)

    def get_shape(self, index: int) -> list[tuple[int, ...]]:
        """[min, opt, max] shapes of input `index` (outputs follow the inputs, as in TensorRT)."""
        return list((self.input_shapes + self.output_shapes)[index])


class IAlgorithmSelector:
    """Subclass and override both methods; assign an instance to `config.algorithm_selector`."""

    def select_algorithms(self, context: AlgorithmContext, choices: list[Algorithm]) -> list[int]:
        return list(range(len(choices)))

    def report_algorithms(self, contexts: list[AlgorithmContext], choices: list[Algorithm]) -> None:
        return None
