"""Builder: optimization levels, tactic timing, algorithm selector, timing cache, workspace limit, profiles,
FP16 and per-layer precision, graph passes. Values are checked against float64/float16 NumPy and onnxruntime."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine as trt
from engine.conformance.harness import parse_onnx
from engine.ops.base import layer_impl
from engine.tactics import unregister_tactic

RNG = np.random.default_rng(7)
TIMING_LINE = re.compile(r"^\[(?P<layer>[^\]]+)\] (?P<tactic>\S+) \(0x[0-9a-f]{8}\): [0-9.]+ ms$")
WORKSPACE = 1 << 20


class Float64Tactic(trt.Tactic):
    """A second implementation of any layer type: the reference kernel evaluated in float64 and rounded back.
    It asks for a workspace and checks it gets one, so the builder and runtime must both provide it."""

    heuristic_rank = 10  # preferred over the reference tactic when nothing is timed

    def __init__(self, layer_type: trt.LayerType, workspace: int = WORKSPACE):
        self.layer_type = layer_type
        self.name = f"test_float64_{layer_type.value.lower()}"
        self.id = 0
        self.workspace = workspace
        self.runs = 0

    def workspace_bytes(self, ctx: trt.TacticContext) -> int:
        return self.workspace

    def run(self, state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
        assert workspace is not None and workspace.nbytes >= self.workspace, "the tactic's workspace was not given"
        self.runs += 1
        layer = state
        wide = [None if a is None else (a.astype(xp.float64) if a.dtype.kind == "f" else a) for a in inputs]
        for out, result in zip(outputs, layer_impl(self.layer_type).compute(layer, wide, xp)):
            xp.copyto(out, result, casting="unsafe")

    def prepare(self, ctx: trt.TacticContext) -> Any:
        return ctx.layer


@pytest.fixture
def extra_tactics():
    """Registers Float64Tactic for ELEMENTWISE, CONVOLUTION and MATRIX_MULTIPLY; removed after the test."""
    tactics = {t: trt.register_tactic(Float64Tactic(t)) for t in
               (trt.LayerType.ELEMENTWISE, trt.LayerType.CONVOLUTION, trt.LayerType.MATRIX_MULTIPLY)}
    yield tactics
    for tactic in tactics.values():
        unregister_tactic(tactic)


# ---------------------------------------------------------------------------------------------- networks
CONV_W = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
CONV_B = RNG.standard_normal(4).astype(np.float32)
FC_W = RNG.standard_normal((4 * 6 * 6, 5)).astype(np.float32)
FC_B = RNG.standard_normal((1, 5)).astype(np.float32)


def conv_fc_network(network: trt.NetworkDefinition) -> None:
    """x (N,3,8,8) → conv3x3 → relu → flatten → matmul → * scale: one layer of each tactic-bearing type (a scale,
    unlike a bias, stays a layer of its own)."""
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 3, 8, 8))
    conv = network.add_convolution_nd(x, 4, (3, 3), CONV_W, CONV_B, name="conv")
    relu = network.add_activation(conv.get_output(0), trt.ActivationType.RELU, name="relu")
    flat = network.add_shuffle(relu.get_output(0), name="flatten")
    flat.reshape_dims = (0, -1)
    w = network.add_constant(FC_W.shape, FC_W, name="fc.w")
    b = network.add_constant(FC_B.shape, FC_B, name="fc.b")
    mm = network.add_matrix_multiply(flat.get_output(0), trt.MatrixOperation.NONE, w.get_output(0),
                                     trt.MatrixOperation.NONE, name="fc")
    add = network.add_elementwise(mm.get_output(0), b.get_output(0), trt.ElementWiseOperation.PROD, name="fc.scale")
    network.mark_output(add.get_output(0))


def conv_fc_reference(x: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(x.astype(np.float64), (3, 3), axis=(2, 3))
    y = np.einsum("nchwij,kcij->nkhw", windows, CONV_W.astype(np.float64)) + CONV_B.reshape(1, -1, 1, 1)
    y = np.maximum(y, 0).reshape(len(x), -1)
    return (y @ FC_W.astype(np.float64)) * FC_B


def chain_network(network: trt.NetworkDefinition, length: int = 3) -> None:
    """x (2,16) → length x (x + c_i): a pure ELEMENTWISE chain."""
    t = network.add_input("x", trt.DataType.FLOAT, (2, 16))
    for i in range(length):
        c = network.add_constant((1, 16), np.full((1, 16), i + 1, np.float32), name=f"c{i}")
        t = network.add_elementwise(t, c.get_output(0), trt.ElementWiseOperation.SUM, name=f"add{i}").get_output(0)
    network.mark_output(t)


def build(make_network, logger: trt.Logger | None = None, level: int = 3, profile: dict | None = None,
          configure=None) -> tuple[bytes, trt.Engine, trt.BuilderConfig]:
    logger = logger or trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network()
    make_network(network)
    config = builder.create_builder_config()
    config.device = "cpu"
    config.builder_optimization_level = level
    if profile:
        opt = builder.create_optimization_profile()
        for name, shapes in profile.items():
            opt.set_shape(name, *shapes)
        config.add_optimization_profile(opt)
    if configure is not None:
        configure(config)
    plan = builder.build_serialized_network(network, config)
    return plan, trt.Runtime(logger).deserialize_cuda_engine(plan), config


CONV_PROFILE = {"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}


def timing_lines(logger: trt.CapturingLogger) -> list[re.Match]:
    return [m for sev, msg in logger.messages if sev == trt.Severity.VERBOSE and (m := TIMING_LINE.match(msg))]


def tactics_of(engine: trt.Engine) -> dict[str, str]:
    return {row["name"]: row["tactic"] for row in engine.layer_info() if not row["host"]}


def run(engine: trt.Engine, x: np.ndarray) -> np.ndarray:
    (out,) = engine.create_execution_context().execute({"x": x}).values()
    return out


# ---------------------------------------------------------------------------------------------- levels, timing
def test_level_0_times_nothing_and_picks_by_heuristic(extra_tactics) -> None:
    logger = trt.CapturingLogger()
    _, engine, _ = build(chain_network, logger, level=0)
    assert timing_lines(logger) == []
    assert (trt.Severity.INFO, "tactic selection: 3 layers, 0 timed") in logger.messages
    assert set(tactics_of(engine).values()) == {"test_float64_elementwise"}
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    np.testing.assert_allclose(run(engine, x), x + 6, rtol=1e-6)
    assert extra_tactics[trt.LayerType.ELEMENTWISE].runs >= 3


def test_default_level_times_every_candidate(extra_tactics) -> None:
    logger = trt.CapturingLogger()
    _, engine, config = build(chain_network, logger)
    assert config.builder_optimization_level == 3 and trt.BuilderConfig().builder_optimization_level == 3
    timed = {(m["layer"], m["tactic"]) for m in timing_lines(logger)}
    # The three adds share one signature: the first is timed, the others reuse its timings from the cache.
    assert timed == {("add0", "test_float64_elementwise"), ("add0", "cpu_reference_elementwise")}
    assert (trt.Severity.VERBOSE, "[add1] timing cache hit") in logger.messages
    assert (trt.Severity.VERBOSE, "[add2] timing cache hit") in logger.messages
    assert (trt.Severity.INFO, "tactic selection: 3 layers, 1 timed") in logger.messages
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    np.testing.assert_allclose(run(engine, x), x + 6, rtol=1e-6)


def test_cpu_timings_are_wall_clock_per_call() -> None:
    """The CPU backend times each call by the wall clock (the GPU's replays a CUDA graph instead, tests/gpu)."""
    import time

    from engine.backends.cpu import CpuBackend

    calls = []
    samples = CpuBackend().time_runs(lambda: (calls.append(1), time.sleep(0.002)), 3)
    assert len(samples) == 3 and len(calls) == 3
    assert all(1.9 <= s < 500 for s in samples), samples


def test_invalid_optimization_level_is_a_build_error() -> None:
    with pytest.raises(trt.BuildError, match="builder_optimization_level must be 0..5, got 7"):
        build(chain_network, level=7)


# ---------------------------------------------------------------------------------------------- algorithm selector
class ForceOtherSelector(trt.IAlgorithmSelector):
    """Forces, for every layer with a choice, a tactic other than `default[layer]`."""

    def __init__(self, default: dict[str, str]):
        self.default = default
        self.forced: dict[str, str] = {}
        self.reported: tuple[list, list] | None = None

    def select_algorithms(self, context, choices):
        others = [i for i, a in enumerate(choices) if a.tactic_name != self.default.get(context.name)]
        if len(choices) < 2 or not others:
            return list(range(len(choices)))
        self.forced[context.name] = choices[others[0]].tactic_name
        return others[:1]

    def report_algorithms(self, contexts, choices):
        self.reported = (list(contexts), list(choices))


def test_selector_forcing_other_tactics_gives_the_same_results(extra_tactics) -> None:
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    _, default_engine, _ = build(conv_fc_network, profile=CONV_PROFILE)
    default = tactics_of(default_engine)
    selector = ForceOtherSelector(default)
    _, forced_engine, _ = build(conv_fc_network, profile=CONV_PROFILE,
                                configure=lambda c: setattr(c, "algorithm_selector", selector))
    forced = tactics_of(forced_engine)
    assert {"conv", "fc", "fc.scale"} <= set(selector.forced)
    for name, tactic in selector.forced.items():
        assert forced[name] == tactic != default[name]
    expected = conv_fc_reference(x)
    np.testing.assert_allclose(run(default_engine, x), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(run(forced_engine, x), run(default_engine, x), rtol=1e-5, atol=1e-5)

    contexts, choices = selector.reported
    assert [c.name for c in contexts] == [row["name"] for row in forced_engine.layer_info() if not row["host"]]
    by_name = {c.name: a for c, a in zip(contexts, choices)}
    ids = {row["name"]: row["tactic_id"] for row in forced_engine.layer_info()}
    for name, tactic in selector.forced.items():
        assert by_name[name].tactic_name == tactic
        assert by_name[name].algorithm_variant.tactic == ids[name]
        if tactic.startswith("test_float64"):
            assert by_name[name].workspace_size == WORKSPACE
    conv_context = next(c for c in contexts if c.name == "conv")
    assert conv_context.layer_type == "CONVOLUTION"
    assert conv_context.get_shape(0) == [(1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8)]
    assert conv_context.get_shape(conv_context.num_inputs) == [(1, 4, 6, 6), (2, 4, 6, 6), (4, 4, 6, 6)]


K3 = RNG.standard_normal((6, 4, 3, 3)).astype(np.float32)
K1 = RNG.standard_normal((6, 6, 1, 1)).astype(np.float32)
KD = RNG.standard_normal((6, 1, 3, 3)).astype(np.float32)
BD = RNG.standard_normal(6).astype(np.float32)
FC2_W = RNG.standard_normal((6 * 4 * 4, 3)).astype(np.float32)


def three_conv_network(network: trt.NetworkDefinition) -> None:
    """conv3x3 pad 1 → conv1x1 → depthwise 3x3 stride 2 pad 1 (+bias) → flatten → matmul."""
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 4, 8, 8))
    c3 = network.add_convolution_nd(x, 6, (3, 3), K3, None, name="conv3x3")
    c3.padding_nd = (1, 1)
    c1 = network.add_convolution_nd(c3.get_output(0), 6, (1, 1), K1, None, name="conv1x1")
    dw = network.add_convolution_nd(c1.get_output(0), 6, (3, 3), KD, BD, name="depthwise")
    dw.num_groups = 6
    dw.stride_nd = (2, 2)
    dw.padding_nd = (1, 1)
    flat = network.add_shuffle(dw.get_output(0), name="flatten")
    flat.reshape_dims = (0, -1)
    w = network.add_constant(FC2_W.shape, FC2_W, name="w")
    mm = network.add_matrix_multiply(flat.get_output(0), trt.MatrixOperation.NONE, w.get_output(0),
                                     trt.MatrixOperation.NONE, name="fc")
    network.mark_output(mm.get_output(0))


