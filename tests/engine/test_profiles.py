"""Per-profile tactics: the builder chooses a tactic for every optimization profile at that profile's shapes, the
plan records each choice, and a context runs the tactics of its active profile. Results against NumPy float64."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import engine as trt
from engine.container import unpack
from engine.plan import FORMAT_VERSION, MAGIC
from engine.tactics import unregister_tactic

BIAS = np.random.default_rng(3).standard_normal((1, 16)).astype(np.float32)
# Overlapping batch ranges: batch 6 lies in both, so one shape can run with either profile's tactics.
PROFILES = [((1, 16), (2, 16), (8, 16)), ((4, 16), (12, 16), (16, 16))]


class CountingAddTactic(trt.Tactic):
    """ELEMENTWISE x + y in float64; counts its runs so a test sees which tactic the runtime used. Its workspace
    grows with the batch (`bytes_per_row`), to check the workspace limit per profile."""

    layer_type = trt.LayerType.ELEMENTWISE

    def __init__(self, name: str, bytes_per_row: int = 0):
        self.name = name
        self.id = 0
        self.runs = 0
        self.bytes_per_row = bytes_per_row

    def workspace_bytes(self, ctx: trt.TacticContext) -> int:
        return self.bytes_per_row * int(ctx.inputs[0].shape[0])

    def run(self, state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
        self.runs += 1
        xp.copyto(outputs[0], inputs[0].astype(np.float64) + inputs[1].astype(np.float64), casting="unsafe")


class PerProfileSelector(trt.IAlgorithmSelector):
    """For layer 'add', allows only the tactic named `names[profile_index]`; records every context it sees."""

    def __init__(self, names: list[str]):
        self.names = names
        self.contexts: list[trt.AlgorithmContext] = []
        self.reported: tuple[list, list] = ([], [])

    def select_algorithms(self, context, choices):
        self.contexts.append(context)
        if context.name != "add":
            return list(range(len(choices)))
        return [i for i, a in enumerate(choices) if a.tactic_name == self.names[context.profile_index]]

    def report_algorithms(self, contexts, choices):
        self.reported = (list(contexts), list(choices))


@pytest.fixture
def add_tactics():
    tactics = [trt.register_tactic(CountingAddTactic(f"test_profile_add_{i}")) for i in range(2)]
    yield tactics
    for tactic in tactics:
        unregister_tactic(tactic)


def build(configure) -> tuple[bytes, trt.Engine]:
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 16))
    bias = network.add_constant(BIAS.shape, BIAS, name="bias")
    add = network.add_elementwise(x, bias.get_output(0), trt.ElementWiseOperation.SUM, name="add")
    network.mark_output(add.get_output(0))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = 0
    for shapes in PROFILES:
        profile = builder.create_optimization_profile()
        profile.set_shape("x", *shapes)
        config.add_optimization_profile(profile)
    configure(config)
    plan = builder.build_serialized_network(network, config)
    return plan, trt.Runtime(logger).deserialize_cuda_engine(plan)


def reference(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) + BIAS.astype(np.float64)


def execute(context: trt.ExecutionContext, batch: int) -> np.ndarray:
    x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
    (out,) = context.execute({"x": x}).values()
    np.testing.assert_allclose(out, reference(x), rtol=1e-6, atol=1e-6)
    return out


def test_each_profile_gets_and_runs_its_own_tactic(add_tactics) -> None:
    first, second = add_tactics
    selector = PerProfileSelector([first.name, second.name])
    plan, engine = build(lambda c: setattr(c, "algorithm_selector", selector))

    asked = [(c.profile_index, c.get_shape(0)) for c in selector.contexts if c.name == "add"]
    assert asked == [(0, list(PROFILES[0])), (1, list(PROFILES[1]))]
    contexts, choices = selector.reported
    assert [(c.name, c.profile_index, a.tactic_name) for c, a in zip(contexts, choices)] == \
        [("add", 0, first.name), ("add", 1, second.name)]

    header, _ = unpack(plan, MAGIC, FORMAT_VERSION, "plan")
    (entry,) = [layer for layer in header["layers"] if layer["name"] == "add"]
    assert entry["tactic_ids"] == [first.id, second.id]
    assert (entry["tactic_id"], entry["tactic_name"]) == (first.id, first.name)
    (row,) = [row for row in engine.layer_info() if row["name"] == "add"]
    assert row["tactic"] == first.name
    assert row["tactics_per_profile"] == [first.name, second.name]

    first.runs = second.runs = 0
    context = engine.create_execution_context()
    execute(context, 6)
    assert (first.runs, second.runs) == (1, 0)
    context.set_optimization_profile_async(1, None)
    context.set_input_shape("x", (6, 16))  # the same shape as before: the binding must still switch tactics
    execute(context, 6)
    execute(context, 16)
    assert (first.runs, second.runs) == (1, 2)
    with pytest.raises(trt.ShapeError, match=r"shape \(2, 16\) is outside optimization profile 1"):
        context.set_input_shape("x", (2, 16))
    context.set_optimization_profile_async(0, None)
    execute(context, 2)
    assert (first.runs, second.runs) == (2, 2)


def test_workspace_limit_holds_per_profile(add_tactics) -> None:
    """A tactic whose workspace at profile 1's max exceeds the limit stays allowed for profile 0."""
    big = add_tactics[0]
    big.bytes_per_row, big.heuristic_rank = 100, 1  # preferred wherever it fits
    limit = 100 * PROFILES[0][2][0]  # fits profile 0's max batch (8), not profile 1's (16)
    _, engine = build(lambda c: c.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, limit))
    (row,) = [row for row in engine.layer_info() if row["name"] == "add"]
    assert row["tactics_per_profile"][0] == big.name
    assert row["tactics_per_profile"][1] != big.name
    context = engine.create_execution_context()
    context.set_optimization_profile_async(1, None)
    execute(context, 16)
