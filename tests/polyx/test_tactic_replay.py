import json

import numpy as np
import pytest

import engine as trt
from engine.tactics import unregister_tactic
from polyx.errors import PolyxError
from polyx.tactic_replay import TacticRecorder, TacticReplayer, load_replay, save_replay


class _AddViaSubtractNegation(trt.Tactic):
    """A second, genuinely different SUM implementation: a - (-b)."""

    name = "test_sum_by_negation"
    layer_type = trt.LayerType.ELEMENTWISE
    heuristic_rank = 1

    def supports(self, ctx):
        return ctx.layer.params["op"] == trt.ElementWiseOperation.SUM

    def prepare(self, ctx):
        return None

    def run(self, state, inputs, outputs, workspace, xp):
        xp.subtract(inputs[0], -inputs[1], out=outputs[0])


@pytest.fixture
def extra_tactic():
    tactic = trt.register_tactic(_AddViaSubtractNegation())
    yield tactic
    unregister_tactic(tactic)


def _build(selector, profiles=()):
    """x + [1, 2, 3]; `profiles`: (min, opt, max) shapes of x per optimization profile (then x is (-1, 3))."""
    builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    network = builder.create_network()
    x = network.add_input("x", trt.DataType.FLOAT, (-1, 3) if profiles else (2, 3))
    w = network.add_constant((1, 3), np.array([[1.0, 2.0, 3.0]], np.float32)).get_output(0)
    s = network.add_elementwise(x, w, trt.ElementWiseOperation.SUM, name="add")
    network.mark_output(s.get_output(0))
    config = builder.create_builder_config()
    config.device = "cpu"
    config.algorithm_selector = selector
    for shapes in profiles:
        profile = builder.create_optimization_profile()
        profile.set_shape("x", *shapes)
        config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    return plan, trt.Runtime(builder.logger).deserialize_cuda_engine(plan)


def test_record_then_replay_reproduces_the_engine(tmp_path, extra_tactic):
    recorder = TacticRecorder()
    plan, engine = _build(recorder)
    assert set(recorder.replay) == {"add"}
    assert len(recorder.choices["add"]) == 2
    path = tmp_path / "tactics.json"
    save_replay(path, recorder.replay)
    replay = load_replay(path)
    # Force the other tactic: the engine changes, the result (exact for this op) does not.
    other = next(c for c in recorder.choices["add"] if c["tactic_id"] != replay["add"]["tactic_id"])
    forced_plan, forced = _build(TacticReplayer({"add": {"tactic_id": other["tactic_id"]}}))
    assert forced.layer_info()[0]["tactic_id"] == other["tactic_id"]
    replayed_plan, replayed = _build(TacticReplayer(replay))
    assert replayed.layer_info()[0]["tactic_id"] == replay["add"]["tactic_id"]
    assert replayed_plan == plan
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    expected = x.astype(np.float64) + np.array([1.0, 2.0, 3.0])
    for eng in (engine, forced, replayed):
        np.testing.assert_allclose(eng.create_execution_context().execute({"x": x})["add_output_0"], expected,
                                   rtol=1e-6)


class _OtherTacticInProfile1(trt.IAlgorithmSelector):
    """Lets the builder choose freely in profile 0 and forces a different tactic for 'add' in profile 1."""

    def __init__(self):
        self.profile0: int | None = None

    def select_algorithms(self, context, choices):
        if context.profile_index == 0:
            return list(range(len(choices)))
        return [i for i, a in enumerate(choices) if a.algorithm_variant.tactic != self.profile0]

    def report_algorithms(self, contexts, choices):
        pass


def test_multi_profile_build_records_profile_0_and_replays_it_in_every_profile(extra_tactic):
    profiles = [((1, 3), (1, 3), (4, 3)), ((5, 3), (8, 3), (8, 3))]
    inner = _OtherTacticInProfile1()
    inner.profile0 = _build(None, profiles)[1].layer_info()[0]["tactic_id"]
    recorder = TacticRecorder(inner=inner)
    _, engine = _build(recorder, profiles)
    ids = engine.layer_info()[0]["tactic_ids_per_profile"]
    assert ids[0] == inner.profile0 and ids[1] != inner.profile0
    assert recorder.replay["add"]["tactic_id"] == ids[0]
    assert {c["tactic_id"] for c in recorder.choices["add"]} == set(ids)
    _, replayed = _build(TacticReplayer(recorder.replay), profiles)
    assert replayed.layer_info()[0]["tactic_ids_per_profile"] == [ids[0], ids[0]]
    context = replayed.create_execution_context()
    context.set_optimization_profile_async(1)
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    np.testing.assert_allclose(context.execute({"x": x})["add_output_0"],
                               x.astype(np.float64) + np.array([1.0, 2.0, 3.0]), rtol=1e-6)


def test_replaying_an_unavailable_tactic_is_a_clear_build_error(extra_tactic):
    with pytest.raises(trt.BuildError, match="layer 'add' recorded tactic"):
        _build(TacticReplayer({"add": {"tactic_id": 12345, "tactic": "gone"}}))


def test_bad_replay_files(tmp_path):
    with pytest.raises(PolyxError, match="no such file"):
        load_replay(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"layers": {}}))
    with pytest.raises(PolyxError, match="not a polyx tactic replay file"):
        load_replay(bad)
    bad.write_text(json.dumps({"format": "polyx-tactics", "version": 1, "layers": {"a": {}}}))
    with pytest.raises(PolyxError, match="malformed"):
        load_replay(bad)