def three_conv_reference(x: np.ndarray) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    def conv(x, w, stride=1, pad=0, groups=1):
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        win = sliding_window_view(x, w.shape[2:], axis=(2, 3))[:, :, ::stride, ::stride]
        n, c, h, wd = win.shape[:4]
        win = win.reshape(n, groups, c // groups, h, wd, *w.shape[2:])
        wg = w.astype(np.float64).reshape(groups, -1, *w.shape[1:])
        return np.einsum("ngchwij,gkcij->ngkhw", win, wg).reshape(n, -1, h, wd)

    y = conv(conv(x.astype(np.float64), K3, pad=1), K1)
    y = conv(y, KD, stride=2, pad=1, groups=6) + BD.reshape(1, -1, 1, 1)
    return y.reshape(len(x), -1) @ FC2_W.astype(np.float64)


class RecordingSelector(trt.IAlgorithmSelector):
    def __init__(self, force: dict[str, str] | None = None):
        self.force = force or {}
        self.choices: dict[str, list[str]] = {}

    def select_algorithms(self, context, choices):
        self.choices[context.name] = [a.tactic_name for a in choices]
        if context.name in self.force:
            return [self.choices[context.name].index(self.force[context.name])]
        return list(range(len(choices)))


def test_every_conv_and_matmul_tactic_matches_the_reference() -> None:
    """Force each candidate tactic of each conv / matmul layer in turn: all agree with float64 NumPy."""
    profile = {"x": ((1, 4, 8, 8), (2, 4, 8, 8), (3, 4, 8, 8))}
    recorder = RecordingSelector()
    build(three_conv_network, profile=profile, configure=lambda c: setattr(c, "algorithm_selector", recorder))
    assert {"conv3x3", "conv1x1", "depthwise", "fc"} <= set(recorder.choices)
    x = RNG.standard_normal((3, 4, 8, 8)).astype(np.float32)
    expected = three_conv_reference(x)
    tried = 0
    for layer in ("conv3x3", "conv1x1", "depthwise", "fc"):
        for name in recorder.choices[layer]:
            selector = RecordingSelector({layer: name})
            _, engine, _ = build(three_conv_network, profile=profile,
                                 configure=lambda c, s=selector: setattr(c, "algorithm_selector", s))
            assert tactics_of(engine)[layer] == name
            np.testing.assert_allclose(run(engine, x), expected, rtol=1e-4, atol=1e-4,
                                       err_msg=f"layer {layer} with tactic {name}")
            tried += 1
    assert tried >= 4

class FixedSelector(trt.IAlgorithmSelector):
    def __init__(self, answer):
        self.answer = answer

    def select_algorithms(self, context, choices):
        return self.answer


@pytest.mark.parametrize("answer, message", [
    ([], r"layer 'add0': the algorithm selector returned no algorithm"),
    ([5], r"layer 'add0': the algorithm selector returned index 5, valid indices are 0..1"),
    ([-1], r"layer 'add0': the algorithm selector returned index -1"),
])
def test_selector_bad_answers_are_build_errors(extra_tactics, answer, message) -> None:
    with pytest.raises(trt.BuildError, match=message):
        build(chain_network, configure=lambda c: setattr(c, "algorithm_selector", FixedSelector(answer)))


# ---------------------------------------------------------------------------------------------- timing cache
def test_warm_timing_cache_gives_identical_plan_without_timing(extra_tactics) -> None:
    cold_logger = trt.CapturingLogger()
    cache_holder = {}

    def with_new_cache(config):
        cache_holder["cache"] = config.create_timing_cache(b"")
        config.set_timing_cache(cache_holder["cache"])

    cold_plan, _, _ = build(conv_fc_network, cold_logger, profile=CONV_PROFILE, configure=with_new_cache)
    assert len(timing_lines(cold_logger)) >= 6  # conv, fc, fc.scale: two candidates each
    serialized = cache_holder["cache"].serialize()
    assert len(cache_holder["cache"]) >= 3

    warm_logger = trt.CapturingLogger()

    def with_loaded_cache(config):
        config.set_timing_cache(config.create_timing_cache(serialized))

    warm_plan, _, _ = build(conv_fc_network, warm_logger, profile=CONV_PROFILE, configure=with_loaded_cache)
    assert warm_plan == cold_plan
    assert timing_lines(warm_logger) == []
    hits = [msg for _, msg in warm_logger.messages if msg.endswith("timing cache hit")]
    assert {"[conv] timing cache hit", "[fc] timing cache hit", "[fc.scale] timing cache hit"} <= set(hits)
    assert not any(msg.endswith("timing cache miss") for _, msg in warm_logger.messages)
    assert any(re.fullmatch(r"tactic selection: \d+ layers, 0 timed", msg) for _, msg in warm_logger.messages)


def test_timing_cache_rejects_damaged_bytes() -> None:
    data = bytearray(trt.TimingCache().serialize())
    data[-1] ^= 0xFF
    with pytest.raises(trt.PlanFormatError, match="timing cache: checksum mismatch"):
        trt.BuilderConfig().create_timing_cache(bytes(data))


# ---------------------------------------------------------------------------------------------- workspace limit
def test_workspace_limit_removes_a_tactic_and_says_why(extra_tactics) -> None:
    _, unlimited, _ = build(chain_network, level=0)
    assert set(tactics_of(unlimited).values()) == {"test_float64_elementwise"}
    assert unlimited.meta["memory"]["workspace_bytes"] == WORKSPACE
    assert unlimited.device_memory_size >= WORKSPACE

    logger = trt.CapturingLogger()
    _, limited, _ = build(chain_network, logger, level=0,
                          configure=lambda c: c.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1024))
    assert set(tactics_of(limited).values()) == {"cpu_reference_elementwise"}
    assert limited.meta["memory"]["workspace_bytes"] == 0
    why = f"[add0] tactic test_float64_elementwise skipped: workspace {WORKSPACE} bytes exceeds the limit of 1024"
    assert (trt.Severity.VERBOSE, why) in logger.messages
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    np.testing.assert_array_equal(run(limited, x), run(unlimited, x))


