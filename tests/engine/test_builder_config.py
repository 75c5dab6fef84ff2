"""BuilderConfig: every builder flag either takes effect or is refused by name; tactic sources remove the tactics
of a cleared source from the builder's candidates."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import engine as trt
from engine.config import REFUSED_FLAGS
from engine.enums import ALL_TACTIC_SOURCES, allowed_by_sources
from engine.ops.base import layer_impl
from engine.tactic_selection import skipped_tactic_lines
from engine.tactics import unregister_tactic
from engine.tactics.base import stable_tactic_id

ACCEPTED_FLAGS = {trt.BuilderFlag.FP16, trt.BuilderFlag.INT8, trt.BuilderFlag.TF32,
                  trt.BuilderFlag.DISABLE_TIMING_CACHE, trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS,
                  trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS, trt.BuilderFlag.REJECT_EMPTY_ALGORITHMS,
                  trt.BuilderFlag.DEBUG, trt.BuilderFlag.REFIT, trt.BuilderFlag.STRIP_PLAN, trt.BuilderFlag.BF16,
                  trt.BuilderFlag.VERSION_COMPATIBLE}


def test_every_flag_is_either_accepted_or_refused() -> None:
    assert set(REFUSED_FLAGS) == {trt.BuilderFlag.GPU_FALLBACK,
                                  trt.BuilderFlag.SPARSE_WEIGHTS, trt.BuilderFlag.SAFETY_SCOPE,
                                  trt.BuilderFlag.DIRECT_IO}
    assert set(REFUSED_FLAGS) | ACCEPTED_FLAGS == set(trt.BuilderFlag)
    config = trt.BuilderConfig()
    for flag in ACCEPTED_FLAGS:
        config.set_flag(flag)
        assert config.get_flag(flag)
    assert config.flags == sum(1 << int(flag) for flag in ACCEPTED_FLAGS)


@pytest.mark.parametrize("flag, why", [
    (trt.BuilderFlag.SPARSE_WEIGHTS, "structured-sparsity"),
    (trt.BuilderFlag.GPU_FALLBACK, "no DLA"),
    (trt.BuilderFlag.SAFETY_SCOPE, "no safety runtime"),
    (trt.BuilderFlag.DIRECT_IO, "reformats"),
])
def test_refused_flag_names_itself_and_leaves_the_config_unchanged(flag, why) -> None:
    config = trt.BuilderConfig()
    config.set_flag(trt.BuilderFlag.FP16)
    with pytest.raises(trt.BuildError, match=rf"^BuilderFlag\.{flag.name} is not supported: .*{why}"):
        config.set_flag(flag)
    with pytest.raises(trt.BuildError, match=rf"BuilderFlag\.{flag.name} is not supported"):
        config.flags = 1 << int(flag)
    assert config.flags == 1 << int(trt.BuilderFlag.FP16)


def test_flags_mask_rejects_bits_that_are_no_flag() -> None:
    config = trt.BuilderConfig()
    with pytest.raises(trt.BuildError, match=r"builder flags 0x11: bits 0x10 are not BuilderFlag values"):
        config.flags = 1 | 1 << 4  # FP16 | bit 4 (no flag: TensorRT's removed STRICT_TYPES)
    config.flags = 1 << int(trt.BuilderFlag.TF32)
    assert config.get_flag(trt.BuilderFlag.TF32) and not config.get_flag(trt.BuilderFlag.FP16)


def test_int8_calibrator_must_be_a_calibrator() -> None:
    config = trt.BuilderConfig()
    with pytest.raises(trt.BuildError, match="int8_calibrator must subclass one of engine's IInt8...Calibrator"):
        config.int8_calibrator = object()
    config.int8_calibrator = trt.IInt8MinMaxCalibrator()
    config.int8_calibrator = None
    assert config.int8_calibrator is None


def test_int8_flag_builds_in_fp32_with_a_warning() -> None:
    logger = trt.CapturingLogger()
    builder = trt.Builder(logger)
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 4))
    network.mark_output(network.add_activation(x, trt.ActivationType.RELU, name="relu").get_output(0))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.set_flag(trt.BuilderFlag.INT8)
    builder.build_serialized_network(network, config)
    assert (trt.Severity.WARNING, "INT8 flag set, but the network has no Q/DQ layers, no int8_calibrator and no "
                                  "tensor dynamic ranges: INT8 is not used") in logger.messages


# ---------------------------------------------------------------------------------------------- tactic sources
class _Sourced:
    def __init__(self, source):
        self.source = source


def test_allowed_by_sources() -> None:
    cublas = _Sourced(trt.TacticSource.CUBLAS)
    jit = _Sourced(trt.TacticSource.JIT_CONVOLUTIONS)
    assert ALL_TACTIC_SOURCES == 0b11111
    assert allowed_by_sources(cublas, ALL_TACTIC_SOURCES) and allowed_by_sources(jit, ALL_TACTIC_SOURCES)
    only_jit = 1 << int(trt.TacticSource.JIT_CONVOLUTIONS)
    assert not allowed_by_sources(cublas, only_jit)
    assert allowed_by_sources(jit, only_jit)
    assert not allowed_by_sources(jit, 0)
    assert allowed_by_sources(_Sourced(None), 0)  # reference / CPU kernels: always available
    assert allowed_by_sources(object(), 0)        # a tactic class written before `source` existed


def test_tensorrt_values_of_tactic_sources_and_gpu_tactics_carry_them() -> None:
    assert [(s.name, int(s)) for s in trt.TacticSource] == [
        ("CUBLAS", 0), ("CUBLAS_LT", 1), ("CUDNN", 2), ("EDGE_MASK_CONVOLUTIONS", 3), ("JIT_CONVOLUTIONS", 4)]
    from engine.tactics import tactics_for

    def sources(layer_type, backend):
        return {t.name: t.source for t in tactics_for(layer_type, backend)}

    conv = sources(trt.LayerType.CONVOLUTION, "gpu")
    assert conv["gpu:conv:implicit_gemm_nvrtc"] == trt.TacticSource.JIT_CONVOLUTIONS
    assert conv["gpu:conv:im2col_gemm"] == trt.TacticSource.CUBLAS
    assert conv["gpu_reference_convolution"] is None
    assert sources(trt.LayerType.MATRIX_MULTIPLY, "gpu")["gpu:matmul:cublas_gemm_fp32"] == trt.TacticSource.CUBLAS
    assert set(sources(trt.LayerType.CONVOLUTION, "cpu").values()) == {None}


def test_set_tactic_sources_refuses_unknown_bits() -> None:
    config = trt.BuilderConfig()
    assert config.get_tactic_sources() == ALL_TACTIC_SOURCES
    assert config.set_tactic_sources(1 << int(trt.TacticSource.CUDNN)) is True
    assert config.get_tactic_sources() == 0b100
    with pytest.raises(trt.BuildError, match=r"tactic sources 0x21: bits 0x20 name no TacticSource \(valid: CUBLAS=0"):
        config.set_tactic_sources(0x21)
    with pytest.raises(trt.BuildError, match="tactic sources"):
        config.set_tactic_sources(-1)
    assert config.get_tactic_sources() == 0b100


class CublasSourcedTactic(trt.Tactic):
    """A CPU ELEMENTWISE tactic claiming the CUBLAS source, preferred over the reference when nothing is timed."""

    name = "test_cublas_sourced_elementwise"
    layer_type = trt.LayerType.ELEMENTWISE
    source = trt.TacticSource.CUBLAS
    heuristic_rank = 10

    def prepare(self, ctx: trt.TacticContext) -> Any:
        return ctx.layer

    def run(self, state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
        for out, result in zip(outputs, layer_impl(self.layer_type).compute(state, inputs, xp)):
            xp.copyto(out, result, casting="unsafe")


class RecordingSelector(trt.IAlgorithmSelector):
    def __init__(self):
        self.choices: dict[str, list[str]] = {}

    def select_algorithms(self, context, choices):
        self.choices[context.name] = [a.tactic_name for a in choices]
        return list(range(len(choices)))


@pytest.fixture
def cublas_sourced_tactic():
    tactic = trt.register_tactic(CublasSourcedTactic())
    yield tactic
    unregister_tactic(tactic)


def _build_add(sources: int | None, level: int = 0):
    logger = trt.CapturingLogger()
    builder = trt.Builder(logger)
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 3))
    c = network.add_constant((1, 3), np.arange(3, dtype=np.float32).reshape(1, 3), name="c")
    network.mark_output(network.add_elementwise(x, c.get_output(0), trt.ElementWiseOperation.SUM,
                                                name="add").get_output(0))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = level
    selector = RecordingSelector()
    config.algorithm_selector = selector
    if sources is not None:
        config.set_tactic_sources(sources)
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    return engine, selector, logger


def test_cleared_tactic_source_removes_its_tactics_from_the_candidates(cublas_sourced_tactic) -> None:
    engine, selector, _ = _build_add(None)
    assert selector.choices["add"] == ["test_cublas_sourced_elementwise", "cpu_reference_elementwise"]
    assert {r["name"]: r["tactic"] for r in engine.layer_info()}["add"] == "test_cublas_sourced_elementwise"

    without_cublas = ALL_TACTIC_SOURCES & ~(1 << int(trt.TacticSource.CUBLAS))
    engine, selector, logger = _build_add(without_cublas, level=3)
    assert selector.choices["add"] == ["cpu_reference_elementwise"]
    assert {r["name"]: r["tactic"] for r in engine.layer_info()}["add"] == "cpu_reference_elementwise"
    why = "[add] tactic test_cublas_sourced_elementwise skipped: tactic source CUBLAS is disabled (set_tactic_sources)"
    assert (trt.Severity.VERBOSE, why) in logger.messages
    x = np.ones((2, 3), np.float32)
    (out,) = engine.create_execution_context().execute({"x": x}).values()
    np.testing.assert_array_equal(out, [[1, 2, 3], [1, 2, 3]])


def test_tactics_skipped_for_one_reason_are_one_verbose_line_per_layer() -> None:
    """The 128 cuDNN engine tactics share one reason without the frontend: one line per layer, not 128."""
    tactics = []
    for k in range(5):
        tactic = CublasSourcedTactic()
        tactic.name = f"test_cublas_sourced_elementwise{k}"
        tactic.id = stable_tactic_id(tactic.name)
        tactics.append(trt.register_tactic(tactic))
    try:
        _, selector, logger = _build_add(ALL_TACTIC_SOURCES & ~(1 << int(trt.TacticSource.CUBLAS)))
    finally:
        for tactic in tactics:
            unregister_tactic(tactic)
    assert selector.choices["add"] == ["cpu_reference_elementwise"]
    skipped = [msg for _, msg in logger.messages if "test_cublas_sourced_elementwise" in msg]
    first = ", ".join(t.name for t in sorted(tactics, key=lambda t: t.id)[:3])  # candidates go in (rank, id) order
    assert skipped == [f"[add] 5 tactics ({first} and 2 more) skipped: tactic source CUBLAS is disabled "
                       "(set_tactic_sources)"], skipped


def test_skipped_tactic_lines_keep_distinct_reasons_apart_in_first_seen_order() -> None:
    lines = skipped_tactic_lines("conv", {"reason b": ["t1"], "reason a": ["t2", "t3"]})
    assert lines == ["[conv] tactic t1 skipped: reason b", "[conv] 2 tactics (t2, t3) skipped: reason a"]


def test_debug_flag_engines_synchronize_after_every_layer() -> None:
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (2, 4))
    network.mark_output(network.add_activation(x, trt.ActivationType.RELU, name="relu").get_output(0))
    runtime = trt.Runtime(builder.logger)
    contexts = []
    for debug in (False, True):
        config = builder.create_builder_config()
        config.device = "cpu"
        if debug:
            config.set_flag(trt.BuilderFlag.DEBUG)
        contexts.append(runtime.deserialize_cuda_engine(builder.build_serialized_network(network, config))
                        .create_execution_context())
    assert [c.debug_sync for c in contexts] == [False, True]
    values = np.array([[-1, 2, -3, 4], [5, -6, 7, -8]], np.float32)
    np.testing.assert_array_equal(contexts[1].execute({"x": values})["relu_output_0"], np.maximum(values, 0))