def runtime_workspace(engine: trt.Engine, x: np.ndarray) -> tuple[int, np.ndarray]:
    """Workspace bytes the runtime gives a context bound to x's shape (from its VERBOSE log), and the output."""
    logger = trt.CapturingLogger()
    loaded = trt.Runtime(logger).deserialize_cuda_engine(engine.serialize())
    out = run(loaded, x)
    (binding,) = [msg for _, msg in logger.messages if msg.startswith("context bound shapes")]
    return int(re.search(r"workspace (\d+) bytes", binding).group(1)), out


class BatchScaledWorkspaceTactic(Float64Tactic):
    """Float64Tactic whose workspace grows with the batch, as an im2col buffer does."""

    def workspace_bytes(self, ctx: trt.TacticContext) -> int:
        return 4096 * ctx.inputs[0].shape[0]

    def run(self, state: Any, inputs: list[Any], outputs: list[Any], workspace: Any, xp: Any) -> None:
        self.workspace = 4096 * inputs[0].shape[0]
        super().run(state, inputs, outputs, workspace, xp)


def test_workspace_limit_holds_at_the_profile_max_shape() -> None:
    """A tactic whose workspace fits at the opt shape but not at the max shape must not be chosen: the runtime
    gives each binding the workspace of its actual shapes, which must stay within the limit."""
    tactic = trt.register_tactic(BatchScaledWorkspaceTactic(trt.LayerType.ELEMENTWISE))
    try:
        def network(net):
            x = net.add_input("x", trt.DataType.FLOAT, (-1, 8))
            net.mark_output(net.add_elementwise(x, x, trt.ElementWiseOperation.SUM, name="add0").get_output(0))

        profile = {"x": ((1, 8), (2, 8), (3, 8))}
        x = RNG.standard_normal((3, 8)).astype(np.float32)
        _, free, _ = build(network, level=0, profile=profile)
        assert tactics_of(free)["add0"] == tactic.name
        at_max, out = runtime_workspace(free, x)
        at_opt, _ = runtime_workspace(free, x[:2])
        assert (at_opt, at_max) == (2 * 4096, 3 * 4096)
        assert free.meta["memory"]["workspace_bytes"] == at_max  # device_memory_size covers every profile shape
        np.testing.assert_array_equal(out, x + x)
        limit = (at_opt + at_max) // 2
        logger = trt.CapturingLogger()
        _, limited, _ = build(network, logger, level=0, profile=profile,
                              configure=lambda c: c.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, limit))
        assert tactics_of(limited)["add0"] == "cpu_reference_elementwise"
        assert any(msg.startswith(f"[add0] tactic {tactic.name} skipped: workspace") and
                   msg.endswith(f"limit of {limit}") for _, msg in logger.messages)
        used, out = runtime_workspace(limited, x)
        assert used <= limit
        np.testing.assert_array_equal(out, x + x)
    finally:
        unregister_tactic(tactic)


def test_zero_workspace_limit_keeps_tactics_without_workspace(extra_tactics) -> None:
    big = trt.register_tactic(Float64Tactic(trt.LayerType.SOFTMAX))

    def network(net):
        x = net.add_input("x", trt.DataType.FLOAT, (2, 4))
        net.mark_output(net.add_softmax(x, name="softmax").get_output(0))

    try:
        _, engine, _ = build(network, configure=lambda c: c.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 0))
        assert tactics_of(engine) == {"softmax": "cpu_reference_softmax"}
    finally:
        unregister_tactic(big)
    with pytest.raises(trt.BuildError, match="memory pool limit must be >= 0 bytes"):
        trt.BuilderConfig().set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, -1)


# ---------------------------------------------------------------------------------------------- profiles
def dynamic_network(network: trt.NetworkDefinition) -> None:
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 4))
    network.mark_output(network.add_activation(x, trt.ActivationType.RELU, name="relu").get_output(0))


@pytest.mark.parametrize("profile, message", [
    (None, r"input 'x' has dynamic shape \(-1, 4\): optimization profile 0 must give its min/opt/max shapes"),
    ({"x": ((1, 4), (2, 4), (3, 4)), "y": ((1,), (1,), (1,))},
     r"optimization profile 0 names 'y', which is not a network input \(inputs: \['x'\]\)"),
    ({"x": ((1, 5), (2, 5), (3, 5))},
     r"'x' has static shape \(-1, 4\), profile min \(1, 5\) / max \(3, 5\) must match"),
    ({"x": ((1, 4, 1), (2, 4, 1), (3, 4, 1))}, r"'x' has rank 2 \(-1, 4\) but the profile gives rank 3"),
])
def test_bad_profiles_are_build_errors(profile, message) -> None:
    with pytest.raises(trt.BuildError, match=message):
        build(dynamic_network, profile=profile)


def test_profile_rejects_min_above_max() -> None:
    with pytest.raises(trt.ShapeError, match="need 0 <= min <= opt <= max"):
        trt.OptimizationProfile().set_shape("x", (3, 4), (2, 4), (1, 4))


# ---------------------------------------------------------------------------------------------- FP16
SCALE = np.float32(1e-3)


def overflow_network(network: trt.NetworkDefinition, keep_fp32: bool = False) -> None:
    """y = (x * w) * 1e-3 + b. x * w reaches 9e4 > 65504 (float16 max); the final result is about 90."""
    x = network.add_input("x", trt.DataType.FLOAT, (2, 8))
    w = network.add_constant((1, 8), np.full((1, 8), 300, np.float32), name="w")
    s = network.add_constant((1, 1), np.full((1, 1), SCALE, np.float32), name="s")
    b = network.add_constant((1, 8), np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 8), name="b")
    big = network.add_elementwise(x, w.get_output(0), trt.ElementWiseOperation.PROD, name="big")
    small = network.add_elementwise(big.get_output(0), s.get_output(0), trt.ElementWiseOperation.PROD, name="small")
    out = network.add_elementwise(small.get_output(0), b.get_output(0), trt.ElementWiseOperation.SUM, name="out")
    if keep_fp32:
        big.precision = trt.DataType.FLOAT
        small.precision = trt.DataType.FLOAT
    network.mark_output(out.get_output(0))


def overflow_inputs() -> np.ndarray:
    x = np.full((2, 8), 300, np.float32)
    x[1] = np.linspace(-2, 2, 8, dtype=np.float32)  # the second row stays in float16 range
    return x


def float16_reference(x: np.ndarray) -> np.ndarray:
    """The same chain with every tensor rounded to float16, as NumPy float16 arithmetic does."""
    h = np.float16
    with np.errstate(over="ignore"):
        big = x.astype(h) * h(300)
    small = big * h(SCALE)
    return (small + np.linspace(-1, 1, 8, dtype=np.float32).astype(h).reshape(1, 8)).astype(np.float32)


def fp16_config(obey: bool = False):
    def configure(config):
        config.set_flag(trt.BuilderFlag.FP16)
        if obey:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return configure


def test_fp16_close_to_fp32() -> None:
    x = RNG.standard_normal((3, 3, 8, 8)).astype(np.float32)
    _, fp32, _ = build(conv_fc_network, profile=CONV_PROFILE)
    _, fp16, _ = build(conv_fc_network, profile=CONV_PROFILE, configure=fp16_config())
    assert fp16.get_tensor_dtype("x") == trt.DataType.FLOAT
    assert {row["precision"] for row in fp16.layer_info() if not row["host"] and row["type"] != "REFORMAT"} == {"HALF"}
    out16 = run(fp16, x)
    assert out16.dtype == np.float32
    expected = conv_fc_reference(x)
    np.testing.assert_allclose(run(fp32, x), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out16, expected, rtol=2e-2, atol=2e-2 * np.abs(expected).max())
    assert not np.allclose(out16, expected, rtol=1e-6, atol=1e-6)  # it really ran in half precision


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_fp16_overflow_gives_inf_like_numpy_float16() -> None:
    x = overflow_inputs()
    _, fp32, _ = build(overflow_network)
    _, fp16, _ = build(overflow_network, configure=fp16_config())
    exact = (x.astype(np.float64) * 300) * np.float64(SCALE) + np.linspace(-1, 1, 8)
    np.testing.assert_allclose(run(fp32, x), exact, rtol=1e-6)
    out = run(fp16, x)
    reference = float16_reference(x)
    assert np.isinf(reference[0]).all() and np.isfinite(reference[1]).all()
    np.testing.assert_array_equal(out, reference)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_fp16_matmul_overflow_gives_inf_like_numpy_float16() -> None:
    """Element [0, 0] of x @ w is 8 * 100 * 100 = 80000 > 65504: inf in float16; small integer products stay exact."""
    w = np.arange(-16, 16, dtype=np.float32).reshape(8, 4)
    w[:, 0] = 100

    def network(net):
        x = net.add_input("x", trt.DataType.FLOAT, (2, 8))
        c = net.add_constant(w.shape, w, name="w")
        mm = net.add_matrix_multiply(x, trt.MatrixOperation.NONE, c.get_output(0), trt.MatrixOperation.NONE,
                                     name="mm")
        net.mark_output(mm.get_output(0))

    x = np.stack([np.full(8, 100, np.float32), np.arange(-4, 4, dtype=np.float32)])
    _, fp16, _ = build(network, configure=fp16_config())
    with np.errstate(over="ignore"):
        expected = (x.astype(np.float16) @ w.astype(np.float16)).astype(np.float32)
    assert np.isinf(expected[0, 0]) and np.isfinite(expected[1]).all()
    np.testing.assert_array_equal(run(fp16, x), expected)

@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_layer_precision_obeyed_keeps_fp32_where_asked() -> None:
    x = overflow_inputs()
    logger = trt.CapturingLogger(trt.Severity.WARNING)
    _, ignored, _ = build(lambda n: overflow_network(n, keep_fp32=True), logger, configure=fp16_config())
    assert any("precision FLOAT is ignored without OBEY_PRECISION_CONSTRAINTS" in msg for _, msg in logger.messages)
    assert np.isinf(run(ignored, x)[0]).all()

    _, obeyed, _ = build(lambda n: overflow_network(n, keep_fp32=True), configure=fp16_config(obey=True))
    precision = {row["name"]: row["precision"] for row in obeyed.layer_info()}
    assert precision["big"] == precision["small"] == "FLOAT" and precision["out"] == "HALF"
    assert obeyed.meta["passes"]["reformats_inserted"] >= 1
    out = run(obeyed, x)
    assert np.isfinite(out).all()
    small = (x.astype(np.float64) * 300 * np.float64(SCALE)).astype(np.float32)
    h = np.float16
    expected = (small.astype(h) + np.linspace(-1, 1, 8, dtype=np.float32).astype(h)).astype(np.float32)
    np.testing.assert_array_equal(out, expected)


# ---------------------------------------------------------------------------------------------- passes
def test_constant_folding_and_dead_layer_removal() -> None:
    a = RNG.standard_normal((1, 6)).astype(np.float32)
    b = RNG.standard_normal((1, 6)).astype(np.float32)

    def network(net):
        x = net.add_input("x", trt.DataType.FLOAT, (3, 6))
        ca = net.add_constant(a.shape, a, name="a").get_output(0)
        cb = net.add_constant(b.shape, b, name="b").get_output(0)
        folded = net.add_elementwise(ca, cb, trt.ElementWiseOperation.SUM, name="a_plus_b")
        exp = net.add_unary(folded.get_output(0), trt.UnaryOperation.EXP, name="exp_const")
        net.add_elementwise(x, ca, trt.ElementWiseOperation.SUB, name="dead_sub")
        net.add_activation(x, trt.ActivationType.SIGMOID, name="dead_sigmoid")
        y = net.add_elementwise(x, exp.get_output(0), trt.ElementWiseOperation.PROD, name="y")
        net.mark_output(y.get_output(0))

    logger = trt.CapturingLogger()
    _, engine, _ = build(network, logger)
    passes = engine.meta["passes"]
    assert passes["constant_folding"] == 2
    # the two dead layers, and the constants that folding left without readers
    assert passes["dead_layer_elimination"] == 5
    assert (trt.Severity.VERBOSE, "pass dead_layer_elimination: a, b, a_plus_b, dead_sub, dead_sigmoid") \
        in logger.messages
    assert engine.meta["layers_before"] == 7
    assert engine.num_layers == 1
    assert [row["name"] for row in engine.layer_info()] == ["y"]
    assert (trt.Severity.VERBOSE, "pass constant_folding: a_plus_b, exp_const") in logger.messages
    x = RNG.standard_normal((3, 6)).astype(np.float32)
    expected = x.astype(np.float64) * np.exp(a.astype(np.float64) + b)
    np.testing.assert_allclose(run(engine, x), expected, rtol=1e-6)


def conv_bn_relu_model() -> onnx.ModelProto:
    c, k = 3, 5
    inits = [
        numpy_helper.from_array(RNG.standard_normal((k, c, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(RNG.standard_normal(k).astype(np.float32), "B"),
        numpy_helper.from_array(RNG.uniform(0.5, 2, k).astype(np.float32), "gamma"),
        numpy_helper.from_array(RNG.standard_normal(k).astype(np.float32), "beta"),
        numpy_helper.from_array(RNG.standard_normal(k).astype(np.float32), "mean"),
        numpy_helper.from_array(RNG.uniform(0.5, 2, k).astype(np.float32), "var"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], name="bn",
                         epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(nodes, "conv_bn_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                   ["N", c, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_batchnorm_relu_fusion_matches_onnxruntime() -> None:
    model = conv_bn_relu_model()
    network = parse_onnx(model)
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    config = builder.create_builder_config()
    config.device = "cpu"
    profile = builder.create_optimization_profile()
    profile.set_shape("x", (1, 3, 9, 9), (2, 3, 9, 9), (3, 3, 9, 9))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(builder.logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    assert engine.meta["passes"]["conv_scale_fusion"] == 1
    assert engine.meta["passes"]["activation_fusion"] == 1
    rows = engine.layer_info()
    assert [(r["name"], r["type"], r["fused_from"]) for r in rows] == [("conv", "CONVOLUTION", ["conv", "bn", "relu"])]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = RNG.standard_normal((batch, 3, 9, 9)).astype(np.float32)
        (expected,) = session.run(None, {"x": x})
        out = engine.create_execution_context().execute({"x": x})["y"]
        assert (expected == 0).any() and (expected > 0).any()
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
